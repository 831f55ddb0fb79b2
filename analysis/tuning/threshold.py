"""Tuning the two settings a submission is written with: the confidence threshold and the box scale.

The box scale shrinks (``< 1``) or grows each predicted box about its centre before scoring
(:func:`rsna_yolo.core.boxes.scale_about_centre`); it is not the PNG scale of ``manifest.csv``.

- :func:`sweep_scores` -> the Kaggle score of every (threshold, box scale) pair (the grids of
  :data:`analysis.record.defaults.DEFAULTS` by default), one IoU pass per box scale
  (:func:`analysis.scoring.metric.sweep`); :func:`sweep_halves` adds the two halves of the held-out score
  (:func:`heldout_half`);
- :func:`best_row` -> the best pair; :func:`format_sweep` / :func:`plot_sweep` -> the table as text and
  as ``kaggle_threshold.png``;
- :func:`check_settings` -> one clear error for a threshold or box scale out of range.

A sweep table has columns ``conf, scale, score`` (``scale`` = box scale), the ``sweep`` of ``kaggle.json``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.record.defaults import DEFAULTS
from analysis.scoring.metric import frame_to_preds, sweep, sweep_images, sweep_table
from rsna_yolo.core.io import write_figure_atomic


def sweep_scores(
    truth: Mapping[str, np.ndarray],
    preds: pd.DataFrame,
    confs: Sequence[float] = DEFAULTS.thresholds,
    box_scales: Sequence[float] = DEFAULTS.box_scales,
) -> pd.DataFrame:
    """Kaggle score for every (conf, box scale) pair of a prediction frame (rows of images not in ``truth``
    are an error); grids default to :data:`DEFAULTS`."""
    return sweep(truth, frame_to_preds(preds), *_grids(confs, box_scales))


def _grids(confs, box_scales) -> tuple[list[float], list[float]]:
    return [float(c) for c in confs], [float(s) for s in box_scales]


def heldout_half(patient_id: str) -> int:
    """0 or 1: the half of the held-out score (:mod:`analysis.tuning.tuner`) an image belongs to, fixed by
    its patientId alone (the first bit of its SHA-1), whatever else is scored.

    >>> [heldout_half(p) for p in ("a", "b", "c")]
    [0, 1, 0]
    """
    return hashlib.sha1(str(patient_id).encode()).digest()[0] & 1


def sweep_halves(
    truth: Mapping[str, np.ndarray],
    preds: pd.DataFrame,
    confs: Sequence[float] = DEFAULTS.thresholds,
    box_scales: Sequence[float] = DEFAULTS.box_scales,
) -> list[pd.DataFrame]:
    """:func:`sweep_scores` of all images, of half 0 and of half 1 (:func:`heldout_half`): three tables from
    one IoU pass per box scale (the halves are means over other columns of the same per-image scores)."""
    confs, box_scales = _grids(confs, box_scales)
    ids, scores = sweep_images(truth, frame_to_preds(preds), confs, box_scales)
    half = np.array([heldout_half(i) for i in ids], dtype=np.int8)
    parts = (scores, scores[..., half == 0], scores[..., half == 1])
    return [sweep_table(s, confs, box_scales) for s in parts]


def best_row(table: pd.DataFrame) -> dict:
    """The best ``{"conf", "scale", "score"}`` (``scale``: the box scale); ties go to the higher threshold,
    then the box scale nearer 1 (fewer boxes, less change). NaN scores (nothing counted) lose."""
    t = table.assign(_s=table["score"].fillna(-1.0), _d=-(table["scale"] - 1.0).abs())
    row = t.sort_values(["_s", "conf", "_d"], ascending=False, kind="stable").iloc[0]
    return {"conf": float(row["conf"]), "scale": float(row["scale"]), "score": float(row["score"])}


def format_sweep(table: pd.DataFrame) -> list[str]:
    """The sweep as text: one line per confidence threshold, one column per box scale, ``*`` on the best
    pair (:func:`best_row`); ``  -   `` where no image counts.

    >>> t = pd.DataFrame({"conf": [0.1, 0.2, 0.1, 0.2], "scale": [1.0, 1.0, 0.9, 0.9],
    ...                   "score": [0.5, 0.25, 0.625, float("nan")]})
    >>> print("\\n".join(format_sweep(t)))
    Kaggle score by confidence threshold (rows) and box scale (columns):
      conf    1.00     0.90
      0.10  0.5000   0.6250*
      0.20  0.2500     -
    """
    best = best_row(table)
    box_scales = list(dict.fromkeys(table["scale"]))
    lines = [
        "Kaggle score by confidence threshold (rows) and box scale (columns):",
        "  conf" + "".join(f"  {s:6.2f} " for s in box_scales).rstrip(),
    ]
    by_pair = {(float(r.conf), float(r.scale)): float(r.score) for r in table.itertuples()}
    for conf in dict.fromkeys(table["conf"]):
        cells = []
        for s in box_scales:
            v = by_pair.get((float(conf), float(s)), math.nan)
            mark = "*" if (float(conf), float(s)) == (best["conf"], best["scale"]) else " "
            cells.append("    -    " if math.isnan(v) else f"  {v:.4f}{mark}")
        lines.append(f"  {conf:4.2f}" + "".join(cells).rstrip())
    return lines


def plot_sweep(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Score vs confidence threshold, one line per box scale, best pair marked; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for box_scale, g in table.groupby("scale", sort=False):
        ax.plot(g["conf"], g["score"], marker=".", label=f"scale {box_scale:.2f}")
    best = best_row(table)
    if not math.isnan(best["score"]):
        ax.plot([best["conf"]], [best["score"]], "k*", ms=12, label=f"best {best['score']:.4f}")
    ax.set_xlabel("confidence threshold")
    ax.set_ylabel("Kaggle mAP (IoU 0.40-0.75)")
    ax.set_title(title or "Kaggle score vs threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure_atomic(fig, path)
    plt.close(fig)
    return Path(path)
