"""Tuning weighted box fusion (WBF) by the Kaggle metric, for ensembles and flip TTA.

An ensemble (several weights, a fold set) or flip TTA gives each image several sets of boxes, fused by
``ensemble_boxes.weighted_boxes_fusion``. Its parameters change the score: the IoU at which boxes of
different models merge (``iou_thr``), the confidence below which a model's box is dropped before fusing
(``skip_box_thr``), and how the fused confidence is formed (``conf_type``). Rescoring keeps every model's
own boxes (``predictions_<split>_parts.csv``, :data:`analysis.inference.predict.PART_COLUMNS`), so
:func:`tune_wbf` can fuse them again with each setting of :data:`WBF_GRID` and keep the best by the metric
(each with its own threshold x box-scale sweep), with no inference.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd

from analysis.inference.predict import fuse
from analysis.tuning.defaults import DEFAULTS
from analysis.tuning.threshold import best_row, sweep_scores
from core.boxes import xyxy_to_xywh
from core.layout import PRED_COLUMNS

WBF_GRID = DEFAULTS.wbf_grid
"""The settings tried (``wbf_grid`` of ``analysis/tuning/defaults.yaml``)."""


def fuse_parts(parts: pd.DataFrame, *, iou_thr: float, skip_box_thr: float, conf_type: str) -> pd.DataFrame:
    """Fuse the per-model boxes of :data:`analysis.inference.predict.PART_COLUMNS` rows into one prediction
    frame (:data:`core.layout.PRED_COLUMNS`, source pixels)."""
    rows = []
    for pid, image in parts.groupby("patientId", sort=False):
        width, height, png_scale = image[["png_width", "png_height", "png_scale"]].iloc[0]
        sets = [
            (g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64), g["conf"].to_numpy(np.float64))
            for _, g in image.groupby("part", sort=True)
        ]
        n_parts = int(image["part"].max()) + 1
        sets += [(np.zeros((0, 4)), np.zeros(0))] * (n_parts - len(sets))  # models with no box here
        xyxy, scores = fuse(sets, int(width), int(height), conf=skip_box_thr, iou_thr=iou_thr,
                            skip_box_thr=skip_box_thr, conf_type=conf_type)  # fmt: skip
        xywh = xyxy_to_xywh(xyxy / float(png_scale))
        rows += [(str(pid), float(c), *map(float, b)) for c, b in zip(scores, xywh, strict=True)]
    return pd.DataFrame(rows, columns=PRED_COLUMNS)


def tune_wbf(
    truth: Mapping[str, np.ndarray],
    parts: pd.DataFrame,
    *,
    grid: Mapping[str, tuple] = WBF_GRID,
    confs=DEFAULTS.thresholds,
    box_scales=DEFAULTS.box_scales,
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Every WBF setting of ``grid`` with its best threshold and box scale. Returns ``(best setting with its
    conf, scale and score, the table of settings, the fused frame of the best setting)``; ties go to the
    setting listed first (``ensemble_boxes``' defaults come first in each axis)."""
    rows, frames = [], {}
    for iou, skip, kind in itertools.product(grid["iou_thr"], grid["skip_box_thr"], grid["conf_type"]):
        frame = fuse_parts(parts, iou_thr=iou, skip_box_thr=skip, conf_type=kind)
        best = best_row(sweep_scores(truth, frame, [c for c in confs if c >= skip], box_scales))
        rows.append({"iou_thr": iou, "skip_box_thr": skip, "conf_type": kind, **best})
        frames[(iou, skip, kind)] = frame
    table = pd.DataFrame(rows)
    top = table.loc[table["score"].fillna(-1.0).idxmax()]
    setting = {"iou_thr": float(top["iou_thr"]), "skip_box_thr": float(top["skip_box_thr"]),
               "conf_type": str(top["conf_type"])}  # fmt: skip
    best = {**setting, "conf": float(top["conf"]), "scale": float(top["scale"]), "score": float(top["score"])}
    return best, table, frames[(setting["iou_thr"], setting["skip_box_thr"], setting["conf_type"])]
