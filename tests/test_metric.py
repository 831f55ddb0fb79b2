"""The Kaggle metric: hand-computed cases for each rule, and agreement with a plain loop implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.scoring.metric import (
    THRESHOLDS,
    accumulate,
    evaluate_images,
    frame_to_preds,
    iou_xywh,
    kaggle_map,
    per_image_scores,
    summarize,
    sweep,
)

LOOP_THRESHOLDS = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75)
NONE = np.zeros((0, 4))


# ---------------------------------------------------------------------------------------------------------
# The straightforward reference: one image at a time, one box at a time (also used by the benchmark).
def loop_iou(a, b) -> float:
    ax1, ay1, aw, ah = (float(v) for v in a)
    bx1, by1, bw, bh = (float(v) for v in b)
    ix = min(ax1 + aw, bx1 + bw) - max(ax1, bx1)
    iy = min(ay1 + ah, by1 + bh) - max(ay1, by1)
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


def loop_image_score(gt, boxes, conf, *, gt_major: bool = True) -> float | None:
    """Score of one image; None when left out. ``gt_major=False`` walks predictions instead (Kaggle's
    prose): each prediction, most confident first, takes the unmatched ground truth of highest IoU >= t."""
    order = sorted(range(len(conf)), key=lambda j: -conf[j])  # sorted() is stable: ties keep given order
    boxes = [boxes[j] for j in order]
    if len(gt) == 0:
        return None if len(boxes) == 0 else 0.0
    total = 0.0
    for t in LOOP_THRESHOLDS:
        tp = 0
        if gt_major:
            used = set()
            for g in gt:
                for j, p in enumerate(boxes):
                    if j not in used and loop_iou(g, p) >= t:
                        used.add(j)
                        tp += 1
                        break
        else:
            used_gt = set()
            for p in boxes:
                best, best_iou = None, -1.0
                for i, g in enumerate(gt):
                    v = loop_iou(g, p)
                    if i not in used_gt and v >= t and v > best_iou:
                        best, best_iou = i, v
                if best is not None:
                    used_gt.add(best)
                    tp += 1
        total += tp / (tp + (len(boxes) - tp) + (len(gt) - tp))
    return total / len(LOOP_THRESHOLDS)


def loop_per_image(truth, preds, conf_thr=0.0, scale=1.0, gt_major=True) -> dict[str, float]:
    out = {}
    for pid, gt in truth.items():
        boxes, conf = preds.get(pid, (NONE, np.zeros(0)))
        kept = [(list(b), c) for b, c in zip(boxes, conf, strict=True) if c >= conf_thr]
        if scale != 1.0:
            kept = [([x + w / 2 - w * scale / 2, y + h / 2 - h * scale / 2, w * scale, h * scale], c)
                    for (x, y, w, h), c in kept]  # fmt: skip
        s = loop_image_score(list(gt), [b for b, _ in kept], [c for _, c in kept], gt_major=gt_major)
        if s is not None:
            out[pid] = s
    return out


def loop_kaggle_map(truth, preds, conf_thr=0.0, scale=1.0) -> float:
    scores = loop_per_image(truth, preds, conf_thr, scale)
    return sum(scores.values()) / len(scores) if scores else math.nan


def random_dataset(n: int, seed: int, *, max_gt: int = 4, max_pred: int = 10, decimal: bool = False):
    """Images with 0..max_gt integer-pixel GT boxes and 0..max_pred predictions, many near a GT box, with
    confidences on a 0.1 grid so ties are common, and integer boxes so IoUs exactly at a threshold occur.
    ``decimal``: predictions on a 0.1-px grid instead, as a submission writes them."""
    rng = np.random.default_rng(seed)
    truth, preds = {}, {}
    for k in range(n):
        g = int(rng.integers(0, max_gt + 1))
        gt = np.column_stack([rng.integers(0, 200, (g, 2)), rng.integers(10, 60, (g, 2))]).astype(float)
        p = int(rng.integers(0, max_pred + 1))
        near = rng.random(p) < 0.6
        boxes = np.column_stack([rng.integers(0, 200, (p, 2)), rng.integers(10, 60, (p, 2))]).astype(float)
        if g:
            src = gt[rng.integers(0, g, p)]
            jitter = rng.integers(-6, 7, (p, 4)).astype(float)
            jitter[:, 2:] = np.maximum(src[:, 2:] + jitter[:, 2:], 2) - src[:, 2:]
            boxes = np.where(near[:, None], src + jitter, boxes)
        if decimal:
            boxes = np.round(boxes + rng.integers(-9, 10, (p, 4)) / 10, 1)
            boxes[:, 2:] = np.maximum(boxes[:, 2:], 1.0)
        pid = f"img{k:05d}"
        truth[pid] = gt
        if p or rng.random() < 0.5:  # some images absent from preds, some present with no box
            preds[pid] = (boxes, np.round(rng.random(p), 1))
    return truth, preds


# ---------------------------------------------------------------------------------------------------------
# IoU
def test_iou_values_and_shape():
    a = [[0, 0, 10, 10], [5, 5, 10, 10]]
    b = [[0, 0, 10, 20], [10, 10, 5, 5], [100, 100, 1, 1]]
    iou = iou_xywh(a, b)
    assert iou.shape == (2, 3)
    assert iou[0].tolist() == [0.5, 0.0, 0.0]
    assert iou[1, 0] == 50 / 250  # inter 5x10, union 100 + 200 - 50
    assert iou[1, 1] == 25 / 100
    assert iou_xywh(NONE, b).shape == (0, 3)
    assert iou_xywh([[0, 0, 0, 10]], [[0, 0, 0, 10]]).tolist() == [[0.0]]  # degenerate: 0, not NaN


def test_thresholds_are_the_decimal_literals():
    assert THRESHOLDS.tolist() == list(LOOP_THRESHOLDS)
    assert THRESHOLDS[5] == 0.65 != np.arange(0.4, 0.76, 0.05)[5]  # why arange would be wrong


# ---------------------------------------------------------------------------------------------------------
# One rule per test, values by hand.
def test_no_truth_and_a_box_scores_zero():
    truth = {"neg": NONE, "pos": np.array([[0.0, 0, 10, 10]])}
    preds = {"neg": (np.array([[50.0, 50, 5, 5]]), np.array([0.2])), "pos": (truth["pos"], np.array([0.9]))}
    assert per_image_scores(truth, preds) == {"neg": 0.0, "pos": 1.0}
    assert kaggle_map(truth, preds) == 0.5


def test_neither_truth_nor_box_is_left_out():
    truth = {"neg": NONE, "neg2": NONE, "pos": np.array([[0.0, 0, 10, 10]])}
    preds = {"pos": (truth["pos"], np.array([0.9])), "neg2": (NONE, np.zeros(0))}
    assert per_image_scores(truth, preds) == {"pos": 1.0}
    assert kaggle_map(truth, preds) == 1.0
    assert math.isnan(kaggle_map({"neg": NONE}, {}))


def test_iou_exactly_at_a_threshold_matches():
    gt = np.array([[0.0, 0, 10, 10]])
    half = np.array([[0.0, 0, 10, 20]])  # IoU 100/200 = 0.5 exactly
    assert iou_xywh(gt, half)[0, 0] == 0.5
    # matches at 0.40, 0.45, 0.50: 3 thresholds of 8 with precision 1, the other 5 have TP0 FP1 FN1
    assert per_image_scores({"a": gt}, {"a": (half, np.array([1.0]))}) == {"a": 3 / 8}
    gt2 = np.array([[0.0, 0, 20, 10]])
    p = np.array([[0.0, 0, 9, 10]])  # IoU 90/200: the double nearest 9/20 is the literal 0.45
    assert iou_xywh(gt2, p)[0, 0] == 0.45
    assert per_image_scores({"a": gt2}, {"a": (p, np.array([1.0]))}) == {"a": 2 / 8}


def test_decimal_boxes_on_a_threshold_follow_the_kernel_arithmetic():
    """1-decimal predictions (as a submission writes them) whose exact IoU is a threshold: float64 decides,
    with the kernel's operations (areas ``w * h``). Corner-based areas would give 0.49999999999999956 for
    the first pair (a miss at 0.50) and 0.6000000000000001 for the second (a hit at 0.60)."""
    gt, pr = np.array([[474.0, 709, 96, 31]]), np.array([[453.7, 700.3, 120, 49.6]])  # exactly 2976 / 5952
    assert iou_xywh(gt, pr)[0, 0] == 0.5 == loop_iou(gt[0], pr[0])
    assert per_image_scores({"a": gt}, {"a": (pr, np.array([0.9]))}) == {"a": 3 / 8}
    gt, pr = np.array([[291.0, 468, 144, 265]]), np.array([[267, 476.3, 128.4, 254.4]])  # exactly 0.6
    assert iou_xywh(gt, pr)[0, 0] == 0.5999999999999999 == loop_iou(gt[0], pr[0])
    assert per_image_scores({"a": gt}, {"a": (pr, np.array([0.9]))}) == {"a": 4 / 8}


def test_two_predictions_on_one_box():
    gt = np.array([[10.0, 10, 30, 30]])
    preds = {"a": (np.repeat(gt, 2, axis=0), np.array([0.9, 0.8]))}
    assert per_image_scores({"a": gt}, preds) == {"a": 0.5}  # TP 1, FP 1 at every threshold


def test_ground_truth_without_prediction_is_a_false_negative():
    gt = np.array([[0.0, 0, 10, 10], [50, 50, 10, 10]])
    assert per_image_scores({"a": gt}, {"a": (gt[:1], np.array([0.5]))}) == {"a": 0.5}  # TP1 FN1
    assert per_image_scores({"a": gt}, {}) == {"a": 0.0}


# Two adjacent ground-truth boxes A, B and a wide prediction W over both: IoU(W, A) = 0.45, IoU(W, B) =
# 100/190; a second prediction N equals A.
A, B = [0.0, 0, 10, 10], [10.0, 0, 10, 10]
WIDE, NARROW = [1.0, 0, 19, 10], A


def test_confidence_order_decides_the_match():
    truth = {"a": np.array([A, B])}
    wide_first = {"a": (np.array([WIDE, NARROW]), np.array([0.9, 0.8]))}
    narrow_first = {"a": (np.array([WIDE, NARROW]), np.array([0.8, 0.9]))}
    # W first: at 0.40/0.45 A takes W and B is missed (1/3); at 0.50 A takes N, B takes W (1);
    # from 0.55 W matches nothing (1/3).
    assert per_image_scores(truth, wide_first)["a"] == pytest.approx((2 / 3 + 1 + 5 / 3) / 8)
    # N first: A takes N, B takes W up to 0.50 (1), then 1/3.
    assert per_image_scores(truth, narrow_first)["a"] == pytest.approx((3 + 5 / 3) / 8)


def test_tied_confidences_keep_the_given_order():
    truth = {"a": np.array([A, B])}
    tied = np.array([0.5, 0.5])
    as_wide_first = per_image_scores(truth, {"a": (np.array([WIDE, NARROW]), tied)})["a"]
    as_narrow_first = per_image_scores(truth, {"a": (np.array([NARROW, WIDE]), tied)})["a"]
    assert as_wide_first == pytest.approx((2 / 3 + 1 + 5 / 3) / 8)
    assert as_narrow_first == pytest.approx((3 + 5 / 3) / 8)


def test_gt_major_and_prediction_major_matching_differ_on_the_wide_box():
    """Our (GT-major) rule vs Kaggle's prose read as prediction-major with best-IoU ground truth."""
    truth = {"a": np.array([A, B])}
    preds = {"a": (np.array([WIDE, NARROW]), np.array([0.9, 0.8]))}
    ours = per_image_scores(truth, preds)["a"]
    assert ours == pytest.approx(loop_per_image(truth, preds)["a"])
    # prediction-major: W takes B (its best IoU) at 0.40..0.50 and N takes A: 1, then 1/3 from 0.55
    assert loop_per_image(truth, preds, gt_major=False)["a"] == pytest.approx((3 + 5 / 3) / 8)
    assert ours == pytest.approx(10 / 24) != pytest.approx(14 / 24)


