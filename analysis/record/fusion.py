"""Weighted box fusion of many images at once, equal to ``ensemble_boxes.weighted_boxes_fusion`` (1.0.9).

``ensemble_boxes`` fuses one image at a time in Python; tuning the fusion of 26,684 out-of-fold images for
24 settings called it (and pandas around it) 640,000 times. Here every image is fused in lock step: the
``k``-th box (by descending confidence) of every image that has one is matched against that image's
clusters in one vectorised step, so the Python loop runs over box ranks (tens), not images.

The result is ``ensemble_boxes``' own, bit for bit, with every model's weight 1 and one label (what
:func:`analysis.inference.predict.fuse` asks of it), because each of its steps is repeated with the same
float operations in the same order:

- prefilter: boxes with ``conf < skip_box_thr`` and boxes of zero area are dropped, corners given in the
  wrong order are swapped; the rest are sorted by descending confidence with ``argsort()[::-1]``;
- clustering: each box joins the first cluster of highest IoU when that IoU is ``> iou_thr``, else starts
  one; a cluster's box is its members' confidence-weighted mean, summed in float32 member by member and
  divided in float64 (``get_weighted_box``'s ``np.zeros(8, dtype=np.float32)``), while a cluster of one
  box keeps that box's float64 values;
- confidence: ``avg`` (mean over the cluster, times ``min(n_models, n_boxes) / n_models``), ``max``,
  ``box_and_model_avg`` and ``absent_model_aware_avg`` as written there; clusters are sorted by
  descending fused confidence with ``argsort()[::-1]`` again.

``argsort()[::-1]`` (numpy's unstable quicksort, reversed) orders tied confidences in a way no other sort
reproduces, so an image with tied confidences has its order taken from that very call; every other image
is sorted for all images at once.

Frames: corners ``xyxy`` in PNG pixels of the part rows (:data:`analysis.inference.predict.PART_COLUMNS`),
normalised by the image size and clipped to ``[0, 1]`` for fusing (as ``fuse`` does), then mapped back and
divided by ``png_scale``: fused boxes are ``xywh_px`` in the source frame
(:data:`rsna_yolo.core.layout.PRED_COLUMNS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.record.defaults import DEFAULTS
from rsna_yolo.core.layout import PRED_COLUMNS

CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")
"""``ensemble_boxes``' ways of forming a fused confidence."""
MAX_MODELS = 64
"""Most parts fused in lock step: a cluster's models are one bit each of a ``uint64``."""
SLOT_BUDGET = 1 << 21
"""Most (image, cluster) slots held at once: images are fused in chunks of about this many slots."""


@dataclass(frozen=True)
class PartBoxes:
    """Every part's boxes of a set of images, grouped once for any number of fusions.

    ``I`` images (``ids`` in order of first appearance in the part rows), ``N`` boxes ordered by image, then
    part, then row: the order ``ensemble_boxes`` receives them in.
    """

    ids: np.ndarray  # (I,) patientId (object)
    norm: np.ndarray  # (I, 4) float64 [width, height, width, height] of the PNG, whole pixels
    png_scale: np.ndarray  # (I,) float64 PNG pixels per source pixel
    start: np.ndarray  # (I + 1,) int64 offsets of each image's boxes
    part: np.ndarray  # (N,) int64 model / flip index
    conf: np.ndarray  # (N,) float64
    xyxy_px: np.ndarray  # (N, 4) float64 corners in PNG pixels as given
    xyxy_norm: np.ndarray  # (N, 4) float64 corners / image size, clipped to [0, 1], swapped if reversed
    nonzero: np.ndarray  # (N,) bool: the normalised box has an area (ensemble_boxes skips the others)
    n_parts: int

    @property
    def image(self) -> np.ndarray:
        """``(N,)`` int64 image index of each box."""
        return np.repeat(np.arange(len(self.ids)), np.diff(self.start))


