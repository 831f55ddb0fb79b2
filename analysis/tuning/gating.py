"""Gating the detector's boxes with an image-level classifier, tuned by the Kaggle metric.

Every box on a Target-0 image (Normal, or No Lung Opacity / Not Normal) costs that image its whole score,
and a detector puts false boxes exactly there. The 1st and 2nd place solutions of the challenge used an
image classifier to suppress them. Two ways, both pure functions of a prediction frame
(``patientId,conf,x,y,width,height``, :data:`rsna_yolo.core.layout.PRED_COLUMNS`) and ``p_opacity``
(patientId ->
P(Lung Opacity) from :mod:`analysis.inference.classifier`):

- ``hard``: drop every box of an image whose ``p_opacity`` is below the gate (gate 0 keeps everything:
  exactly the ungated predictions);
- ``soft``: multiply each box's confidence by its image's ``p_opacity`` (then the threshold does the rest).

:func:`tune_gate` scores every (mode, gate) with the threshold x box-scale sweep of
:mod:`analysis.tuning.threshold`
and keeps the best by the metric; "no gate" is in the grid and wins ties, so the gated score is never below
the ungated one on the tuning split. :func:`apply_gate` is the one function that applies a tuned gate, used
by rescoring and by ``analysis submit`` alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.tuning.defaults import DEFAULTS
from analysis.tuning.threshold import best_row, sweep_halves
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


def gate_sweep(
    truth: Mapping[str, np.ndarray], preds: pd.DataFrame, p_opacity: Mapping[str, float], **grids
) -> pd.DataFrame:
    """The Kaggle score of every (mode, gate, conf, box scale): columns ``mode, gate, conf, scale, score``
    (``gate`` is NaN for ``soft``). Every image of ``truth`` needs a probability; ``grids`` (``confs``,
    ``box_scales``, ``gates``) default to :data:`analysis.tuning.defaults.DEFAULTS` (:func:`gate_tables`)."""
    return gate_tables(truth, preds, p_opacity, **grids)[0]


def gate_tables(
    truth: Mapping[str, np.ndarray],
    preds: pd.DataFrame,
    p_opacity: Mapping[str, float],
    *,
    confs: Sequence[float] | None = None,
    box_scales: Sequence[float] | None = None,
    gates: Sequence[float] | None = None,
) -> list[pd.DataFrame]:
    """:func:`gate_sweep` of all images, of half 0 and of half 1 of the held-out score
    (:func:`analysis.tuning.threshold.sweep_halves`)."""
    check_coverage(list(truth), p_opacity, "gating")
    settings = [("hard", float(g)) for g in (DEFAULTS.gates if gates is None else gates)]
    settings += [("soft", np.nan)] if "soft" in DEFAULTS.gate_modes else []
    parts: list[list[pd.DataFrame]] = [[], [], []]
    for mode, gate in settings:
        gated = apply_gate(preds, p_opacity, mode=mode, gate=0.0 if mode == "soft" else gate)
        for k, table in enumerate(sweep_halves(truth, gated, confs, box_scales)):
            parts[k].append(table.assign(mode=mode, gate=gate))
    return [pd.concat(p, ignore_index=True)[["mode", "gate", "conf", "scale", "score"]] for p in parts]


def best_gate(table: pd.DataFrame) -> dict:
    """The best ``{"mode", "gate", "conf", "scale", "score"}`` of :func:`gate_sweep`. Ties go to no gate
    (hard, gate 0), then the lower gate, then hard before soft, then
    :func:`analysis.tuning.threshold.best_row`'s
    rule for the threshold and box scale."""
    top = table["score"].fillna(-1.0).max()
    tied = table[table["score"].fillna(-1.0) == top]
    order = tied.assign(_soft=(tied["mode"] == "soft").astype(int), _g=tied["gate"].fillna(np.inf))
    first = order.sort_values(["_g", "_soft"], kind="stable").iloc[0]
    same = tied[(tied["mode"] == first["mode"]) & ((tied["gate"] == first["gate"]) | tied["gate"].isna())]
    row = best_row(same[["conf", "scale", "score"]])
    gate = None if first["mode"] == "soft" else float(first["gate"])
    return {"mode": str(first["mode"]), "gate": gate, **row}