def test_confidence_threshold_keeps_equal_and_higher():
    gt = np.array([[0.0, 0, 10, 10]])
    preds = {"a": (np.array([[0.0, 0, 10, 10], [50, 50, 10, 10]]), np.array([0.5, 0.3])), "n": (gt, [0.3])}
    truth = {"a": gt, "n": NONE}
    assert per_image_scores(truth, preds, conf=0.3) == {"a": 0.5, "n": 0.0}
    assert per_image_scores(truth, preds, conf=0.31) == {"a": 1.0}
    assert per_image_scores(truth, preds, conf=0.5) == {"a": 1.0}
    assert per_image_scores(truth, preds, conf=0.51) == {"a": 0.0}


def test_scale_shrinks_predictions_about_their_centre():
    gt = np.array([[0.0, 0, 10, 10]])
    preds = {"a": (np.array([[-5.0, -5, 20, 20]]), np.array([0.9]))}  # IoU 100/400 = 0.25
    assert kaggle_map({"a": gt}, preds) == 0.0
    assert kaggle_map({"a": gt}, preds, box_scale=0.5) == 1.0


def test_unknown_predicted_image_is_an_error():
    with pytest.raises(ValueError, match="not in the ground truth"):
        kaggle_map({"a": NONE}, {"b": (NONE, np.zeros(0))})


