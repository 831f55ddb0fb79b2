"""Submission CSVs: parsing, every malformed case (one error naming the row), writing and validation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.scoring.submission import (
    check_against_ids,
    parse_prediction_string,
    read_submission,
    submission_frame,
    validate_submission,
    write_submission,
)
from rsna_yolo.core.cli import UserError

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
    path = write_submission(tmp_path / "out" / "s.csv", ["a", "b", "c"], preds, conf=0.1, box_scale=0.5)
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


def test_grown_boxes_are_clipped_to_the_frame_so_the_file_validates():
    from analysis.scoring.submission import check_against_ids, parse_submission_rows, submission_frame

    preds = pd.DataFrame(
        {"patientId": ["a"], "conf": [0.9], "x": [900.0], "y": [0.0], "width": [100.0], "height": [100.0]}
    )
    frame = submission_frame(["a", "b"], preds, box_scale=1.5)  # about (950, 50): 875..1025, -25..125
    assert frame["PredictionString"].tolist() == ["0.9000 875.0 0.0 149.0 125.0", ""]
    rows = [["patientId", "PredictionString"], *frame.to_numpy().tolist()]
    assert check_against_ids(parse_submission_rows(rows), ["a", "b"]) == []
