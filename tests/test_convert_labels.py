"""rsna_yolo.core.labels: the real CSVs, and every kind of bad row with the row number a spreadsheet shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.labels import find_labels, is_safe_id, read_labels

LABELS = """patientId,x,y,width,height,Target
a,,,,,0
b,10,20,30,40,1
b,10,20,30,40,1
b,50,60,70,80,1
c,,,,,1
d,1,2,abc,4,1
e,-1,2,3,4,1
f,1,2,0,4,1
g,,,,,0
g,1,2,3,4,1
../evil,1,2,3,4,1
h,1,2,3,4,0
i,,,,,2
j,1,2,3,4,1
j,NaN,2,3,4,1
k,,,,,0
m,,,,,0
"""
CLASSES = """patientId,class
a,Normal
b,Lung Opacity
b,Lung Opacity
b,Lung Opacity
c,Lung Opacity
d,Lung Opacity
e,Lung Opacity
f,Lung Opacity
g,Normal
g,Lung Opacity
../evil,Lung Opacity
h,Normal
i,Normal
j,Lung Opacity
j,Lung Opacity
k,Lung Opacity
n,Normal
"""


def write(folder: Path, labels: str, classes: str, stage: int = 2) -> Path:
    (folder / f"stage_{stage}_train_labels.csv").write_text(labels)
    (folder / f"stage_{stage}_detailed_class_info.csv").write_text(classes)
    return folder


def test_real_files(sample_dir: Path):
    labels = find_labels(sample_dir)
    assert labels.skips == []
    assert len(labels.patients) == 26684 and len(labels.boxes) == 9555
    assert labels.patients["class"].value_counts().to_dict() == {
        "No Lung Opacity / Not Normal": 11821,
        "Normal": 8851,
        "Lung Opacity": 6012,
    }
    assert labels.patients["n_boxes"].sum() == 9555
    assert (labels.patients["Target"] == 1).sum() == 6012
    assert labels.boxes_of("00436515-870c-4b36-a041-de91049b9ab4").tolist() == [
        [264.0, 152.0, 213.0, 379.0],
        [562.0, 152.0, 256.0, 453.0],
    ]
    assert labels.boxes_of("0004cfab-14fd-4e49-80ba-63a80b6bddd6").shape == (0, 4)


def test_every_bad_row_is_skipped_with_its_row(tmp_path: Path):
    labels = find_labels(write(tmp_path, LABELS, CLASSES))
    got = {(s.file, s.row, s.patientId, s.reason) for s in labels.skips}
    lab, cls = "stage_2_train_labels.csv", "stage_2_detailed_class_info.csv"
    lost = "; no valid box left, patient left out"
    assert got == {
        (lab, 4, "b", "duplicate of row 3"),
        (lab, 6, "c", "Target=1 row with a missing or NaN box value" + lost),
        (lab, 7, "d", "non-numeric width 'abc'"),
        (lab, 8, "e", "Target=1 row with a negative box value" + lost),
        (lab, 9, "f", "Target=1 row with a zero-size box" + lost),
        (lab, 10, "g", "conflicting Target for one patient (rows 10, 11)"),
        (lab, 12, "../evil", "patientId is not a plain identifier"),
        (lab, 13, "h", "Target=0 row with box values"),
        (lab, 14, "i", "Target '2' is not 0 or 1"),
        (lab, 16, "j", "Target=1 row with a missing or NaN box value"),
        (lab, 18, "m", "no row in stage_2_detailed_class_info.csv"),
        (cls, 17, "k", "class 'Lung Opacity' disagrees with Target=0"),
        (cls, 18, "n", "no row in stage_2_train_labels.csv"),
    }
    assert labels.patients.index.tolist() == ["a", "b", "j"]
    assert labels.patients["n_boxes"].tolist() == [0, 2, 1]
    assert labels.boxes_of("b").tolist() == [[10, 20, 30, 40], [50, 60, 70, 80]]
    assert labels.boxes_of("j").tolist() == [[1, 2, 3, 4]]


def test_stage1_names_accepted(tmp_path: Path):
    labels = find_labels(write(tmp_path, LABELS, CLASSES, stage=1))
    assert labels.label_file == "stage_1_train_labels.csv"
    assert labels.patients.index.tolist() == ["a", "b", "j"]


def test_missing_column_is_one_user_error(tmp_path: Path):
    write(tmp_path, LABELS.replace("height", "h"), CLASSES)
    with pytest.raises(UserError, match=r"stage_2_train_labels.csv: required column 'height' missing"):
        find_labels(tmp_path)
    write(tmp_path, LABELS, CLASSES.replace("class", "klass"))
    with pytest.raises(UserError, match=r"stage_2_detailed_class_info.csv: required column 'class'"):
        find_labels(tmp_path)
    with pytest.raises(UserError, match=r"none of stage_2_train_labels\.csv, stage_1_train_labels\.csv"):
        find_labels(tmp_path / "nowhere")


def test_safe_ids():
    assert is_safe_id("0004cfab-14fd-4e49-80ba-63a80b6bddd6")
    for bad in ("..", ".", "", "a/b", "a\\b", "../x", "a b", "x;rm", "é"):
        assert not is_safe_id(bad), bad


def test_real_boxes_are_valid_and_keep_their_rows(sample_dir: Path):
    # 30,227 data rows: spreadsheet rows 2..30,228.
    csvs = sample_dir / "stage_2_train_labels.csv", sample_dir / "stage_2_detailed_class_info.csv"
    labels = read_labels(*csvs)
    assert int(labels.boxes["row"].max()) <= 30228
    assert np.all(labels.boxes[["width", "height"]].to_numpy() > 0)