def test_mismatched_confidences_are_an_error():
    with pytest.raises(ValueError, match="confidences"):
        kaggle_map({"a": NONE}, {"a": (np.zeros((2, 4)), np.zeros(3))})


def test_phases_and_summary():
    truth, preds = random_dataset(50, seed=3)
    ev = evaluate_images(truth, preds)
    assert ev.match_rank.shape == (50, 4, 8)
    scores = accumulate(ev, [0.0, 0.5])
    assert scores.shape == (2, 50)
    assert summarize(scores).tolist() == [kaggle_map(truth, preds), kaggle_map(truth, preds, conf=0.5)]
    assert math.isnan(summarize(np.array([np.nan, np.nan])))


def test_frame_to_preds_groups_rows():
    import pandas as pd

    df = pd.DataFrame(
        {"patientId": ["b", "a", "b"], "conf": [0.1, 0.2, 0.3], "x": [1, 2, 3], "y": [0, 0, 0]}
    ).assign(width=5, height=6)
    out = frame_to_preds(df)
    assert sorted(out) == ["a", "b"]
    assert out["b"][0].tolist() == [[1, 0, 5, 6], [3, 0, 5, 6]] and out["b"][1].tolist() == [0.1, 0.3]


# ---------------------------------------------------------------------------------------------------------
# Agreement with the loop on thousands of random images.
@pytest.mark.parametrize(("conf", "scale"), [(0.0, 1.0), (0.35, 1.0), (0.0, 0.85), (0.6, 0.9)])
def test_agrees_with_loop_on_random_images(conf, scale):
    truth, preds = random_dataset(2000, seed=int(conf * 100 + scale * 10))
    fast = per_image_scores(truth, preds, conf=conf, box_scale=scale)
    slow = loop_per_image(truth, preds, conf, scale)
    assert fast.keys() == slow.keys()
    worst = max(abs(fast[k] - slow[k]) for k in slow)
    assert worst <= 1e-9
    expected = loop_kaggle_map(truth, preds, conf, scale)
    assert abs(kaggle_map(truth, preds, conf=conf, box_scale=scale) - expected) < 1e-9


