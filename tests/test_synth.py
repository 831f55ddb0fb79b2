"""Tests of ``convert.synth``: the Kaggle layout written by ``generate``, determinism, the command line."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import REPO_ROOT, subprocess_env
from test_synth_dicom import _read, _tag_vrs

from convert import synth, synth_sample

# ----------------------------------------------------------------------------------------------------
# The Kaggle layout written by generate()
# ----------------------------------------------------------------------------------------------------

N_TRAIN, N_TEST = 50, 10
COORD = re.compile(r"^\d+\.\d+$")  # "264.0", as the real labels file writes coordinates


@pytest.fixture(scope="module")
def real_dicom(sample_dir: Path) -> pydicom.Dataset:
    return _read(sorted((sample_dir / "stage_2_train_images").glob("*.dcm"))[0])


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    summary = synth.generate(out, N_TRAIN, N_TEST, seed=7)
    assert summary["train_patients"] == N_TRAIN and summary["test_patients"] == N_TEST
    return out


def _real_box_tuples(labels: pd.DataFrame) -> set[tuple[float, ...]]:
    pos = labels[labels["Target"] == 1]
    return set(map(tuple, pos[["x", "y", "width", "height"]].to_numpy(float)))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_generate_writes_the_kaggle_layout(synth_dir: Path):
    assert sorted(p.name for p in synth_dir.iterdir()) == sorted(
        [
            "README.md",
            synth.TRAIN_IMAGES,
            synth.TEST_IMAGES,
            synth.LABELS_CSV,
            synth.CLASS_CSV,
            synth.SUBMISSION_CSV,
        ]
    )
    train_ids = sorted(p.stem for p in (synth_dir / synth.TRAIN_IMAGES).glob("*.dcm"))
    test_ids = sorted(p.stem for p in (synth_dir / synth.TEST_IMAGES).glob("*.dcm"))
    assert len(train_ids) == N_TRAIN and len(test_ids) == N_TEST
    assert not set(train_ids) & set(test_ids)
    for pid in train_ids + test_ids:
        assert uuid.UUID(pid).version == 4 and str(uuid.UUID(pid)) == pid
    labels = pd.read_csv(synth_dir / synth.LABELS_CSV)
    assert sorted(labels["patientId"].unique()) == train_ids
    submission = pd.read_csv(synth_dir / synth.SUBMISSION_CSV)
    assert sorted(submission["patientId"]) == test_ids
    assert "SYNTHETIC" in (synth_dir / "README.md").read_text()
    assert "--seed 7" in (synth_dir / "README.md").read_text()


def test_labels_csv_has_the_real_structure(synth_dir: Path, sample_dir: Path, real_labels: pd.DataFrame):
    real_lines = _lines(sample_dir / synth.LABELS_CSV)
    lines = _lines(synth_dir / synth.LABELS_CSV)
    assert lines[0] == real_lines[0] == "patientId,x,y,width,height,Target"
    for line in lines[1:]:
        _, *coords, target = line.split(",")
        if target == "0":
            assert coords == ["", "", "", ""]  # negatives: empty box fields, as in the real file
        else:
            assert target == "1" and all(COORD.match(c) for c in coords), line
    assert any(COORD.match(c) for line in real_lines[1:] for c in line.split(",")[1:5])  # same float style
    labels = pd.read_csv(synth_dir / synth.LABELS_CSV)
    assert list(labels.dtypes) == list(real_labels.dtypes)  # pandas reads both the same way
    assert list(labels["patientId"]) == sorted(labels["patientId"])  # sorted, like the real file
    # Every patient's rows are consecutive and negatives have exactly one row.
    runs = (labels["patientId"] != labels["patientId"].shift()).sum()
    assert runs == labels["patientId"].nunique()
    assert (labels[labels["Target"] == 0].groupby("patientId").size() == 1).all()


def test_class_csv_is_row_aligned_with_labels(synth_dir: Path, sample_dir: Path):
    assert (
        _lines(synth_dir / synth.CLASS_CSV)[0] == _lines(sample_dir / synth.CLASS_CSV)[0] == "patientId,class"
    )
    labels = pd.read_csv(synth_dir / synth.LABELS_CSV)
    classes = pd.read_csv(synth_dir / synth.CLASS_CSV)
    assert len(labels) == len(classes)
    assert (labels["patientId"] == classes["patientId"]).all()
    assert set(classes["class"]) <= set(synth_sample.CLASSES)
    assert ((classes["class"] == synth_sample.LUNG_OPACITY) == (labels["Target"] == 1)).all()


def test_sample_submission_format(synth_dir: Path):
    lines = _lines(synth_dir / synth.SUBMISSION_CSV)
    assert lines[0] == "patientId,PredictionString"
    assert all(line.endswith(",0.5 0 0 100 100") for line in lines[1:])
    assert len(lines) == N_TEST + 1


def test_generated_dicoms_read_back_like_the_real_files(synth_dir: Path, real_dicom: pydicom.Dataset):
    real_vrs = _tag_vrs(real_dicom)
    for path in sorted((synth_dir / synth.TRAIN_IMAGES).glob("*.dcm"))[:12]:
        ds = _read(path)
        assert ds.file_meta.TransferSyntaxUID == real_dicom.file_meta.TransferSyntaxUID
        assert _tag_vrs(ds) == real_vrs, path.name
        assert ds.PatientID == ds.PatientName == path.stem
        assert ds.PatientAge.isdigit() and ds.PatientSex in ("M", "F") and ds.ViewPosition in ("AP", "PA")
        assert ds.SeriesDescription == f"view: {ds.ViewPosition}"
        assert ds.pixel_array.shape == (1024, 1024) and ds.pixel_array.dtype == np.uint8


def test_generated_boxes_are_real_boxes(synth_dir: Path, real_labels: pd.DataFrame):
    labels = pd.read_csv(synth_dir / synth.LABELS_CSV)
    boxes = labels[labels["Target"] == 1][["x", "y", "width", "height"]].to_numpy(float)
    assert len(boxes) > 0
    real = _real_box_tuples(real_labels)
    assert all(tuple(b) in real for b in boxes)


# ----------------------------------------------------------------------------------------------------
# Determinism and the command line
# ----------------------------------------------------------------------------------------------------


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_is_byte_identical_for_a_seed(tmp_path: Path):
    a = synth.generate(tmp_path / "a", 8, 3, seed=11, imgsz=256)
    b = synth.generate(tmp_path / "b", 8, 3, seed=11, imgsz=256, workers=2)
    assert a["classes"] == b["classes"]
    first, second = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert len(first) == 8 + 3 + 4 and first == second
    synth.generate(tmp_path / "c", 8, 3, seed=12, imgsz=256)
    assert _tree_bytes(tmp_path / "c")[synth.LABELS_CSV] != first[synth.LABELS_CSV]


def test_hard_difficulty_same_patients_and_labels_other_films(tmp_path: Path):
    """--difficulty hard: the CSVs (patients, classes, boxes) equal the easy level's for a seed; the films
    differ; two hard runs (1 and 2 workers) are byte-identical; an unknown level is refused."""
    easy = synth.generate(tmp_path / "easy", 10, 2, seed=4, imgsz=128)
    hard = synth.generate(tmp_path / "hard", 10, 2, seed=4, imgsz=128, difficulty="hard")
    synth.generate(tmp_path / "again", 10, 2, seed=4, imgsz=128, difficulty="hard", workers=2)
    e, h, a = (_tree_bytes(tmp_path / d) for d in ("easy", "hard", "again"))
    assert (easy["difficulty"], hard["difficulty"]) == ("easy", "hard") and h == a
    for name in (synth.LABELS_CSV, synth.CLASS_CSV, synth.SUBMISSION_CSV):
        assert e[name] == h[name]
    dicoms = [k for k in e if str(k).endswith(".dcm")]
    assert len(dicoms) == 12 and all(e[k] != h[k] for k in dicoms)
    assert "--difficulty hard" in h["README.md"].decode()
    with pytest.raises(ValueError, match="difficulty must be one of easy, hard"):
        synth.generate(tmp_path / "bad", 1, 0, seed=0, imgsz=128, difficulty="medium")


def test_generate_scales_boxes_to_imgsz(tmp_path: Path, real_labels: pd.DataFrame):
    synth.generate(tmp_path, 30, 0, seed=3, imgsz=256)
    labels = pd.read_csv(tmp_path / synth.LABELS_CSV)
    boxes = labels[labels["Target"] == 1][["x", "y", "width", "height"]].to_numpy(float) * 4
    assert len(boxes) > 0 and all(tuple(b) in _real_box_tuples(real_labels) for b in boxes)
    ds = _read(next((tmp_path / synth.TRAIN_IMAGES).glob("*.dcm")))
    assert (ds.Rows, ds.Columns) == (256, 256)


def test_generate_refuses_to_mix_with_an_earlier_run(tmp_path: Path):
    synth.generate(tmp_path, 2, 1, seed=0, imgsz=128)
    with pytest.raises(FileExistsError):
        synth.generate(tmp_path, 2, 0, seed=1, imgsz=128)
    synth.generate(tmp_path, 2, 0, seed=1, imgsz=128, overwrite=True)
    assert len(list(tmp_path.rglob("*.dcm"))) == 2


def test_cli_writes_and_summarises(tmp_path: Path):
    cmd = [sys.executable, "-m", "convert", "synth", "--out", str(tmp_path), "--patients", "4"]
    cmd += ["--test-patients", "1", "--seed", "5", "--imgsz", "128"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("synth (easy): wrote 4 train (") and "1 test DICOMs" in done.stdout
    assert len(list((tmp_path / synth.TRAIN_IMAGES).glob("*.dcm"))) == 4
    again = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=REPO_ROOT)
    assert again.returncode == 2
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m convert: error:") and "--overwrite" in last
    assert "Traceback" not in again.stderr
