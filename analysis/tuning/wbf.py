"""Tuning weighted box fusion (WBF) by the Kaggle metric, for ensembles and flip TTA.

An ensemble (several weights, a fold set) or flip TTA gives each image several sets of boxes, fused by
``ensemble_boxes.weighted_boxes_fusion``. Its parameters change the score: the IoU at which boxes of
different models merge (``iou_thr``), the confidence below which a model's box is dropped before fusing
(``skip_box_thr``), and how the fused confidence is formed (``conf_type``). Rescoring keeps every model's
own boxes (``predictions_<split>_parts.csv``, :data:`analysis.inference.predict.PART_COLUMNS`), so
:func:`tune_wbf` can fuse them again with each setting of :data:`DEFAULTS`' ``wbf_grid`` and keep the best
by the metric
(each with its own threshold x box-scale sweep), with no inference.

The fusion itself is :mod:`analysis.record.fusion` (``ensemble_boxes``' result, bit for bit, for all images
at once); the images are grouped once for the whole grid, the clusters of one ``iou_thr`` and
``skip_box_thr`` are shared by the four confidence types, and only the best setting's frame is kept.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.record.defaults import DEFAULTS
from analysis.record.fusion import PartBoxes, cluster, fuse_boxes, part_boxes, to_frame, to_preds
from analysis.scoring.metric import sweep
from analysis.tuning.threshold import best_row

"""The settings tried (``wbf_grid`` of ``analysis/record/defaults.yaml``)."""


def fuse_parts(
    parts: pd.DataFrame | PartBoxes,
    *,
    iou_thr: float,
    skip_box_thr: float,
    conf_type: str,
    n_parts: int | None = None,
) -> pd.DataFrame:
    """Fuse the per-model boxes of :data:`analysis.inference.predict.PART_COLUMNS` rows (or their
    :func:`analysis.record.fusion.part_boxes`) into one prediction frame
    (:data:`rsna_yolo.core.layout.PRED_COLUMNS`,
    source pixels): images in order of first appearance, boxes by descending fused confidence.

    ``n_parts``: how many models x flips predicted (default: the highest ``part`` + 1 of the frame); an
    image where a part found nothing is fused with that part empty, as ``predict_images`` fuses it."""
    pb = parts if isinstance(parts, PartBoxes) else part_boxes(parts, n_parts)
    image, conf, xywh = fuse_boxes(pb, iou_thr=iou_thr, skip_box_thr=skip_box_thr, conf_type=conf_type)
    return to_frame(pb, image, conf, xywh)


_SHARED: dict = {}
"""What forked workers of :func:`tune_wbf` read (inherited, never pickled): truth, part boxes, grids."""


def _score_group(iou: float, skip: float, kinds: Sequence[str]) -> list[dict]:
    """The best threshold x box scale of each confidence type for one ``iou_thr`` and ``skip_box_thr``
    (one clustering shared by all types); one fused frame alive at a time."""
    truth, pb, confs, box_scales = (_SHARED[k] for k in ("truth", "pb", "confs", "box_scales"))
    clusters = cluster(pb, iou_thr=iou, skip_box_thr=skip) if pb.n_parts > 1 else None
    rows = []
    for kind in kinds:
        image, conf, xywh = fuse_boxes(pb, iou_thr=iou, skip_box_thr=skip, conf_type=kind, clusters=clusters)
        tried = [c for c in confs if c >= skip]
        # A box below the lowest threshold tried is in no threshold's top k, so it changes no score
        # (analysis.scoring.metric: TP(k) counts matches among the k most confident): the sweep skips it.
        # The mapping comes straight from the arrays, as sweep_scores would make it from the frame.
        keep = conf >= min(tried) if tried else np.ones(len(conf), bool)
        preds = to_preds(pb, image[keep], conf[keep], xywh[keep])
        best = best_row(sweep(truth, preds, tried, box_scales))
        rows.append({"iou_thr": iou, "skip_box_thr": skip, "conf_type": kind, **best})
        del preds, image, conf, xywh
    return rows


def _init_worker(parent: int) -> None:
    from rsna_yolo.core.workers import die_with_parent

    die_with_parent(parent)


def tune_wbf(
    truth: Mapping[str, np.ndarray],
    parts: pd.DataFrame,
    *,
    grid: Mapping[str, tuple] = DEFAULTS.wbf_grid,
    confs: Sequence[float] = DEFAULTS.thresholds,
    box_scales: Sequence[float] = DEFAULTS.box_scales,
    workers: int | None = None,
    n_parts: int | None = None,
) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Every WBF setting of ``grid`` with its best threshold and box scale. Returns ``(best setting with its
    conf, scale and score, the table of settings, the fused frame of the best setting)``; ties go to the
    setting listed first (``ensemble_boxes``' defaults come first in each axis).

    Settings are scored one at a time and only their best threshold, box scale and score are kept; the
    best setting is fused once more at the end, so no more than one fused frame is alive per process.
    ``workers`` processes (default: the cores this process may use,
    :func:`rsna_yolo.core.workers.available_cpus`)
    each score whole ``(iou_thr, skip_box_thr)`` groups: the table is the same with any number."""
    from rsna_yolo.core.workers import available_cpus

    pb = part_boxes(parts, n_parts)
    groups = list(itertools.product(grid["iou_thr"], grid["skip_box_thr"]))
    kinds = tuple(grid["conf_type"])
    workers = available_cpus() if workers is None else max(1, int(workers))
    _SHARED.update(truth=truth, pb=pb, confs=tuple(confs), box_scales=tuple(box_scales))
    try:
        if workers == 1 or len(groups) == 1:
            per_group = [_score_group(iou, skip, kinds) for iou, skip in groups]
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # fork: the workers inherit truth and the grouped boxes instead of receiving a pickled copy
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(min(workers, len(groups)), mp_context=context,
                                     initializer=_init_worker, initargs=(os.getpid(),)) as pool:  # fmt: skip
                per_group = list(pool.map(_score_group, *zip(*groups, strict=True), [kinds] * len(groups)))
    finally:
        _SHARED.clear()
    table = pd.DataFrame([row for rows in per_group for row in rows])
    top = table.loc[table["score"].fillna(-1.0).idxmax()]
    setting = {"iou_thr": float(top["iou_thr"]), "skip_box_thr": float(top["skip_box_thr"]),
               "conf_type": str(top["conf_type"])}  # fmt: skip
    best = {**setting, "conf": float(top["conf"]), "scale": float(top["scale"]), "score": float(top["score"])}
    return best, table, fuse_parts(pb, **setting)