def test_agrees_with_loop_on_random_decimal_boxes():
    truth, preds = random_dataset(2000, seed=11, decimal=True)
    assert any(np.any(v[0] % 1 != 0) for v in preds.values())
    fast = per_image_scores(truth, preds, conf=0.2)
    slow = loop_per_image(truth, preds, 0.2)
    assert fast.keys() == slow.keys()
    assert max(abs(fast[k] - slow[k]) for k in slow) <= 1e-9


def test_random_data_exercise_the_rules():
    """Guard against a random generator that never hits the interesting cases."""
    truth, preds = random_dataset(2000, seed=0)
    scores = per_image_scores(truth, preds)
    assert 0 < sum(v == 0 for v in scores.values()) < len(scores)
    assert sum(0 < v < 1 for v in scores.values()) > 200
    assert len(scores) < len(truth)  # some left out
    exact = sum(
        bool(np.isin(iou_xywh(truth[k], preds[k][0]), THRESHOLDS).any()) for k in preds if len(truth[k])
    )
    assert exact > 0  # IoUs exactly at a threshold occur


def test_sweep_equals_independent_scorings():
    truth, preds = random_dataset(300, seed=7)
    confs, scales = [0.0, 0.2, 0.45, 0.9], [1.0, 0.8, 0.95]
    table = sweep(truth, preds, confs, scales)
    assert list(table.columns) == ["conf", "scale", "score"] and len(table) == 12
    for row in table.itertuples():
        assert row.score == kaggle_map(truth, preds, conf=row.conf, box_scale=row.scale)
