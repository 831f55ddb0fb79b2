"""Weighted box fusion at the real size (analysis.record.fusion, analysis.tuning.wbf) against
ensemble_boxes itself and against the per-image implementation it replaced."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis.inference.predict import PART_COLUMNS
from analysis.record.defaults import DEFAULTS
from analysis.tuning.threshold import best_row, sweep_scores
from analysis.tuning.wbf import fuse_parts, tune_wbf
from rsna_yolo.core.layout import PRED_COLUMNS

WBF_GRID = DEFAULTS.wbf_grid

ensemble_boxes = pytest.importorskip("ensemble_boxes")

SETTINGS = list(itertools.product(WBF_GRID["iou_thr"], WBF_GRID["skip_box_thr"], WBF_GRID["conf_type"]))
VALUES = ["conf", "x", "y", "width", "height"]


def random_parts(seed: int, n_images: int, n_parts: int, *, round_conf: int | None = None) -> pd.DataFrame:
    """Part rows (PART_COLUMNS) of ``n_images`` images: boxes scattered about 1-3 centres (so clusters
    overlap), 0-12 per part; some images with one part empty, one box, or no box in any part but one;
    some reversed, zero-area and out-of-image boxes; ``round_conf`` decimals give tied confidences."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_images):
        w, h = int(rng.integers(40, 300)), int(rng.integers(40, 300))
        kind = i % 5  # 0: normal, 1: one part has boxes, 2: a single box, 3: last part empty, 4: dense
        centres = rng.uniform(0, 1, (int(rng.integers(1, 4)), 2))
        for p in range(n_parts):
            if (kind == 1 and p != i % n_parts) or (kind == 3 and p == n_parts - 1):
                continue
            count = (
                1 if kind == 2 and p == 0 else 0 if kind == 2 else int(rng.integers(0, 13 if kind else 25))
            )
            for _ in range(count):
                cx, cy = (centres[rng.integers(len(centres))] + rng.normal(0, 0.04, 2)) * [w, h]
                bw, bh = rng.uniform(0.05, 0.45, 2) * [w, h]
                conf = float(rng.uniform(0.005, 1.0))
                conf = round(conf, round_conf) if round_conf else conf
                box = [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]
                odd = rng.random()
                if odd < 0.03:
                    box = [box[2], box[1], box[0], box[3]]  # corners reversed
                elif odd < 0.05:
                    box[2] = box[0]  # zero width: ensemble_boxes skips it
                rows.append((f"img{i:03d}", p, conf, *box, w, h, w / 1024))
    return pd.DataFrame(rows, columns=PART_COLUMNS).sample(frac=1.0, random_state=seed)  # rows unordered


def reference_grouping(parts: pd.DataFrame, n_parts: int) -> list[tuple]:
    """Per image ``(patientId, norm, png_scale, boxes, scores)`` as ``analysis.inference.predict.fuse``
    hands them to ensemble_boxes: every part (empty ones too), corners / image size clipped to [0, 1]."""
    out = []
    for pid, image in parts.groupby("patientId", sort=False):
        width, height, png_scale = image[["png_width", "png_height", "png_scale"]].iloc[0]
        norm = np.array([int(width), int(height)] * 2, dtype=np.float64)
        boxes, scores = [], []
        for p in range(n_parts):
            g = image[image["part"] == p]
            boxes.append(np.clip(g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64) / norm, 0, 1).tolist())
            scores.append(g["conf"].tolist())
        out.append((pid, norm, float(png_scale), boxes, scores))
    return out


def reference_fusion(grouped: list[tuple], **setting) -> pd.DataFrame:
    """``ensemble_boxes.weighted_boxes_fusion`` image by image on :func:`reference_grouping`; source-pixel
    xywh, images in order of first appearance."""
    out = []
    for pid, norm, png_scale, boxes, scores in grouped:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its warnings on reversed and zero-area boxes
            fb, fs, _ = ensemble_boxes.weighted_boxes_fusion(boxes, scores, [[0] * len(s) for s in scores],
                                                             **setting)  # fmt: skip
        xyxy = np.asarray(fb, dtype=np.float64).reshape(-1, 4) * norm / png_scale
        out += [(pid, float(c), b[0], b[1], b[2] - b[0], b[3] - b[1]) for c, b in zip(fs, xyxy, strict=True)]
    return pd.DataFrame(out, columns=PRED_COLUMNS)