def part_boxes(parts: pd.DataFrame, n_parts: int | None = None) -> PartBoxes:
    """Group :data:`analysis.inference.predict.PART_COLUMNS` rows by image once (numpy, no groupby).

    ``n_parts``: how many models x flips predicted (default: the highest ``part`` + 1 in ``parts``); an
    image where some part found nothing is fused with that part empty, as at inference."""
    codes, ids = pd.factorize(parts["patientId"].astype(str), sort=False)
    part = parts["part"].to_numpy(np.int64)
    # image, then part, then row: what ``fuse`` hands ensemble_boxes (its model order breaks ties)
    order = np.lexsort((np.arange(len(parts)), part, codes))
    codes, part = codes[order], part[order]
    start = np.searchsorted(codes, np.arange(len(ids) + 1)).astype(np.int64)
    first = order[start[:-1]]  # each image's first row in the frame: its size and scale come from there
    width = np.array([int(w) for w in parts["png_width"].to_numpy(np.float64)[first]], dtype=np.float64)
    height = np.array([int(h) for h in parts["png_height"].to_numpy(np.float64)[first]], dtype=np.float64)
    norm = np.stack([width, height, width, height], axis=1)
    xyxy_px = parts[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.clip(xyxy_px / np.repeat(norm, np.diff(start), axis=0), 0, 1)
    xyxy_norm = np.stack(
        [np.minimum(b[:, 0], b[:, 2]), np.minimum(b[:, 1], b[:, 3]),
         np.maximum(b[:, 0], b[:, 2]), np.maximum(b[:, 1], b[:, 3])], axis=1,
    )  # fmt: skip
    area = (xyxy_norm[:, 2] - xyxy_norm[:, 0]) * (xyxy_norm[:, 3] - xyxy_norm[:, 1])
    n = int(part.max()) + 1 if len(part) else 1
    return PartBoxes(
        ids=np.asarray(ids, dtype=object), norm=norm,
        png_scale=parts["png_scale"].to_numpy(np.float64)[first], start=start, part=part,
        conf=parts["conf"].to_numpy(np.float64)[order], xyxy_px=xyxy_px, xyxy_norm=xyxy_norm,
        nonzero=~(area == 0.0), n_parts=max(n, int(n_parts or 0)),
    )  # fmt: skip


def _argsort_desc(scores: np.ndarray) -> np.ndarray:
    """``ensemble_boxes``' own sort of one image: ``a[:, 1].argsort()[::-1]`` of an ``(n, 8)`` array."""
    a = np.zeros((len(scores), 8))
    a[:, 1] = scores
    return a[:, 1].argsort()[::-1]


def _sort_desc(image: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Order of ``(n,)`` boxes grouped by ascending ``image`` (already contiguous), by descending score in
    each image, equal to ``argsort()[::-1]`` per image (ties in an image are sorted by that very call)."""
    order = np.lexsort((-scores, image))
    img, s = image[order], scores[order]
    tied = np.unique(img[1:][(img[1:] == img[:-1]) & (s[1:] == s[:-1])])
    if len(tied):
        bounds = np.searchsorted(image, np.stack([tied, tied + 1]))
        for lo, hi in bounds.T:
            order[lo:hi] = lo + _argsort_desc(scores[lo:hi])
    return order


@dataclass(frozen=True)
class Clusters:
    """The clusters of one fusion (one ``iou_thr`` and ``skip_box_thr``), before the confidence type.

    ``C`` clusters grouped by image in creation order (``image`` ascending), as ``ensemble_boxes`` holds
    them before its last sort."""

    image: np.ndarray  # (C,) int64 image index
    xyxy_norm: np.ndarray  # (C, 4) float64 the cluster's box (a lone box's own values, else float32 mean)
    n_boxes: np.ndarray  # (C,) int64 boxes in the cluster
    conf_mean: np.ndarray  # (C,) float64 ensemble_boxes' score field for avg-like types
    conf_max: np.ndarray  # (C,) float64 ... and for "max"
    n_models: np.ndarray  # (C,) int64 distinct parts in the cluster


def _cluster_chunk(xyxy: np.ndarray, conf: np.ndarray, part: np.ndarray, counts: np.ndarray, iou_thr: float):
    """Lock-step clustering of ``c`` images whose sorted boxes are consecutive (image ``r`` has ``counts[r]``
    boxes, ``counts`` descending). ``xyxy (n, 4)``, ``conf (n,)``, ``part (n,)``. Returns per image its
    cluster count and the ``(c, K, ...)`` cluster state."""
    c, k_max = len(counts), int(counts[0])
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    box = np.zeros((c, k_max, 4))  # the cluster box matched against (weighted_boxes[:, 4:])
    acc = np.zeros((c, k_max, 4), np.float32)  # sum of conf * corners, in float32 as get_weighted_box
    csum = np.zeros((c, k_max))
    cmax = np.zeros((c, k_max))
    nbox = np.zeros((c, k_max), np.int64)
    models = np.zeros((c, k_max), np.uint64)
    ncl = np.zeros(c, np.int64)
    # active images at step k: the first n_active[k] (counts are descending)
    n_active = c - np.searchsorted(counts[::-1], np.arange(k_max), side="right")
    for k in range(k_max):
        a = int(n_active[k])
        rows = np.arange(a)
        j = start[:a] + k
        nb, s = xyxy[j], conf[j]
        bit = np.left_shift(np.uint64(1), part[j].astype(np.uint64))
        m = int(ncl[:a].max())
        match = np.zeros(a, bool)
        best = np.zeros(a, np.int64)
        if m:
            fb = box[:a, :m]
            # find_matching_box_fast's bb_iou_array, operation for operation
            x_a = np.maximum(fb[..., 0], nb[:, None, 0])
            y_a = np.maximum(fb[..., 1], nb[:, None, 1])
            x_b = np.minimum(fb[..., 2], nb[:, None, 2])
            y_b = np.minimum(fb[..., 3], nb[:, None, 3])
            inter = np.maximum(x_b - x_a, 0) * np.maximum(y_b - y_a, 0)
            area_a = (fb[..., 2] - fb[..., 0]) * (fb[..., 3] - fb[..., 1])
            area_b = (nb[:, 2] - nb[:, 0]) * (nb[:, 3] - nb[:, 1])
            with np.errstate(divide="ignore", invalid="ignore"):
                iou = inter / (area_a + area_b[:, None] - inter)
            iou[np.arange(m)[None, :] >= ncl[:a, None]] = -np.inf  # slots not yet used
            best = iou.argmax(axis=1)
            match = ~(iou[rows, best] <= iou_thr)  # a NaN IoU matches, as there
        r, b = rows[match], best[match]
        sm, nm = s[match], nb[match]
        acc[r, b] = (acc[r, b].astype(np.float64) + sm[:, None] * nm).astype(np.float32)
        csum[r, b] += sm
        cmax[r, b] = np.maximum(cmax[r, b], sm)
        nbox[r, b] += 1
        models[r, b] |= bit[match]
        box[r, b] = (acc[r, b].astype(np.float64) / csum[r, b][:, None]).astype(np.float32)
        new = ~match
        r = rows[new]
        slot = ncl[r]
        sn, nn = s[new], nb[new]
        box[r, slot] = nn
        acc[r, slot] = (sn[:, None] * nn).astype(np.float32)
        csum[r, slot] = sn
        cmax[r, slot] = sn
        nbox[r, slot] = 1
        models[r, slot] = bit[new]
        ncl[r] += 1
    return ncl, box, csum, cmax, nbox, models


def cluster(pb: PartBoxes, *, iou_thr: float, skip_box_thr: float) -> Clusters:
    """Prefilter, sort and cluster every image's boxes as ``weighted_boxes_fusion`` does (all weights 1)."""
    if pb.n_parts > MAX_MODELS:
        raise ValueError(f"{pb.n_parts} parts: lock-step fusion handles at most {MAX_MODELS}")
    keep = np.flatnonzero(pb.nonzero & ~(pb.conf < skip_box_thr))
    image = pb.image[keep]
    keep = keep[_sort_desc(image, pb.conf[keep])]
    image = image if len(keep) == 0 else pb.image[keep]
    counts_all = np.bincount(image, minlength=len(pb.ids))
    # images by descending box count, so those still active at rank k are a prefix
    by_count = np.argsort(-counts_all, kind="stable")
    by_count = by_count[counts_all[by_count] > 0]
    starts = np.concatenate([[0], np.cumsum(counts_all)])
    out = []
    lo = 0
    while lo < len(by_count):
        k = int(counts_all[by_count[lo]])
        hi = min(len(by_count), lo + max(1, SLOT_BUDGET // k))
        imgs = by_count[lo:hi]
        counts = counts_all[imgs]
        idx = keep[np.concatenate([np.arange(starts[i], starts[i + 1]) for i in imgs])]
        ncl, box, csum, cmax, nbox, models = _cluster_chunk(
            pb.xyxy_norm[idx], pb.conf[idx], pb.part[idx], counts, float(iou_thr)
        )
        used = np.arange(box.shape[1])[None, :] < ncl[:, None]
        out.append((np.repeat(imgs, ncl), box[used], csum[used], cmax[used], nbox[used], models[used]))
        lo = hi
    if not out:
        z = np.zeros(0)
        return Clusters(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), z, z,
                        np.zeros(0, np.int64))  # fmt: skip
    image, box, csum, cmax, nbox, models = (np.concatenate(v) for v in zip(*out, strict=True))
    order = np.argsort(image, kind="stable")  # back to image order, creation order kept within an image
    image, box, csum, cmax, nbox, models = (v[order] for v in (image, box, csum, cmax, nbox, models))
    lone = nbox == 1
    # get_weighted_box stores its score in float32; a lone box keeps its own float64 confidence
    mean = np.where(lone, csum, (csum / nbox).astype(np.float32).astype(np.float64))
    top = np.where(lone, csum, cmax.astype(np.float32).astype(np.float64))
    return Clusters(image, box, nbox, mean, top, np.bitwise_count(models).astype(np.int64))


def fused_conf(cl: Clusters, n_parts: int, conf_type: str) -> np.ndarray:
    """``(C,)`` fused confidence of each cluster: ``weighted_boxes_fusion``'s rescaling, all weights 1."""
    n = cl.n_boxes
    total = float(n_parts)  # weights.sum()
    if conf_type == "avg":  # allows_overflow=False
        return cl.conf_mean * np.minimum(n_parts, n) / total
    if conf_type == "max":
        return cl.conf_max / 1.0  # weights.max()
    if conf_type == "box_and_model_avg":
        # weight field: a lone box's own weight, else float32(sum of weights); both equal the box count
        return cl.conf_mean * n / n.astype(np.float64) * cl.n_models.astype(np.float64) / total
    if conf_type == "absent_model_aware_avg":
        return cl.conf_mean * n / (n.astype(np.float64) + (n_parts - cl.n_models).astype(np.float64))
    raise ValueError(f"conf_type {conf_type!r}: one of {', '.join(CONF_TYPES)}")


def fused_order(cl: Clusters, conf: np.ndarray) -> np.ndarray:
    """Clusters by image, then descending fused confidence (``ensemble_boxes``' last sort)."""
    return _sort_desc(cl.image, conf)


def fuse_xyxy(
    pb: PartBoxes, *, iou_thr: float, skip_box_thr: float, conf_type: str, clusters: Clusters | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse every image: ``(image (M,) int64, conf (M,) float64, xyxy (M, 4) float64 PNG pixels)``, grouped
    by image in ``pb.ids`` order, by descending confidence within one: what ``fuse`` returns for each image.
    ``clusters``: :func:`cluster`'s result for the same ``iou_thr`` and ``skip_box_thr``, to share it
    between confidence types. One part is not fused (``fuse`` returns it as predicted)."""
    if pb.n_parts == 1:
        return pb.image, pb.conf.copy(), pb.xyxy_px.copy()
    cl = clusters if clusters is not None else cluster(pb, iou_thr=iou_thr, skip_box_thr=skip_box_thr)
    conf = fused_conf(cl, pb.n_parts, conf_type)
    order = fused_order(cl, conf)
    image = cl.image[order]
    return image, conf[order], cl.xyxy_norm[order] * pb.norm[image]


def fuse_boxes(
    pb: PartBoxes, *, iou_thr: float, skip_box_thr: float, conf_type: str, clusters: Clusters | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`fuse_xyxy` mapped to the source frame: ``(image (M,), conf (M,), xywh_px (M, 4))`` (corners
    divided by ``png_scale``, as ``fuse_parts`` and ``predict_images`` do)."""
    image, conf, xyxy = fuse_xyxy(pb, iou_thr=iou_thr, skip_box_thr=skip_box_thr, conf_type=conf_type,
                                  clusters=clusters)  # fmt: skip
    xyxy = xyxy / pb.png_scale[image][:, None]
    return image, conf, np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)


def fuse_batch(
    images: list[list[tuple[np.ndarray, np.ndarray]]],
    sizes: list[tuple[int, int]],
    *,
    conf: float,
    iou_thr: float,
    skip_box_thr: float | None = None,
    conf_type: str = DEFAULTS.wbf_conf_type,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`analysis.inference.predict.fuse` of many images in one call: ``images[k]`` is image ``k``'s
    list of ``(xyxy (N, 4) px, conf (N,))``, one per model x flip (the same count for every image),
    ``sizes[k]`` its ``(width, height)``. Returns per image ``(xyxy (M, 4) px, conf (M,))``, equal to
    ``fuse``'s (``skip_box_thr`` defaults to ``conf``; one part is returned as given)."""
    n_parts = {len(p) for p in images}
    if len(n_parts) > 1:
        raise ValueError(f"images with different numbers of parts: {sorted(n_parts)}")
    if not images or n_parts == {1}:
        return [p[0] for p in images]
    rows = [(k, t, b, c) for k, parts in enumerate(images) for t, (b, c) in enumerate(parts) if len(c)]
    counts = [len(c) for _, _, _, c in rows]
    frame = pd.DataFrame({
        "patientId": np.repeat([k for k, *_ in rows], counts).astype(str),
        "part": np.repeat([t for _, t, *_ in rows], counts),
        "conf": np.concatenate([c for *_, c in rows]) if rows else np.zeros(0),
        "png_width": np.repeat([sizes[k][0] for k, *_ in rows], counts),
        "png_height": np.repeat([sizes[k][1] for k, *_ in rows], counts),
        "png_scale": 1.0,
    })  # fmt: skip
    xyxy = np.concatenate([np.asarray(b, np.float64).reshape(-1, 4) for _, _, b, _ in rows]) if rows else None
    for j, name in enumerate(("x1", "y1", "x2", "y2")):
        frame[name] = xyxy[:, j] if rows else np.zeros(0)
    pb = part_boxes(frame, next(iter(n_parts)))
    skip = conf if skip_box_thr is None else skip_box_thr
    image, fused_conf_, fused = fuse_xyxy(pb, iou_thr=iou_thr, skip_box_thr=skip, conf_type=conf_type)
    which = pb.ids[image].astype(int) if len(image) else np.zeros(0, int)
    bounds = np.searchsorted(which, np.arange(len(images) + 1))  # ids are in image order: rows were
    return [
        (fused[bounds[k] : bounds[k + 1]], fused_conf_[bounds[k] : bounds[k + 1]]) for k in range(len(images))
    ]


def to_frame(pb: PartBoxes, image: np.ndarray, conf: np.ndarray, xywh_px: np.ndarray) -> pd.DataFrame:
    """:func:`fuse_boxes`' arrays as a prediction frame (:data:`rsna_yolo.core.layout.PRED_COLUMNS`)."""
    cols = dict(zip(PRED_COLUMNS[2:], xywh_px.T, strict=True))
    return pd.DataFrame({"patientId": pb.ids[image].astype(str), "conf": conf, **cols}, columns=PRED_COLUMNS)


def to_preds(pb: PartBoxes, image: np.ndarray, conf: np.ndarray, xywh_px: np.ndarray) -> dict:
    """:func:`fuse_boxes`' arrays as the metric's ``preds`` mapping (patientId -> (xywh_px, conf)),
    without building a frame."""
    bounds = np.searchsorted(image, np.arange(len(pb.ids) + 1))
    return {
        str(pb.ids[i]): (xywh_px[bounds[i] : bounds[i + 1]], conf[bounds[i] : bounds[i + 1]])
        for i in np.flatnonzero(np.diff(bounds))
    }
