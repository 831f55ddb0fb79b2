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

import numpy as np
import pandas as pd

from analysis.record.defaults import DEFAULTS
from analysis.record.gate import apply_gate, check_coverage
from analysis.tuning.threshold import best_row, sweep_halves


def gate_sweep(
    truth: Mapping[str, np.ndarray], preds: pd.DataFrame, p_opacity: Mapping[str, float], **grids
) -> pd.DataFrame:
    """The Kaggle score of every (mode, gate, conf, box scale): columns ``mode, gate, conf, scale, score``
    (``gate`` is NaN for ``soft``). Every image of ``truth`` needs a probability; ``grids`` (``confs``,
    ``box_scales``, ``gates``) default to :data:`analysis.record.defaults.DEFAULTS` (:func:`gate_tables`)."""
    return gate_tables(truth, preds, p_opacity, **grids)[0]


def gate_tables(
    truth: Mapping[str, np.ndarray],
    preds: pd.DataFrame,
    p_opacity: Mapping[str, float],
    *,
    confs: Sequence[float] = DEFAULTS.thresholds,
    box_scales: Sequence[float] = DEFAULTS.box_scales,
    gates: Sequence[float] = DEFAULTS.gates,
) -> list[pd.DataFrame]:
    """:func:`gate_sweep` of all images, of half 0 and of half 1 of the held-out score
    (:func:`analysis.tuning.threshold.sweep_halves`)."""
    check_coverage(list(truth), p_opacity, "gating")
    settings = [("hard", float(g)) for g in gates]
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