def old_grouping(parts: pd.DataFrame) -> list[tuple]:
    """The replaced fuse_parts' grouping (pandas, per image then per part), done once for all settings."""
    out = []
    for pid, image in parts.groupby("patientId", sort=False):
        width, height, png_scale = image[["png_width", "png_height", "png_scale"]].iloc[0]
        sets = [
            (g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64), g["conf"].to_numpy(np.float64))
            for _, g in image.groupby("part", sort=True)
        ]
        n_parts = int(image["part"].max()) + 1  # per image: the replaced code's only difference
        sets += [(np.zeros((0, 4)), np.zeros(0))] * (n_parts - len(sets))
        out.append((pid, width, height, png_scale, sets))
    return out


def old_fuse_parts(parts, *, iou_thr: float, skip_box_thr: float, conf_type: str) -> pd.DataFrame:
    """The implementation replaced: ensemble_boxes per image on the pandas grouping (``parts``: a frame or
    its :func:`old_grouping`)."""
    from rsna_yolo.core.boxes import xyxy_to_xywh

    rows = []
    for pid, width, height, png_scale, sets in (
        old_grouping(parts) if isinstance(parts, pd.DataFrame) else parts
    ):
        if len(sets) == 1:
            xyxy, scores = sets[0]
        else:
            norm = np.array([int(width), int(height)] * 2, dtype=np.float64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fb, fs, _ = ensemble_boxes.weighted_boxes_fusion(
                    [np.clip(b / norm, 0, 1).tolist() for b, _ in sets], [c.tolist() for _, c in sets],
                    [[0] * len(c) for _, c in sets], iou_thr=iou_thr, skip_box_thr=skip_box_thr,
                    conf_type=conf_type,
                )  # fmt: skip
            xyxy, scores = np.asarray(fb, dtype=np.float64).reshape(-1, 4) * norm, np.asarray(fs, np.float64)
        xywh = xyxy_to_xywh(xyxy / float(png_scale))
        rows += [(str(pid), float(c), *map(float, b)) for c, b in zip(scores, xywh, strict=True)]
    return pd.DataFrame(rows, columns=PRED_COLUMNS)


def old_tune_wbf(truth, parts, *, grid=WBF_GRID, confs, box_scales):
    """The tune_wbf replaced: every setting fused and swept, all frames kept, first best wins."""
    rows, frames = [], {}
    grouped = old_grouping(parts)
    for iou, skip, kind in itertools.product(grid["iou_thr"], grid["skip_box_thr"], grid["conf_type"]):
        frame = old_fuse_parts(grouped, iou_thr=iou, skip_box_thr=skip, conf_type=kind)
        best = best_row(sweep_scores(truth, frame, [c for c in confs if c >= skip], box_scales))
        rows.append({"iou_thr": iou, "skip_box_thr": skip, "conf_type": kind, **best})
        frames[(iou, skip, kind)] = frame
    table = pd.DataFrame(rows)
    top = table.loc[table["score"].fillna(-1.0).idxmax()]
    key = (float(top["iou_thr"]), float(top["skip_box_thr"]), str(top["conf_type"]))
    best = {"iou_thr": key[0], "skip_box_thr": key[1], "conf_type": key[2], "conf": float(top["conf"]),
            "scale": float(top["scale"]), "score": float(top["score"])}  # fmt: skip
    return best, table, frames[key]


def assert_same(new: pd.DataFrame, ref: pd.DataFrame) -> None:
    """Same boxes, scores and order, bit for bit."""
    assert list(new.columns) == PRED_COLUMNS
    assert new["patientId"].tolist() == ref["patientId"].tolist()
    np.testing.assert_array_equal(new[VALUES].to_numpy(np.float64), ref[VALUES].to_numpy(np.float64))


@pytest.mark.parametrize(("seed", "n_parts", "round_conf"), [(0, 2, None), (1, 3, 2), (2, 2, 1)])
def test_fusion_equals_ensemble_boxes_for_every_setting(seed, n_parts, round_conf):
    """Every WBF_GRID setting on random sets (empty parts, one part only, single boxes, overlapping
    clusters, reversed and zero-area boxes; tied confidences with ``round_conf``): ensemble_boxes' boxes,
    scores and order exactly."""
    parts = random_parts(seed, 20, n_parts, round_conf=round_conf)
    assert (parts.groupby("patientId")["part"].nunique() == 1).any()  # images where one part has boxes
    grouped = reference_grouping(parts, n_parts)
    for iou, skip, kind in SETTINGS:
        setting = {"iou_thr": iou, "skip_box_thr": skip, "conf_type": kind}
        new = fuse_parts(parts, n_parts=n_parts, **setting)
        assert_same(new, reference_fusion(grouped, **setting))
        assert len(new) > 0


def test_fusion_defaults_and_edges():
    """ensemble_boxes' own defaults (skip 0, iou 0.55, avg), a tie-heavy image, all boxes under the skip
    threshold (no row), and one part (not fused: boxes only mapped to the source frame)."""
    parts = random_parts(7, 20, 2, round_conf=1)
    defaults = {"iou_thr": 0.55, "skip_box_thr": 0.0, "conf_type": "avg"}
    assert_same(fuse_parts(parts, **defaults), reference_fusion(reference_grouping(parts, 2), **defaults))
    low = parts.assign(conf=0.004)
    assert len(fuse_parts(low, iou_thr=0.55, skip_box_thr=0.01, conf_type="avg")) == 0
    one = parts[parts["part"] == 0]
    fused = fuse_parts(one, iou_thr=0.55, skip_box_thr=0.5, conf_type="max")
    assert_same(fused, old_fuse_parts(one, iou_thr=0.55, skip_box_thr=0.5, conf_type="max"))
    assert len(fused) == len(one)  # no skip threshold without fusion, as predict_images' single model


def test_a_part_with_no_box_is_fused_as_at_inference():
    """An image whose last part found nothing is fused with that part empty, as predict_images fuses it
    (ensemble_boxes given the empty part); the replaced code returned that image's first-part boxes
    unfused. Images with boxes in the last part are fused as before."""
    parts = random_parts(3, 10, 2)
    only_first = parts[parts["patientId"] == "img003"]  # kind 3: the last part is empty
    assert set(only_first["part"]) == {0}
    setting = {"iou_thr": 0.55, "skip_box_thr": 0.01, "conf_type": "avg"}
    fused = fuse_parts(parts, **setting)
    assert_same(fused, reference_fusion(reference_grouping(parts, 2), **setting))
    old = old_fuse_parts(parts, **setting)
    assert sorted(old.loc[old["patientId"] == "img003", "conf"]) == sorted(only_first["conf"])  # unfused
    assert len(fused[fused["patientId"] == "img003"]) < len(only_first)
    last = set(parts.loc[parts["part"] == 1, "patientId"])
    assert_same(fused[fused["patientId"].isin(last)], old[old["patientId"].isin(last)])


def fold_set_fixture(seed: int = 11, n_images: int = 60):
    """Truth and two-part (flip TTA) predictions shaped like a fold set's out-of-fold ones: every image has
    boxes in both parts; positives get noisy copies of their truth boxes, every image some false boxes."""
    rng = np.random.default_rng(seed)
    truth, rows = {}, []
    for i in range(n_images):
        pid, size, png_scale = f"p{i:04d}", 128, 0.125
        n_gt = int(rng.choice([0, 0, 1, 2]))
        gt = np.column_stack([rng.uniform(100, 600, (n_gt, 2)), rng.uniform(150, 350, (n_gt, 2))])
        truth[pid] = gt
        for part in range(2):
            boxes = [(g, rng.uniform(0.3, 0.95)) for g in gt for _ in range(int(rng.integers(1, 3)))]
            boxes = [(g + rng.normal(0, 25, 4), c) for g, c in boxes]
            boxes += [(np.r_[rng.uniform(0, 800, 2), rng.uniform(60, 300, 2)], rng.uniform(0.01, 0.5))
                      for _ in range(int(rng.integers(1, 8)))]  # fmt: skip
            for xywh, conf in boxes:
                x1, y1 = xywh[:2] * png_scale
                x2, y2 = x1 + xywh[2] * png_scale, y1 + xywh[3] * png_scale
                rows.append((pid, part, float(conf), x1, y1, x2, y2, size, size, png_scale))
    return truth, pd.DataFrame(rows, columns=PART_COLUMNS)


CONFS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
BOX_SCALES = (1.0, 0.85)


def test_tune_wbf_unchanged_against_the_replaced_implementation():
    """Same table (every setting's best threshold, box scale and score), same chosen setting and the same
    fused frame as the per-image implementation, on a fold-set-like fixture."""
    truth, parts = fold_set_fixture()
    old_best, old_table, old_frame = old_tune_wbf(truth, parts, confs=CONFS, box_scales=BOX_SCALES)
    best, table, frame = tune_wbf(truth, parts, confs=CONFS, box_scales=BOX_SCALES, workers=1)
    assert best == old_best
    pd.testing.assert_frame_equal(table, old_table, check_exact=True)
    assert_same(frame, old_frame)
    assert table["score"].nunique() > 1 and 0.0 < best["score"] < 1.0  # the grid really chooses


def test_tune_wbf_same_with_one_and_two_workers():
    truth, parts = fold_set_fixture(seed=12, n_images=80)
    one = tune_wbf(truth, parts, confs=CONFS, box_scales=BOX_SCALES, workers=1)
    two = tune_wbf(truth, parts, confs=CONFS, box_scales=BOX_SCALES, workers=2)
    assert one[0] == two[0]
    pd.testing.assert_frame_equal(one[1], two[1], check_exact=True)
    assert_same(two[2], one[2])


def test_fuse_batch_equals_fuse_image_by_image():
    """fusion.fuse_batch (many images in one call) returns predict.fuse's boxes and scores for each image,
    images with no box at all and a single part included."""
    from analysis.inference.predict import fuse
    from analysis.record.fusion import fuse_batch

    parts = random_parts(5, 24, 4, round_conf=2)
    images, sizes = [], []
    for _, image in parts.groupby("patientId", sort=False):
        sets = [image[image["part"] == p] for p in range(4)]
        images.append([(g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64), g["conf"].to_numpy(np.float64))
                       for g in sets])  # fmt: skip
        sizes.append((int(image["png_width"].iloc[0]), int(image["png_height"].iloc[0])))
    images.append([(np.zeros((0, 4)), np.zeros(0))] * 4)  # nothing found by any part
    sizes.append((64, 64))
    for iou, skip, kind in [(0.55, None, "avg"), (0.45, 0.05, "max"), (0.65, 0.01, "absent_model_aware_avg")]:
        setting = {"conf": 0.01, "iou_thr": iou, "skip_box_thr": skip, "conf_type": kind}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = [fuse(p, w, h, **setting) for p, (w, h) in zip(images, sizes, strict=True)]
        got = fuse_batch(images, sizes, **setting)
        assert len(got) == len(expected)
        for (gb, gc), (eb, ec) in zip(got, expected, strict=True):
            np.testing.assert_array_equal(gc, ec)
            np.testing.assert_array_equal(gb.reshape(-1, 4), eb.reshape(-1, 4))
    single = [p[:1] for p in images]
    assert all(
        g is s[0] for g, s in zip(fuse_batch(single, sizes, conf=0.01, iou_thr=0.55), single, strict=True)
    )


def test_fusion_in_chunks_equals_fusion_in_one(monkeypatch):
    """Images fused in many small chunks (fusion.SLOT_BUDGET: bounded memory at any size) give the same
    boxes as all at once."""
    import analysis.record.fusion as fusion

    parts = random_parts(9, 40, 3, round_conf=2)
    setting = {"iou_thr": 0.55, "skip_box_thr": 0.01, "conf_type": "box_and_model_avg"}
    whole = fuse_parts(parts, **setting)
    monkeypatch.setattr(fusion, "SLOT_BUDGET", 40)  # a chunk of 1-4 images
    assert_same(fuse_parts(parts, **setting), whole)
    assert_same(whole, reference_fusion(reference_grouping(parts, 3), **setting))
