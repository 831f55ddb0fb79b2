"""The tuning door: one function that tunes a detector's output by the Kaggle metric, one for the gate.

Every place that tunes (``analysis rescore``, the per-epoch scorer of ``python -m train``, the out-of-fold
tuning of a fold set, the ablation) goes through :func:`tune` or :func:`tune_gate`:

- :func:`tune` -> the threshold x box-scale table, the best setting (:func:`~analysis.tuning.threshold.
  best_row`), its loss breakdown and the held-out score;
- :func:`tune_gate` -> the same with the classifier gate tuned jointly (every mode and gate of
  :data:`~analysis.record.defaults.DEFAULTS`, "no gate" included);
- :func:`breakdown_at` -> the loss breakdown at any setting.

**The held-out score.** The tuned score is the best of many settings on the very images it is reported
on, which flatters it on a small split. ``score_heldout`` tunes on one half of the images and scores the
other half at that setting, then the reverse, and averages the two. The halves are fixed by patientId
(:func:`analysis.tuning.threshold.heldout_half`: a bit of its SHA-1), so the figure is reproducible and an
image stays in its half whatever else is scored. The WBF setting of an ensemble is not re-tuned per half.

The per-image scores of every setting are computed once (:func:`analysis.scoring.metric.sweep_images`);
the whole table and the two halves are means over different columns of them
(:func:`analysis.tuning.threshold.sweep_halves`, :func:`analysis.tuning.gating.gate_tables`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.record.defaults import DEFAULTS
from analysis.record.gate import apply_gate
from analysis.scoring.breakdown import breakdown
from analysis.scoring.metric import frame_to_preds, per_image_scores
from analysis.scoring.truth import TruthSet
from analysis.tuning.gating import best_gate, gate_tables
from analysis.tuning.threshold import best_row, sweep_halves

COLUMNS = ["conf", "scale", "score"]
"""A sweep table's columns (``scale``: the box scale), the ``sweep`` of ``kaggle.json``."""


@dataclass(frozen=True)
class Tuned:
    """What tuning found. ``table``: ``conf, scale, score`` of every threshold x box scale (with a gate, of
    the chosen mode and gate); ``best``: ``{"conf", "scale", "score"}`` (gated: also ``mode``, ``gate``);
    ``breakdown``: the loss at ``best`` (:func:`analysis.scoring.breakdown.breakdown`); ``score_heldout``:
    see the module docstring (None when a half has no image); ``gates``: gated only, the best score of
    each (mode, gate); ``frame``: the predictions tuned (gated when gated; every row above the floor)."""

    table: pd.DataFrame
    best: dict
    breakdown: dict
    score_heldout: float | None
    gates: list[dict] = field(default_factory=list)
    frame: pd.DataFrame | None = None

    @property
    def score(self) -> float:
        return float(self.best["score"])


def _prepare(preds: pd.DataFrame, floor, thresholds, box_scales) -> tuple[pd.DataFrame, list, list]:
    """``preds`` above the floor, the thresholds at or above it, the box scales."""
    floor = float(floor)
    confs = [float(c) for c in thresholds if c >= floor]
    return preds[preds["conf"] >= floor], confs, [float(s) for s in box_scales]


def _heldout(halves: list[pd.DataFrame], pick, keys: Sequence[str]) -> float | None:
    """Mean of (half b scored at the setting ``pick`` chose on half a) over both orders; None when a half
    has no counted image."""
    scores = []
    for a, b in ((0, 1), (1, 0)):
        if halves[a]["score"].isna().all() or halves[b]["score"].isna().all():
            return None
        chosen = pick(halves[a])
        row = halves[b]
        for k in keys:
            row = row[row[k].isna()] if chosen[k] is None else row[row[k] == chosen[k]]
        scores.append(float(row["score"].iloc[0]))
    return float(np.nanmean(scores)) if not np.isnan(scores).all() else None


def tune(
    gt: TruthSet,
    preds: pd.DataFrame,
    *,
    floor: float = DEFAULTS.prediction_floor,
    thresholds: Sequence[float] = DEFAULTS.thresholds,
    box_scales: Sequence[float] = DEFAULTS.box_scales,
) -> Tuned:
    """Tune the confidence threshold and box scale of ``preds`` (:data:`rsna_yolo.core.layout.PRED_COLUMNS`,
    source pixels) against ``gt`` by the Kaggle metric. Rows below ``floor`` are dropped and only thresholds
    ``>= floor`` are tried; the floor and the grids are :data:`DEFAULTS`' unless given."""
    frame, confs, scales = _prepare(preds, floor, thresholds, box_scales)
    table, *halves = sweep_halves(gt.truth, frame, confs, scales)
    best = best_row(table)
    heldout = _heldout(halves, best_row, ("conf", "scale"))
    return Tuned(table, best, breakdown_at(gt, frame, best), heldout, frame=frame)


def tune_gate(
    gt: TruthSet,
    preds: pd.DataFrame,
    p_opacity: Mapping[str, float],
    *,
    floor: float = DEFAULTS.prediction_floor,
    thresholds: Sequence[float] = DEFAULTS.thresholds,
    box_scales: Sequence[float] = DEFAULTS.box_scales,
    gates: Sequence[float] = DEFAULTS.gates,
) -> Tuned:
    """Tune the classifier gate (every hard gate and the soft mode) jointly with the threshold and box scale
    (:func:`analysis.tuning.gating.best_gate`'s tie rules). Every image of ``gt`` needs a probability."""
    frame, confs, scales = _prepare(preds, floor, thresholds, box_scales)
    table, *halves = gate_tables(gt.truth, frame, p_opacity, confs=confs, box_scales=scales, gates=gates)
    best = best_gate(table)
    chosen = table[table["mode"] == best["mode"]]
    chosen = chosen[chosen["gate"].isna()] if best["gate"] is None else chosen[chosen["gate"] == best["gate"]]
    per_gate = [
        {
            "mode": mode,
            "gate": None if pd.isna(gate) else float(gate),
            **best_row(g[COLUMNS]),
        }
        for (mode, gate), g in table.groupby(["mode", "gate"], dropna=False, sort=False)
    ]
    heldout = _heldout(halves, best_gate, ("mode", "gate", "conf", "scale"))
    gated = apply_gate(frame, p_opacity, mode=best["mode"], gate=best["gate"] or 0.0)
    return Tuned(
        chosen[COLUMNS].reset_index(drop=True),
        best,
        breakdown_at(gt, gated, best),
        heldout,
        per_gate,
        gated,
    )


def breakdown_at(gt: TruthSet, preds: pd.DataFrame, setting: Mapping[str, float]) -> dict:
    """The loss breakdown (:func:`analysis.scoring.breakdown.breakdown`) of ``preds`` against ``gt`` at
    ``setting``'s threshold (``conf``) and box scale (``scale``)."""
    kept = frame_to_preds(preds[preds["conf"] >= setting["conf"]])
    scores = per_image_scores(gt.truth, kept, box_scale=setting["scale"])
    n_boxes = {k: len(v[1]) for k, v in kept.items()}
    return breakdown(scores, gt.truth, gt.classes, n_boxes)
