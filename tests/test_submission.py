"""Submission CSVs: parsing, every malformed case (one error naming the row), writing, validation, and the
``score`` / ``validate`` commands on the real labels file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.rescore import breakdown, read_truth, split_images
from analysis.submission import (
    check_against_ids,
    image_ids,
    parse_prediction_string,
    read_submission,
    submission_frame,
    validate_submission,
    write_submission,
)
from core.cli import UserError
from core.layout import dataset_split
from tests.conftest import REPO_ROOT, subprocess_env

HEADER = "patientId,PredictionString\n"


def write(tmp_path: Path, text: str, name: str = "sub.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_prediction_string():
    arr = parse_prediction_string("  0.9 10 20 30 40   0.5 0 0 5.5 5 ")
    assert arr.tolist() == [[0.9, 10, 20, 30, 40], [0.5, 0, 0, 5.5, 5]]
    assert parse_prediction_string("").shape == (0, 5)
    assert parse_prediction_string("1 0 0 0 0").tolist() == [[1, 0, 0, 0, 0]]  # bounds included


def test_read_submission_keeps_every_patient_and_box(tmp_path):
    path = write(tmp_path, HEADER + "a,0.9 10 20 30 40 0.5 1 2 3 4\nb,\n\nc,0.1 0 0 1 1\n")
    sub = read_submission(path)
    assert sub.ids == ["a", "b", "c"] and sub.rows == [2, 3, 5]
    assert sub.boxes["patientId"].tolist() == ["a", "a", "c"]
    assert sub.boxes[["conf", "x", "y", "width", "height"]].to_numpy().tolist() == [
        [0.9, 10, 20, 30, 40],
        [0.5, 1, 2, 3, 4],
        [0.1, 0, 0, 1, 1],
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("patientId,Prediction\na,\n", r"sub\.csv:1: header must be exactly patientId,PredictionString"),
        ("id,PredictionString\na,\n", r":1: header"),
        ("", r":1: header"),
        (
            HEADER + "a,\nb,0.5 1 2 3\n",
            r"sub\.csv:3 \(b\): prediction string has 4 values, not a multiple of 5",
        ),
        (HEADER + "a,0.5 1 2 3 4 0.3\n", r":2 \(a\): .*6 values"),
        (HEADER + "a,0.5 1 two 3 4\n", r":2 \(a\): non-numeric value 'two' \(value 3\)"),
        (HEADER + "a,0.5 1 nan 3 4\n", r":2 \(a\): non-finite value 'nan'"),
        (HEADER + "a,0.5 1 2 -3 4\n", r":2 \(a\): box 1: negative size -3 x 4"),
        (HEADER + "a,0.5 1 2 3 4 0.5 1 2 3 -0.1\n", r":2 \(a\): box 2: negative size"),
        (HEADER + "a,1.5 1 2 3 4\n", r":2 \(a\): box 1: confidence 1.5 outside \[0, 1\]"),
        (HEADER + "a,-0.1 1 2 3 4\n", r"confidence -0.1 outside"),
        (HEADER + "a,\nb,\na,0.5 1 2 3 4\n", r":4 \(a\): duplicate patientId \(first on row 2\)"),
        (HEADER + "a,0.5 1 2 3 4,extra\n", r":2: expected 2 fields"),
        (HEADER + ",0.5 1 2 3 4\n", r":2: empty patientId"),
    ],
)
def test_malformed_submission_is_one_clear_error(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=message) as info:
        read_submission(path)
    assert "\n" not in str(info.value)


def test_write_then_read_round_trip(tmp_path):
    preds = pd.DataFrame(
        {
            "patientId": ["b", "a", "b", "b"],
            "conf": [0.3, 0.8, 0.9, 0.05],
            "x": [10.0, 0, 100, 5],
            "y": [10.0, 0, 100, 5],
            "width": [50.0, 20, 40, 5],
            "height": [50.0, 20, 40, 5],
        }
    )
    path = write_submission(tmp_path / "out" / "s.csv", ["a", "b", "c"], preds, conf=0.1, scale=0.5)
    assert path.read_text().splitlines() == [
        "patientId,PredictionString",
        "a,0.8000 5.0 5.0 10.0 10.0",
        "b,0.9000 110.0 110.0 20.0 20.0 0.3000 22.5 22.5 25.0 25.0",  # most confident first; 0.05 dropped
        "c,",
    ]
    sub = read_submission(path)
    assert sub.ids == ["a", "b", "c"] and len(sub.boxes) == 3
    frame = submission_frame(["c"], preds)
    assert frame.to_dict("records") == [{"patientId": "c", "PredictionString": ""}]


def test_validate_against_image_folder(tmp_path):
    images = tmp_path / "test"
    images.mkdir()
    for pid in ("p1", "p2", "p3"):
        (images / f"{pid}.dcm").write_bytes(b"")
    good = write(tmp_path, HEADER + "p1,0.5 0 0 1024 1024\np2,\np3,0.2 10 10 20 20\n")
    assert validate_submission(good, images).ids == ["p1", "p2", "p3"]
    bad = write(tmp_path, HEADER + "p1,\np4,\np3,0.5 1000 10 100 20\n", "bad.csv")
    with pytest.raises(UserError) as info:
        validate_submission(bad, images)
    text = str(info.value)
    assert "bad.csv:3 (p4): patient not in the image folder" in text
    assert "1 patient(s) of the image folder missing, e.g. p2" in text
    assert "bad.csv:4 (p3): 1 box(es) outside the 1024-px image" in text
    assert check_against_ids(read_submission(good), ["p1", "p2", "p3"]) == []


def test_breakdown_losses_add_up():
    truth = {
        "n1": np.zeros((0, 4)),  # Normal, false box: score 0
        "n2": np.zeros((0, 4)),  # Normal, no box: left out
        "o1": np.zeros((0, 4)),  # Not Normal, false box
        "p1": np.array([[0.0, 0, 10, 10]]),  # Lung Opacity, perfect
        "p2": np.array([[0.0, 0, 10, 10]]),  # Lung Opacity, missed
    }
    classes = {"n1": "Normal", "n2": "Normal", "o1": "No Lung Opacity / Not Normal"}
    classes |= {"p1": "Lung Opacity", "p2": "Lung Opacity"}
    scores = {"n1": 0.0, "o1": 0.0, "p1": 1.0, "p2": 0.0}
    b = breakdown(scores, truth, classes, {"n1": 1, "o1": 2, "p1": 1})
    assert b["n_scored"] == 4 and b["loss"] == 0.75
    assert b["false_box_loss"] == 0.5 and b["lung_opacity_loss"] == 0.25
    normal, lo = b["classes"]["Normal"], b["classes"]["Lung Opacity"]
    assert (normal["n_images"], normal["n_scored"], normal["n_with_boxes"]) == (2, 1, 1)
    assert normal["mean_score"] == 0.0 and normal["loss_share"] == pytest.approx(1 / 3)
    assert lo["mean_score"] == 0.5 and lo["missed_images"] == 1
    assert lo["missed_loss"] == 0.25 and lo["misplaced_loss"] == 0.0
    assert sum(c["loss"] for c in b["classes"].values()) == pytest.approx(b["loss"])


def run_analysis(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def printed_score(proc: subprocess.CompletedProcess) -> float:
    return float(re.search(r"Kaggle score ([0-9.]+)", proc.stdout).group(1))


@pytest.fixture(scope="module")
def real_truth(sample_dir):
    return read_truth(sample_dir / "stage_2_train_labels.csv")


def test_real_labels_as_truth(real_truth):
    assert len(real_truth.truth) == 26684
    assert sum(len(v) for v in real_truth.truth.values()) == 9555
    assert sum(c == "Lung Opacity" for c in real_truth.classes.values()) == 6012
    assert real_truth.notes == []


def test_score_cli_on_real_labels(tmp_path, sample_dir):
    """Score a hand-made submission for 4 real patients: 2 positives (one exact, one shifted box), one
    Normal with a false box and one Normal without; the other 26,680 patients absent (no box)."""
    labels = pd.read_csv(sample_dir / "stage_2_train_labels.csv")
    classes = pd.read_csv(sample_dir / "stage_2_detailed_class_info.csv")
    one_box = labels.groupby("patientId").filter(lambda g: len(g) == 1 and g["Target"].iloc[0] == 1)
    thirds = one_box[one_box["width"] % 3 == 0]  # an integer shift of w/3 keeps every value exact
    pos = pd.concat([one_box.iloc[:1], thirds[thirds["patientId"] != one_box.iloc[0]["patientId"]].iloc[:1]])
    normal = classes[classes["class"] == "Normal"]["patientId"].drop_duplicates().iloc[:2].tolist()
    x, y, w, h = pos.iloc[1][["x", "y", "width", "height"]]
    # shifted right by w/3 (an integer): IoU = (2/3)/(4/3) = 0.5 exactly -> matches at 0.40..0.50: 3/8
    rows = [
        f"{pos.iloc[0]['patientId']},0.9 {pos.iloc[0]['x']} {pos.iloc[0]['y']} {pos.iloc[0]['width']} "
        f"{pos.iloc[0]['height']}",
        f"{pos.iloc[1]['patientId']},0.8 {x + w // 3} {y} {w} {h}",
        f"{normal[0]},0.4 100 100 200 200",
        f"{normal[1]},",
    ]
    sub = write(tmp_path, HEADER + "\n".join(rows) + "\n")
    per_image = tmp_path / "per.csv"
    truth_csv = sample_dir / "stage_2_train_labels.csv"
    full = run_analysis("score", "--truth", truth_csv, "--submission", sub, "--per-image", per_image)
    assert full.returncode == 0, full.stderr
    # every other positive (6,010) scores 0, the two scored positives 1 and 3/8, one Normal 0
    expected_full = (1 + 3 / 8) / (6012 + 1)
    assert printed_score(full) == pytest.approx(expected_full, abs=1e-6)
    assert "6013 images scored" in full.stdout
    table = pd.read_csv(per_image)
    assert len(table) == 26684 and table["score"].notna().sum() == 6013

    subset = run_analysis("score", "--truth", truth_csv, "--submission", sub, "--subset")
    assert subset.returncode == 0, subset.stderr
    expected_subset = (1 + 3 / 8 + 0) / 3  # the Normal without a box is left out
    assert printed_score(subset) == pytest.approx(expected_subset, abs=1e-6)
    assert "Normal" in subset.stdout and "3 images scored" in subset.stdout

    unknown = write(tmp_path, HEADER + "not-a-patient,\n", "unknown.csv")
    res = run_analysis("score", "--truth", truth_csv, "--submission", unknown)
    assert res.returncode == 2
    assert "unknown.csv:2 (not-a-patient): patient not in the truth" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1

    malformed = write(tmp_path, HEADER + f"{normal[0]},0.5 1 2 3\n", "bad.csv")
    res = run_analysis("score", "--truth", truth_csv, "--submission", malformed)
    assert res.returncode == 2 and "bad.csv:2" in res.stderr and "multiple of 5" in res.stderr


def fake_dataset(root: Path) -> Path:
    """A hand-made converted dataset: 4 labelled patients (manifest val = v1, v2; train = t1, t2), one test
    patient, and a fold YAML whose val list names t1 and v1."""
    rows = [
        ("v1", "val", 0, "Lung Opacity", 1, 1),
        ("v2", "val", 0, "Normal", 0, 0),
        ("t1", "train", 1, "Lung Opacity", 1, 1),
        ("t2", "train", 1, "Normal", 0, 0),
        ("x1", "test", "", "", "", ""),
    ]
    manifest = pd.DataFrame(rows, columns=["patientId", "split", "fold", "class", "Target", "n_boxes"])
    manifest = manifest.assign(png=[f"images/{s}/{p}.png" for p, s, *_ in rows], scale=1.0)
    root.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(root / "manifest.csv", index=False)
    boxes = pd.DataFrame({"patientId": ["v1", "t1"], "x": [1, 2], "y": [3, 4], "width": [5, 6]})
    boxes["height"] = [7, 8]
    boxes.to_csv(root / "boxes.csv", index=False)
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\n")
    (root / "folds").mkdir(exist_ok=True)
    (root / "folds" / "fold1_val.txt").write_text(f"{root}/images/train/t1.png\n{root}/images/val/v1.png\n")
    fold = f"path: {root}\ntrain: folds/fold1_train.txt\nval: folds/fold1_val.txt\n"
    (root / "folds" / "fold1.yaml").write_text(fold)
    for p, s, *_ in rows:
        (root / "images" / s).mkdir(parents=True, exist_ok=True)
        (root / "images" / s / f"{p}.png").write_bytes(b"")
    return root


def test_truth_of_a_split_follows_the_data_yaml(tmp_path):
    """A fold YAML's val is its own list (t1, v1), not the manifest's split column (v1, v2)."""
    root = fake_dataset(tmp_path / "ds")
    plain = read_truth(root / "data.yaml", split="val")
    assert sorted(plain.truth) == ["v1", "v2"] and plain.truth["v1"].tolist() == [[1, 3, 5, 7]]
    fold = read_truth(root / "folds" / "fold1.yaml", split="val")
    assert sorted(fold.truth) == ["t1", "v1"] and fold.truth["t1"].tolist() == [[2, 4, 6, 8]]
    assert fold.classes == {"t1": "Lung Opacity", "v1": "Lung Opacity"}
    assert sorted(read_truth(root, split="train").truth) == ["t1", "t2"]
    assert sorted(read_truth(root).truth) == ["t1", "t2", "v1", "v2"]  # every labelled split
    with pytest.raises(UserError, match="split 'test' has no labels"):  # no test entry: the manifest's
        read_truth(root / "data.yaml", split="test")
    (root / "images" / "val" / "v2.png").unlink()  # a folder split still means the manifest's rows
    assert sorted(read_truth(root / "data.yaml", split="val").truth) == ["v1", "v2"]
    with pytest.raises(UserError, match=r"v2\.png: image listed in the manifest is missing"):
        split_images(*dataset_split(root / "data.yaml", "val"), "val")
    (root / "folds" / "fold1_val.txt").write_text(f"{root}/images/train/zz.png\n")
    with pytest.raises(UserError, match=r"fold1\.yaml: val: 1 image\(s\) not in .*manifest\.csv, e\.g\. zz"):
        read_truth(root / "folds" / "fold1.yaml", split="val")


def test_submit_settings_and_png_manifest(tmp_path):
    from analysis.submit_cli import check_settings, find_manifest

    check_settings(0.0, 0.8)
    check_settings(1.0, 1.0)
    with pytest.raises(UserError, match=r"--conf 1\.5: a confidence threshold is between 0 and 1"):
        check_settings(1.5, 1.0)
    with pytest.raises(UserError, match="--scale 0: the box scale must be positive"):
        check_settings(0.5, 0.0)
    root = fake_dataset(tmp_path / "ds")
    val = root / "images" / "val"
    assert find_manifest(val, image_ids(val)) == root.resolve() / "manifest.csv"
    dicoms = tmp_path / "dicoms"
    dicoms.mkdir()
    (dicoms / "p.dcm").write_bytes(b"")
    assert find_manifest(dicoms, image_ids(dicoms)) is None  # DICOMs carry their own frame
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "p.png").write_bytes(b"")
    assert find_manifest(loose, image_ids(loose)) is None


def test_score_cli_rejects_a_bad_scale(tmp_path):
    sub = write(tmp_path, HEADER + "a,\n")
    res = run_analysis("score", "--truth", tmp_path, "--submission", sub, "--scale", "-1")
    assert res.returncode == 2 and "--scale -1: the box scale must be positive" in res.stderr


def test_grown_boxes_are_clipped_to_the_frame_so_the_file_validates():
    from analysis.submission import check_against_ids, parse_submission_rows, submission_frame

    preds = pd.DataFrame(
        {"patientId": ["a"], "conf": [0.9], "x": [900.0], "y": [0.0], "width": [100.0], "height": [100.0]}
    )
    frame = submission_frame(["a", "b"], preds, scale=1.5)  # grown about (950, 50): 875..1025, -25..125
    assert frame["PredictionString"].tolist() == ["0.9000 875.0 0.0 149.0 125.0", ""]
    rows = [["patientId", "PredictionString"], *frame.to_numpy().tolist()]
    assert check_against_ids(parse_submission_rows(rows), ["a", "b"]) == []
