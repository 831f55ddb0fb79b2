"""``rsna-yolo recipe``: the shipped tiny recipe end to end, its record, a rerun that redoes nothing, one
changed key that reruns exactly the steps using it, and a kill -9 mid-training whose rerun ends with the bytes
of the uninterrupted run. Real runs of the real commands (synthetic data, 64 px, 1 epoch)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, subprocess_env
from tests.test_report_html import needs_chromium, rendered_images

TINY = REPO_ROOT / "yolo_configs" / "recipes" / "tiny.yaml"
STEPS = ["data", "convert", "detector", "classifier", "gate", "submit", "report"]
# What the kill -9 test compares: the submission and what decides it (every out-of-fold box and probability).
ANSWERS = ["submission.csv", "runs/det/predictions_oof.csv", "runs/cls/classifier_oof.csv"]


def recipe(out: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rsna_yolo", "recipe", str(TINY), "--out", str(out), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=out.parent)
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def record(out: Path) -> dict:
    return json.loads((out / "recipe.json").read_text())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, str]:
    """One uninterrupted run of tiny.yaml."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    return out, recipe(out).stdout


def test_tiny_end_to_end(tiny) -> None:
    from analysis.scoring.submission import validate_submission

    out, printed = tiny
    rec = record(out)
    assert rec["order"] == STEPS
    for name in STEPS:
        step = rec["steps"][name]
        assert step["status"] == "done" and step["seconds"] >= 0 and len(step["key"]) == 16, name
        assert step["command"].startswith("rsna-yolo ") or name == "report"
    assert all(rec["steps"][n]["peak_mb"] > 50 for n in STEPS if n != "report")
    for name in ("detector", "gate"):  # the tuned and the held-out score of each scored step
        assert 0 <= rec["steps"][name]["score"] <= 1 and rec["steps"][name]["score_heldout"] is not None
    assert 0 <= rec["steps"]["classifier"]["auc_opacity"] <= 1
    # The recorded command is the one that ran: the converter's line, typed by a person, parses the same.
    assert "rsna-yolo train folds" in rec["steps"]["detector"]["command"]
    sub = validate_submission(out / "submission.csv", out / "kaggle" / "stage_2_test_images")
    assert len(sub.ids) == 6
    assert "SYNTHETIC data" in printed and "SYNTHETIC data" in (out / "report.html").read_text()


@needs_chromium
def test_report_renders_in_chromium(tiny) -> None:
    out, _ = tiny
    images = rendered_images(out / "report.html")
    assert {i[0] for i in images} == {"recipe_thresholds.png", "recipe_gate.png"}
    assert all(complete and width > 100 for _, complete, width, _ in images)
    page = (out / "report.html").read_text()
    for name in STEPS:
        assert f"<td>{name}</td>" in page, name
    assert "The worst films" in page


def test_rerun_redoes_nothing(tiny, tmp_path: Path) -> None:
    out, _ = tiny
    copy = tmp_path / "run"
    shutil.copytree(out, copy, symlinks=True)
    before = record(copy)
    printed = recipe(copy).stdout
    assert printed.count("done before, kept") == len(STEPS)
    after = record(copy)
    for name in STEPS:
        assert after["steps"][name] == before["steps"][name], name


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> tuple[Path, dict, str]:
    """tiny.yaml killed with SIGKILL (the recipe and its steps) while the detector's second fold trains,
    then the same command again: the folder, the record the kill left, what the rerun printed."""
    root = tmp_path_factory.mktemp("killed")
    out = root / "run"
    cmd = [sys.executable, "-m", "rsna_yolo", "recipe", str(TINY), "--out", str(out)]
    proc = subprocess.Popen(cmd, env=subprocess_env(), cwd=root, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    fold0 = out / "runs" / "det" / "fold0" / "kaggle.json"
    deadline = time.monotonic() + 240
    while not fold0.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the recipe ended before the kill"
    time.sleep(2.0)  # fold 1 of the detector is training
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    after_kill = record(out)
    return out, after_kill, recipe(out).stdout


def test_kill_9_mid_training_then_rerun_gives_the_same_bytes(tiny, killed) -> None:
    (out, _), (again, after_kill, printed) = tiny, killed
    assert after_kill["steps"]["detector"]["status"] == "running" and "classifier" not in after_kill["steps"]
    assert "detector: interrupted (running): finishing it" in printed
    assert "fold 0 of 2: done" in (again / "logs" / "detector.log").read_text()
    for name in ANSWERS:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_one_changed_key_reruns_exactly_the_steps_using_it(killed) -> None:
    """(After the test above: this one changes the folder.) Flip TTA switched on: a step of its own (flips
    and their fusion tuned out of fold), then the gate and the submission again; the rest kept."""
    out = killed[0]
    printed = recipe(out, "--set", "tuning.tta=true").stdout
    kept = [n for n in STEPS if f"] {n}: done before, kept" in printed]
    rerun = [n for n in STEPS if f"] {n}: changed" in printed]
    assert kept == ["data", "convert", "detector", "classifier"]
    assert rerun == ["gate", "submit", "report"]
    assert "] tta: flip TTA and its fusion, tuned out of fold" in printed
    assert "gate: changed (now --tta)" in printed
    tuned = json.loads((out / "runs" / "det" / "kaggle_oof_tta_gated.json").read_text())
    assert tuned["tta"] is True and tuned["wbf"]["conf_type"] == "max" and "gate" in tuned
    assert "--tta" in record(out)["steps"]["submit"]["command"]
    # The submission predicted with that fusion: the record read back gives it, not the fold set's default.
    from analysis.inference import TunedSetting

    setting = TunedSetting.from_run(out / "runs" / "det" / "kaggle_oof_tta_gated.json")
    assert setting.tta and dict(setting.wbf) == tuned["wbf"] and len(setting.weights) == 2
    weights = list(setting.weights)
    assert dict(setting.for_weights(weights, tta=True, imgsz=None).wbf) == tuned["wbf"]
