"""Applying a tuned gate: the classifier's P(opacity) per image, and the one function that gates boxes.

Tuning chooses the gate (:mod:`analysis.tuning.gating`); rescoring, ``analysis submit`` and the
:class:`analysis.inference.Predictor` apply it through :func:`apply_gate`, so a gate is applied one way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.record.defaults import DEFAULTS
from rsna_yolo.core.cli import UserError


def p_opacity_map(frame: pd.DataFrame) -> dict[str, float]:
    """``patientId,p_opacity`` rows (``classifier_<split>.csv``) -> patientId -> P(Lung Opacity)."""
    return dict(zip(frame["patientId"].astype(str), frame["p_opacity"].astype(float), strict=True))


def read_p_opacity(path: str | Path) -> dict[str, float]:
    """A ``classifier_<split>.csv`` (``patientId,p_opacity``) as patientId -> P(Lung Opacity)."""
    return p_opacity_map(pd.read_csv(path, dtype={"patientId": str}))


def check_coverage(ids: Sequence[str], p_opacity: Mapping[str, float], source: str) -> None:
    """:class:`UserError` (one line) when an image has no classifier probability: gating it would be a
    guess, and a silent ungated image would misstate the gate's effect."""
    missing = [i for i in ids if i not in p_opacity]
    if missing:
        raise UserError(
            f"{source}: no classifier probability for {len(missing)} of {len(ids)} image(s), e.g. "
            f"{missing[0]} (a classifier for another dataset or split?)"
        )


def apply_gate(
    preds: pd.DataFrame, p_opacity: Mapping[str, float], *, mode: str = "hard", gate: float = 0.0
) -> pd.DataFrame:
    """``preds`` gated: ``hard`` drops the rows of images with ``p_opacity < gate``; ``soft`` multiplies
    ``conf`` by ``p_opacity``. Rows keep their order; an image missing from ``p_opacity`` is an error.

    >>> preds = pd.DataFrame({"patientId": ["a", "b"], "conf": [0.9, 0.8], "x": [0, 0], "y": [0, 0],
    ...                       "width": [10, 10], "height": [10, 10]})
    >>> apply_gate(preds, {"a": 0.3, "b": 0.7}, gate=0.5)["patientId"].tolist()
    ['b']
    >>> apply_gate(preds, {"a": 0.5, "b": 1.0}, mode="soft")["conf"].tolist()
    [0.45, 0.8]
    """
    if mode not in DEFAULTS.gate_modes:
        raise UserError(f"gate mode {mode!r}: one of {', '.join(DEFAULTS.gate_modes)}")
    check_coverage(preds["patientId"].astype(str).unique().tolist(), p_opacity, "gating")
    p = preds["patientId"].astype(str).map(p_opacity).to_numpy(np.float64)
    if mode == "soft":
        return preds.assign(conf=preds["conf"].to_numpy(np.float64) * p)
    return preds[p >= gate]
