"""``analysis score``: the library function on a hand-made dataset, the command on the real labels file."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.scoring.score import score_submission
from rsna_yolo.core.cli import UserError
from tests.conftest import REPO_ROOT, subprocess_env
from tests.fake_dataset import fake_dataset

HEADER = "patientId,PredictionString\n"


def write(tmp_path: Path, text: str, name: str = "sub.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_score_submission_on_a_handmade_dataset(tmp_path):
    """val of the hand-made dataset: v1 (Lung Opacity, one box at 1,3 5x7) and v2 (Normal, no box)."""
    root = fake_dataset(tmp_path / "ds")
    # v1's box grown twofold about its centre (box scale 0.5 restores it exactly); a false box on v2
    sub = write(tmp_path, HEADER + "v1,0.9 -1.5 -0.5 10 14\nv2,0.5 0 0 4 4\n")
    per_csv = tmp_path / "per.csv"
    result = score_submission(root / "data.yaml", sub, split="val", box_scale=0.5, per_image_csv=per_csv)
    assert result.score == 0.5 and (result.n_scored, result.n_left_out, result.n_absent) == (2, 0, 0)
    assert result.per_image.to_dict("list") == {
        "patientId": ["v1", "v2"],
        "class": ["Lung Opacity", "Normal"],
        "n_truth": [1, 0],
        "n_pred": [1, 1],
        "score": [1.0, 0.0],
    }
    assert pd.read_csv(per_csv)["score"].tolist() == [1.0, 0.0]
    assert result.breakdown["false_box_loss"] == 0.5 and result.breakdown["lung_opacity_loss"] == 0.0

    # unscaled, v1's box has IoU 35/140 = 0.25 < 0.4: no match; above conf 0.6 v2 has no box: left out
    assert score_submission(root / "data.yaml", sub, split="val").score == 0.0
    high = score_submission(root / "data.yaml", sub, split="val", conf=0.6, box_scale=0.5)
    assert high.score == 1.0 and (high.n_scored, high.n_left_out) == (1, 1)
    assert math.isnan(high.per_image["score"].iloc[1])

    # a patient the truth lacks: an error, or ignored with subset (scoring only the patients named)
    other = write(tmp_path, HEADER + "v1,0.9 -1.5 -0.5 10 14\nzz,\n", "other.csv")
    with pytest.raises(UserError, match=r"other\.csv:3 \(zz\): patient not in the truth \(1 such rows\)"):
        score_submission(root / "data.yaml", other, split="val")
    said = []
    subset = score_submission(
        root / "data.yaml", other, split="val", subset=True, box_scale=0.5, echo=said.append
    )
    assert subset.score == 1.0 and len(subset.per_image) == 1
    assert said == ["note: 1 patient(s) not in the truth ignored, e.g. zz"]
    with pytest.raises(UserError, match=r"^--conf 2: a confidence threshold is between 0 and 1$"):
        score_submission(root / "data.yaml", other, conf=2.0)


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


def test_score_cli_rejects_a_bad_scale(tmp_path):
    sub = write(tmp_path, HEADER + "a,\n")
    res = run_analysis("score", "--truth", tmp_path, "--submission", sub, "--scale", "-1")
    assert res.returncode == 2 and "--scale -1: the box scale must be positive" in res.stderr
