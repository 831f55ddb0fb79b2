"""Tests of ``convert.synth_sample``: the shipped real box sets and sampling with the real statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from convert import synth, synth_sample
from rsna_yolo.core.boxes import xywh_to_xyxy


def test_shipped_box_sets_are_the_real_files_sets(sample_dir: Path):
    """The shipped table is exactly what --labels-csv makes of the real stage-2 labels file."""
    shipped = synth_sample.load_box_sets()
    real = synth_sample.load_box_sets(sample_dir / synth.LABELS_CSV)
    assert len(shipped) == len(real) == 6012 and sum(len(s) for s in shipped) == 9555
    assert all(np.array_equal(a, b) for a, b in zip(shipped, real, strict=True))
    assert synth.box_source() == "shipped" and synth.box_source(sample_dir) == str(sample_dir)


def test_shipped_box_sets_are_whole_pixels_in_the_frame():
    sets = synth_sample.load_box_sets()
    boxes = np.concatenate(sets)
    assert boxes.shape == (9555, 4) and (boxes == np.round(boxes)).all()
    assert (boxes[:, 2:] > 0).all() and (boxes[:, :2] >= 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= 1024).all() and (boxes[:, 1] + boxes[:, 3] <= 1024).all()
    assert {len(s) for s in sets} == {1, 2, 3, 4}


def test_box_sets_from_a_given_labels_csv(tmp_path: Path):
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "patientId,x,y,width,height,Target\n"
        "b,10.0,20.0,30.0,40.0,1\n"
        "a,,,,,0\n"
        "c,1.0,2.0,3.0,4.0,1\n"
        "c,100.0,200.0,300.0,400.0,1\n"
    )
    sets = synth_sample.load_box_sets(csv)
    assert [s.tolist() for s in sets] == [[[10, 20, 30, 40]], [[1, 2, 3, 4], [100, 200, 300, 400]]]
    (tmp_path / "bad.csv").write_text("patientId,x\n")
    with pytest.raises(ValueError, match="missing column"):
        synth_sample.load_box_sets(tmp_path / "bad.csv")


# ----------------------------------------------------------------------------------------------------
# Sampling (pure; no rendering)
# ----------------------------------------------------------------------------------------------------


def test_class_fractions_match_the_real_file(sample_dir: Path):
    classes = pd.read_csv(sample_dir / synth.CLASS_CSV).drop_duplicates("patientId")["class"]
    real = classes.value_counts(normalize=True)
    for cls in synth_sample.CLASSES:
        assert synth_sample.CLASS_FRACTIONS[cls] == pytest.approx(real[cls], abs=1e-9)


def test_sampled_patients_follow_the_real_distributions(real_labels: pd.DataFrame):
    n = 20_000
    specs = synth_sample.sample_patients(np.random.default_rng(0), n, synth_sample.load_box_sets())
    counts = {cls: sum(s.cls == cls for s in specs) / n for cls in synth_sample.CLASSES}
    for cls in synth_sample.CLASSES:  # binomial standard error at n=20000 is under 0.0036
        assert counts[cls] == pytest.approx(synth_sample.CLASS_FRACTIONS[cls], abs=0.015)
    # Boxes per positive image: the real distribution (about 43% one box, 54% two, 2% three).
    real_k = real_labels[real_labels["Target"] == 1].groupby("patientId").size().value_counts(normalize=True)
    pos = [s for s in specs if s.cls == synth_sample.LUNG_OPACITY]
    k = pd.Series([len(s.boxes_xywh_px) for s in pos]).value_counts(normalize=True)
    for boxes in (1, 2, 3):
        assert k[boxes] == pytest.approx(real_k[boxes], abs=0.02)
    assert all(len(s.boxes_xywh_px) == 0 for s in specs if s.cls != synth_sample.LUNG_OPACITY)
    # No two boxes of one image overlap heavily (whole real box sets never exceed IoU 0.06).
    for spec in pos:
        xyxy = xywh_to_xyxy(spec.boxes_xywh_px)
        for i in range(len(xyxy)):
            for j in range(i + 1, len(xyxy)):
                lo, hi = np.maximum(xyxy[i, :2], xyxy[j, :2]), np.minimum(xyxy[i, 2:], xyxy[j, 2:])
                inter = np.prod(np.clip(hi - lo, 0, None))
                union = np.prod(spec.boxes_xywh_px[i, 2:]) + np.prod(spec.boxes_xywh_px[j, 2:]) - inter
                assert inter / union < 0.1
    # Not Normal patients carry a finding, Normal ones none; AP more common among positives.
    assert all(s.findings for s in specs if s.cls == synth_sample.NOT_NORMAL)
    assert not any(s.findings for s in specs if s.cls == synth_sample.NORMAL)

    def ap(cls):
        return np.mean([s.view == "AP" for s in specs if s.cls == cls])

    assert ap(synth_sample.LUNG_OPACITY) > 0.65 > ap(synth_sample.NOT_NORMAL) > ap(synth_sample.NORMAL)
    ages = np.array([int(s.age) for s in specs])
    assert ages.min() >= 1 and 40 < np.median(ages) < 60
    assert len({s.patient_id for s in specs}) == n


def test_format_coord_matches_the_real_file():
    assert synth.format_coord(264) == "264.0"
    assert synth.format_coord(53.25) == "53.25"
