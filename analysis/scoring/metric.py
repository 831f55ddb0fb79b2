"""The RSNA Pneumonia Detection Challenge metric, exactly, as pure vectorised numpy.

Rules (Kaggle's evaluation page, as implemented by the community kernel that reproduced the leaderboard):

- For each image and each IoU threshold ``t`` in 0.40, 0.45, ..., 0.75 (:data:`THRESHOLDS`), the predicted
  boxes are taken in descending confidence; each ground-truth box, in the order given, takes the first
  still-unmatched prediction whose IoU with it is ``>= t`` (a true positive). Ground-truth boxes left
  without a match are false negatives, predictions left unmatched are false positives.
- The precision at ``t`` is ``TP / (TP + FP + FN)``; an image's score is the mean over the 8 thresholds;
  the dataset's score is the mean over images.
- An image with no ground truth and at least one prediction scores 0 (it counts); an image with neither
  ground truth nor prediction is left out of the mean entirely.

Choices the official text leaves open, decided here:

- **IoU exactly at a threshold matches** (``>=``). IoU is ``intersection / union`` in float64 and the
  thresholds are the float64 literals ``0.45`` etc., so for integer-pixel boxes whose exact IoU is the
  rational ``9/20`` the correctly rounded division gives the very double ``0.45`` and the box matches.
- **Float64 arithmetic as the community kernel's**: corners ``x + w``, areas ``w * h`` (not
  ``(x2 - x1) * (y2 - y1)``), ``union = area_truth + area_pred - inter``. With decimal coordinates (a
  submission's ``453.7``) an IoU that is a threshold in exact arithmetic can land one ulp either side;
  it is then decided as the kernel decides it, never by a tolerance (``tests/test_metric.py`` pins two
  such boxes: exact IoU 0.5 matches at 0.50, exact IoU 0.6 rounds to 0.5999999999999999 and does not).
  About 1 pair in a million 1-decimal box pairs is such a case.
- **Ties in confidence keep the order given** (a stable sort on descending confidence). The community
  kernel used ``argsort(scores)[::-1]``, which reverses tied predictions; only which tied box is called
  the true positive can differ, never the count, unless tied boxes overlap different ground truths.
- **The matching loop is over ground-truth boxes** (each takes the first unmatched prediction), as the
  community kernel does. Kaggle's prose instead walks the predictions in descending confidence, each
  matching "a" ground truth. The two agree unless one prediction reaches ``t`` with two ground-truth boxes
  at once (for ``t > 0.5`` only if those overlap each other): then the first ground truth takes it and the
  second may go unmatched although a later prediction fits only the first. ``tests/test_metric.py`` has
  such a case with both answers (5/12 here, 7/12 prediction-major); on the benchmark's 3,000 random
  images 4 image scores differ and the mean by 5e-6.
- **Confidence threshold**: ``conf=c`` keeps predictions with ``confidence >= c``.
- **Box scale**: ``box_scale=f`` shrinks (``f < 1``) each *predicted* box about its centre before matching
  (:func:`rsna_yolo.core.boxes.scale_about_centre`); ground truth is never changed. ``box_scale=1`` leaves
  boxes
  bit-identical.
- Degenerate boxes (zero width or height) have IoU 0 with everything (never ``NaN``).

Phases (as pycocotools' ``cocoeval``): :func:`evaluate_images` does the IoU and the greedy matching once
per box scale, with *all* predictions, and records for every ground-truth box the confidence rank of the
prediction it took; :func:`accumulate` turns that into per-image scores for any confidence thresholds
without touching IoUs again (GT-major greedy matching on the top-``k`` predictions is exactly the full
matching restricted to ranks ``< k``, so ``TP(k) = #{gt : rank < k}``); :func:`summarize` averages.

Inputs: ``truth: Mapping[str, (G, 4) xywh_px]`` holds every image scored (``(0, 4)`` for negatives);
``preds: Mapping[str, ((P, 4) xywh_px, (P,) confidence)]``; images missing from ``preds`` have no box.

>>> import numpy as np
>>> gt = {"a": np.array([[0, 0, 10, 10]]), "b": np.zeros((0, 4)), "c": np.zeros((0, 4))}
>>> pr = {"a": (np.array([[0, 0, 10, 20]]), np.array([0.9])),
...       "b": (np.array([[5, 5, 5, 5]]), np.array([0.3]))}
>>> per_image_scores(gt, pr)  # a: IoU exactly 0.5 matches at 0.40..0.50 (3 of 8); b: false box; c: left out
{'a': 0.375, 'b': 0.0}
>>> kaggle_map(gt, pr)
0.1875
>>> kaggle_map(gt, pr, conf=0.5)  # b's box is dropped: b is left out, a scores alone
0.375
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rsna_yolo.core.boxes import as_boxes, scale_about_centre

THRESHOLDS = np.array([0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75], dtype=np.float64)
"""IoU thresholds of the challenge, as float64 literals (``arange(0.4, 0.76, 0.05)`` gives 0.6499999...)."""

NO_MATCH = np.iinfo(np.int64).max
"""Rank recorded for a ground-truth box that no prediction matches."""
MIN_BUCKET = 4
"""Smallest padded prediction count of a group of images evaluated together."""

Truth = Mapping[str, np.ndarray]
Preds = Mapping[str, tuple[np.ndarray, np.ndarray]]


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``a (..., N, 4)`` with ``b (..., M, 4)`` xywh_px boxes -> ``(..., N, M)``; NaN rows give 0.

    The arithmetic is the community kernel's, operation for operation (corners ``x + w``, areas ``w * h``,
    ``union = area_a + area_b - inter``), so that a decimal IoU sitting exactly on a threshold is decided
    by the same float64 rounding as there (see the module docstring).
    """
    a = a[..., :, None, :]
    b = b[..., None, :, :]
    ax, ay, aw, ah = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bx, by, bw, bh = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    iw = np.clip(np.minimum(ax + aw, bx + bw) - np.maximum(ax, bx), 0, None)
    ih = np.clip(np.minimum(ay + ah, by + bh) - np.maximum(ay, by), 0, None)
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        # inter > 0 implies union > 0; a zero-area box (or a NaN padding row) has IoU 0, never 0/0.
        return np.where(inter > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def iou_xywh(a, b) -> np.ndarray:
    """IoU matrix of ``a (N, 4)`` and ``b (M, 4)`` top-left/size pixel boxes -> ``(N, M)`` float64.

    >>> iou_xywh([[0, 0, 10, 10]], [[0, 0, 10, 20], [10, 10, 5, 5]]).tolist()
    [[0.5, 0.0]]
    """
    return _iou(as_boxes(a), as_boxes(b))


@dataclass(frozen=True)
class _Flat:
    """All boxes of all images in flat arrays (``n`` images, ``NG`` truth boxes, ``NP`` predictions);
    predictions sorted by image, then descending confidence (ties in the order given)."""

    ids: tuple[str, ...]
    n_gt: np.ndarray  # (n,) int64
    gt_xywh: np.ndarray  # (NG, 4)
    gt_image: np.ndarray  # (NG,) int64
    n_pr: np.ndarray  # (n,) int64
    pr_xywh: np.ndarray  # (NP, 4)
    pr_conf: np.ndarray  # (NP,)
    pr_image: np.ndarray  # (NP,) int64


def _rows(v) -> np.ndarray:
    """``(N, 4)`` float64 view of ``v``; arrays already in that form pass untouched (the per-image cost)."""
    if type(v) is np.ndarray and v.dtype == np.float64 and v.ndim == 2 and v.shape[1] == 4:
        return v
    return np.asarray(v, dtype=np.float64).reshape(-1, 4)


def _vector(v) -> np.ndarray:
    """``(N,)`` float64 view of ``v``."""
    if type(v) is np.ndarray and v.dtype == np.float64 and v.ndim == 1:
        return v
    return np.asarray(v, dtype=np.float64).reshape(-1)


def _flatten(truth: Truth, preds: Preds) -> _Flat:
    """Validate and flatten the mappings once (per-image Python work is the only per-image cost)."""
    unknown = set(preds) - set(truth)
    if unknown:
        example = sorted(unknown)[0]
        raise ValueError(f"{len(unknown)} predicted image(s) not in the ground truth, e.g. {example}")
    ids = tuple(truth)
    n = len(ids)
    idx = np.arange(n, dtype=np.int64)
    gt_list = [_rows(truth[i]) for i in ids]
    n_gt = np.fromiter(map(len, gt_list), np.int64, n)
    none = (np.zeros((0, 4)), np.zeros(0))
    pr_items = [preds.get(i, none) for i in ids]
    box_list = [_rows(b) for b, _ in pr_items]
    conf_list = [_vector(c) for _, c in pr_items]
    n_pr = np.fromiter(map(len, box_list), np.int64, n)
    n_conf = np.fromiter(map(len, conf_list), np.int64, n)
    if (bad := np.flatnonzero(n_pr != n_conf)).size:
        k = bad[0]
        raise ValueError(f"image {ids[k]}: {n_pr[k]} boxes but {n_conf[k]} confidences")
    pr_image = np.repeat(idx, n_pr)
    pr_conf = np.concatenate(conf_list) if n else np.zeros(0)
    order = np.lexsort((-pr_conf, pr_image))  # lexsort is stable: tied confidences keep the given order
    pr_xywh = np.concatenate(box_list)[order] if n else np.zeros((0, 4))
    gt_xywh = np.concatenate(gt_list) if n else np.zeros((0, 4))
    return _Flat(ids, n_gt, gt_xywh, np.repeat(idx, n_gt), n_pr, pr_xywh, pr_conf[order], pr_image)


@dataclass(frozen=True)
class ImageEvaluation:
    """Per-image matching at every IoU threshold, with all predictions, for one box scale.

    ``n`` images, ``G = max ground-truth boxes per image``, ``T = len(THRESHOLDS)``, ``P`` all predictions.
    """

    ids: tuple[str, ...]
    """``(n,)`` image ids, in the order of ``truth``."""
    n_gt: np.ndarray
    """``(n,)`` int64, ground-truth boxes per image."""
    match_rank: np.ndarray
    """``(n, G, T)`` int64: rank (0 = most confident) of the prediction each ground-truth box took at each
    threshold, :data:`NO_MATCH` if none (and for padding beyond ``n_gt``)."""
    pred_image: np.ndarray
    """``(P,)`` int64: image index of each prediction."""
    pred_conf: np.ndarray
    """``(P,)`` float64: confidence of each prediction."""
    box_scale: float = 1.0

    def n_kept(self, conf: float) -> np.ndarray:
        """``(n,)`` number of predictions with ``confidence >= conf`` per image."""
        keep = self.pred_conf >= conf
        return np.bincount(self.pred_image[keep], minlength=len(self.ids))


def _match_group(gt: np.ndarray, pr: np.ndarray) -> np.ndarray:
    """Greedy GT-major matching for ``B`` images at once.

    ``gt (B, G, 4)`` and ``pr (B, P, 4)`` xywh_px, predictions sorted by confidence, padding rows NaN (IoU 0:
    they never match). Returns ``(B, G, T)`` ranks, :data:`NO_MATCH` where unmatched.
    """
    n_img, n_gt, n_pr = gt.shape[0], gt.shape[1], pr.shape[1]
    hit = _iou(gt, pr)[..., None] >= THRESHOLDS  # (B, G, P, T); NaN >= t is False
    taken = np.zeros((n_img, n_pr, len(THRESHOLDS)), dtype=bool)
    ranks = np.full((n_img, n_gt, len(THRESHOLDS)), NO_MATCH, dtype=np.int64)
    b_idx, t_idx = np.ogrid[:n_img, : len(THRESHOLDS)]
    for g in range(n_gt):  # the greedy order is inherently sequential over ground-truth boxes
        free = hit[:, g] & ~taken  # (B, P, T)
        first = free.argmax(axis=1)  # (B, T): first True along the confidence ranks
        found = free[b_idx, first, t_idx]
        ranks[:, g] = np.where(found, first, NO_MATCH)
        taken[b_idx, first, t_idx] |= found
    return ranks


def _slot(image: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Position of each flat row within its image (rows grouped by image, in order)."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.arange(len(image), dtype=np.int64) - starts[image]


def _evaluate_flat(flat: _Flat, box_scale: float) -> ImageEvaluation:
    n = len(flat.ids)
    pr_xywh = scale_about_centre(flat.pr_xywh, box_scale) if box_scale != 1.0 else flat.pr_xywh
    gt_slot, pr_slot = _slot(flat.gt_image, flat.n_gt), _slot(flat.pr_image, flat.n_pr)

    g_max = int(flat.n_gt.max(initial=0))
    match_rank = np.full((n, g_max, len(THRESHOLDS)), NO_MATCH, dtype=np.int64)
    both = np.flatnonzero((flat.n_gt > 0) & (flat.n_pr > 0))
    # Groups: exact ground-truth count x prediction count rounded up to a power of two (at least MIN_BUCKET):
    # few groups, little padding even when some images carry hundreds of low-confidence boxes.
    p_bucket = np.maximum(MIN_BUCKET, 1 << np.ceil(np.log2(np.maximum(flat.n_pr[both], 1))).astype(np.int64))
    keys = flat.n_gt[both] * (1 << 32) + p_bucket
    key_of = np.full(n, -1, dtype=np.int64)
    key_of[both] = keys
    row_of = np.zeros(n, dtype=np.int64)
    for key in np.unique(keys):
        members = both[keys == key]
        row_of[members] = np.arange(len(members))
        g, p = int(key >> 32), int(key & 0xFFFFFFFF)
        gt_arr = np.empty((len(members), g, 4))
        sel = key_of[flat.gt_image] == key
        gt_arr[row_of[flat.gt_image[sel]], gt_slot[sel]] = flat.gt_xywh[sel]
        pr_arr = np.full((len(members), p, 4), np.nan)
        sel = key_of[flat.pr_image] == key
        pr_arr[row_of[flat.pr_image[sel]], pr_slot[sel]] = pr_xywh[sel]
        match_rank[members, :g] = _match_group(gt_arr, pr_arr)
    return ImageEvaluation(flat.ids, flat.n_gt, match_rank, flat.pr_image, flat.pr_conf, float(box_scale))


def evaluate_images(truth: Truth, preds: Preds, *, box_scale: float = 1.0) -> ImageEvaluation:
    """Phase 1: IoUs and greedy matching of every image at every threshold, with all predictions.

    ``preds`` may omit images (no boxes); an id in ``preds`` but not in ``truth`` is a ``ValueError``.
    Images are grouped by (ground-truth count, prediction count rounded up to a power of two) so that each
    group is one padded array operation; the Python loop runs over groups and ground-truth slots only.
    """
    return _evaluate_flat(_flatten(truth, preds), box_scale)


def accumulate(ev: ImageEvaluation, confs: Iterable[float]) -> np.ndarray:
    """Phase 2: per-image scores ``(C, n)`` for each confidence threshold; NaN marks a left-out image.

    With ``k`` predictions kept, ``TP = #{gt : rank < k}``, ``FP = k - TP``, ``FN = G - TP``, so the
    precision denominator is ``G + k - TP`` (never 0 for a counted image).
    """
    confs = np.atleast_1d(np.asarray(confs if np.isscalar(confs) else list(confs), dtype=np.float64))
    kept = np.stack([ev.n_kept(c) for c in confs])  # (C, n)
    tp = np.zeros((len(confs), len(ev.ids), len(THRESHOLDS)), dtype=np.int64)  # (C, n, T)
    for g in range(ev.match_rank.shape[1]):  # a few ground-truth slots: contiguous (C, n, T) operations
        tp += ev.match_rank[None, :, g, :] < kept[:, :, None]
    denom = ev.n_gt[None, :, None] + kept[:, :, None] - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / denom  # 0/0 -> NaN exactly for images with neither truth nor kept prediction
    return precision.mean(axis=2)


def summarize(scores: np.ndarray) -> np.ndarray | float:
    """Phase 3: mean over images (last axis), ignoring left-out (NaN) images; NaN if none counts."""
    scores = np.asarray(scores, dtype=np.float64)
    counted = ~np.isnan(scores)
    total = np.where(counted, scores, 0.0).sum(axis=-1)
    n = counted.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return float(out) if out.ndim == 0 else out


def per_image_scores(
    truth: Truth, preds: Preds, *, conf: float = 0.0, box_scale: float = 1.0
) -> dict[str, float]:
    """Score of each counted image at one confidence threshold and box scale (left-out images absent)."""
    ev = evaluate_images(truth, preds, box_scale=box_scale)
    scores = accumulate(ev, [conf])[0]
    return {i: float(s) for i, s in zip(ev.ids, scores, strict=True) if not np.isnan(s)}


def kaggle_map(truth: Truth, preds: Preds, *, conf: float = 0.0, box_scale: float = 1.0) -> float:
    """The challenge score of ``preds`` against ``truth`` (NaN when no image counts)."""
    return summarize(accumulate(evaluate_images(truth, preds, box_scale=box_scale), [conf])[0])


def sweep_images(
    truth: Truth, preds: Preds, confs: Iterable[float], box_scales: Iterable[float]
) -> tuple[list[str], np.ndarray]:
    """Phases 1 and 2 of every (box scale, confidence threshold) pair: ``(ids, scores)`` with ``scores`` of
    shape ``(S, C, n)`` (box scales, thresholds, images in ``ids`` order); NaN marks a left-out image. One
    IoU/matching pass per box scale; any subset of images is then scored by :func:`summarize` of its
    columns (what the held-out score of :mod:`analysis.tuning.tuner` does with two halves)."""
    confs = [float(c) for c in confs]
    flat = _flatten(truth, preds)
    per_scale = [accumulate(_evaluate_flat(flat, float(s)), confs) for s in box_scales]
    return list(flat.ids), np.stack(per_scale).reshape(len(per_scale), len(confs), len(flat.ids))


def sweep_table(scores: np.ndarray, confs: Iterable[float], box_scales: Iterable[float]) -> pd.DataFrame:
    """Phase 3 of :func:`sweep_images`' ``(S, C, n)`` scores: a frame ``conf, scale, score``, one row per
    pair (box scales outer, confs inner)."""
    confs, box_scales = [float(c) for c in confs], [float(s) for s in box_scales]
    totals = np.asarray(summarize(scores), dtype=np.float64).reshape(len(box_scales), len(confs))
    rows = [
        (c, s, float(v))
        for s, row in zip(box_scales, totals, strict=True)
        for c, v in zip(confs, row, strict=True)
    ]
    return pd.DataFrame(rows, columns=["conf", "scale", "score"])


def sweep(truth: Truth, preds: Preds, confs: Iterable[float], box_scales: Iterable[float]) -> pd.DataFrame:
    """Score every (confidence threshold, box scale) pair: one IoU/matching pass per scale.

    Returns a frame with columns ``conf, scale, score`` (``scale``: the box scale, as in ``kaggle.json``),
    one row per pair (box scales outer, confs inner).
    """
    confs, box_scales = [float(c) for c in confs], [float(s) for s in box_scales]
    _, scores = sweep_images(truth, preds, confs, box_scales)
    return sweep_table(scores, confs, box_scales)


def frame_to_preds(df: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``patientId,conf,x,y,width,height`` rows (one per box) -> the ``preds`` mapping of this module."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if len(df) == 0:
        return out
    values = df[["x", "y", "width", "height"]].to_numpy(np.float64)
    conf = df["conf"].to_numpy(np.float64)
    codes, uniques = pd.factorize(df["patientId"], sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    for k, pid in enumerate(uniques):
        idx = order[bounds[k] : bounds[k + 1]]
        out[str(pid)] = (values[idx], conf[idx])
    return out


def frame_to_truth(boxes: pd.DataFrame, ids: Iterable[str]) -> dict[str, np.ndarray]:
    """Ground truth for every id in ``ids`` from ``patientId,x,y,width,height`` rows (ids with no row get
    ``(0, 4)``; rows of ids not listed are ignored)."""
    cols = ["x", "y", "width", "height"]
    grouped = {str(k): g[cols].to_numpy(np.float64) for k, g in boxes.groupby("patientId", sort=False)}
    return {str(i): grouped.get(str(i), np.zeros((0, 4))) for i in ids}
