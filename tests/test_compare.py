"""``analysis compare`` on tiny real runs trained here with different hyperparameters, plus broken folders."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from analysis.reports import compare, compare_runs, compare_table
from tests.conftest import REPO_ROOT, subprocess_env

RUNS = {  # name -> overrides; everything else is shared
    "sgd_lr01": {"optimizer": "SGD", "lr0": 0.01, "epochs": 2},
    "sgd_lr05": {"optimizer": "SGD", "lr0": 0.05, "epochs": 2},
    "adamw_lr01": {"optimizer": "AdamW", "lr0": 0.01, "epochs": 1},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A converted synthetic dataset (24 patients, 64 px) and three 1-2 epoch yolo11n runs on it."""
    from ultralytics import YOLO

    from convert.rsna import convert_rsna
    from convert.synth import generate

    root = tmp_path_factory.mktemp("compare")
    generate(root / "kaggle", patients=24, test_patients=0, seed=0, imgsz=256)
    convert_rsna(root / "kaggle", root / "ds", imgsz=64, workers=1, progress=False, echo=lambda *a: None)
    runs = {}
    for name, overrides in RUNS.items():
        YOLO("yolo11n.yaml").train(
            data=str(root / "ds" / "data.yaml"), imgsz=64, batch=8, workers=0, device="cpu", plots=False,
            project=str(root / "runs"), name=name, exist_ok=True, verbose=False, **overrides,
        )  # fmt: skip
        runs[name] = root / "runs" / name
    return {"root": root, "data": root / "ds" / "data.yaml", **runs}


def read_results(run: Path) -> list[dict]:
    """results.csv rows as floats, read with the csv module (independently of pandas)."""
    with open(run / "results.csv", newline="") as f:
        return [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_table_holds_the_runs_real_values(trained: dict[str, Path], tmp_path: Path) -> None:
    runs_dir = trained["root"] / "runs"
    # Malformed folders beside the real runs: listed with their reason, never fatal.
    (runs_dir / "no_results").mkdir()
    shutil.copyfile(trained["sgd_lr01"] / "args.yaml", runs_dir / "no_results" / "args.yaml")
    (runs_dir / "no_args").mkdir()
    shutil.copyfile(trained["sgd_lr01"] / "results.csv", runs_dir / "no_args" / "results.csv")
    # An interrupted run: planned 5 epochs, 2 done, no early stop (patience 100).
    shutil.copytree(trained["sgd_lr01"], runs_dir / "interrupted", ignore=shutil.ignore_patterns("weights"))
    args = yaml.safe_load((runs_dir / "interrupted" / "args.yaml").read_text())
    (runs_dir / "interrupted" / "args.yaml").write_text(yaml.safe_dump({**args, "epochs": 5}))

    paths, table = compare.run_compare([runs_dir], tmp_path / "out", progress=False)
    table = table.set_index("run")
    assert sorted(table.index) == ["adamw_lr01", "interrupted", "sgd_lr01", "sgd_lr05"]
    # Only epochs, optimizer and lr0 were set differently (args.yaml order).
    assert compare_table.varying_hyperparameters([compare_runs.read_run(trained[n]) for n in RUNS]) == [
        "epochs", "optimizer", "lr0"]  # fmt: skip
    for name, overrides in RUNS.items():
        args = yaml.safe_load((trained[name] / "args.yaml").read_text())
        rows = read_results(trained[name])
        row = table.loc[name]
        assert (row["family"], row["size"], row["init"]) == ("yolo11", "n", "scratch")
        assert row["optimizer"] == args["optimizer"] == overrides["optimizer"]
        assert row["lr0"] == args["lr0"] == overrides["lr0"]
        assert row["epochs planned"] == args["epochs"] == overrides["epochs"]
        assert row["epochs run"] == len(rows) == overrides["epochs"]
        assert row["status"] == "complete" and not row["early-stopped"] and not row["resumed"]
        assert row["train time (s)"] == pytest.approx(rows[-1]["time"])
        assert row["final mAP50"] == pytest.approx(rows[-1]["metrics/mAP50(B)"])
        assert row["final mAP50-95"] == pytest.approx(rows[-1]["metrics/mAP50-95(B)"])
        best = max(rows, key=lambda r: r["metrics/mAP50-95(B)"])
        assert row["best mAP50-95"] == pytest.approx(best["metrics/mAP50-95(B)"])
        # Kaggle mAP was computed now with analysis rescore (no kaggle.json before) and written to the run.
        kaggle = json.loads((trained[name] / "kaggle.json").read_text())
        assert row["Kaggle mAP"] == pytest.approx(kaggle["score"])
        assert row["Kaggle conf"] == pytest.approx(kaggle["conf"]) and row["Kaggle split"] == "val"
        assert row["Kaggle weights"] == Path(kaggle["weights"]).name == "best.pt"
        assert 0.0 <= kaggle["score"] <= 1.0
    assert table.loc["interrupted", "status"] == "interrupted"
    assert table.loc["interrupted", "epochs planned"] == 5

    md = paths["markdown"].read_text()
    assert "no_results" in md and "no results.csv" in md
    assert "no_args" in md and "no args.yaml" in md
    assert "stopped after epoch 2 of 5 without early stopping" in md
    # Observations: lr0 differs alone between the two SGD runs; optimizer alone between the lr0=0.01 runs
    # only when epochs agree, which they do not, so it cannot be separated.
    assert "lr0 (Kaggle mAP): lr0=" in md and "(sgd_lr01)" in md and "(sgd_lr05)" in md
    assert "optimizer: no two runs differ only in optimizer" in md
    for name in ("metrics", "losses", "score_vs_hyperparameters", "score_vs_size"):
        assert paths[name].stat().st_size > 5_000
    assert pd.read_csv(tmp_path / "out" / "runs.csv")["run"].tolist() == sorted(table.index)


def test_cli_without_rescore(trained: dict[str, Path], tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "analysis", "compare", str(trained["sgd_lr01"]), str(trained["sgd_lr05"]),
           "--out", str(tmp_path / "o"), "--no-rescore", "--quiet"]  # fmt: skip
    done = subprocess.run(
        cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "compared 2 run(s)" in done.stdout
    bad = subprocess.run([*cmd[:4], str(tmp_path / "nothing"), "--out", str(tmp_path / "x")], cwd=REPO_ROOT,
                         env=subprocess_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "no readable run" in bad.stderr


def frame(epochs, maps, times=None) -> pd.DataFrame:
    return pd.DataFrame({"epoch": epochs, "time": times or [float(e) for e in epochs],
                         compare_runs.MAP50_95: maps, compare_runs.MAP50: maps})  # fmt: skip


def test_best_epoch_and_status_follow_ultralytics_rules(tmp_path: Path) -> None:
    # Fitness is mAP50-95; a tie keeps the earlier epoch; zero fitness lets later epochs take over.
    assert compare_runs.best_epoch(frame([1, 2, 3, 4], [0.0, 0.2, 0.2, 0.1])) == 2
    assert compare_runs.best_epoch(frame([1, 2, 3], [0.0, 0.0, 0.0])) == 3
    run = compare_runs.Run(
        tmp_path, {"epochs": 10, "patience": 2}, frame([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.25])
    )
    assert compare_runs.run_status(run)[0] == "early-stopped"
    run.args["patience"] = 3
    assert compare_runs.run_status(run)[0] == "interrupted"
    run.args["epochs"] = 4
    assert compare_runs.run_status(run)[0] == "complete"
    # A resumed run restarts the time column: both segments count, and the run is marked resumed.
    resumed = compare_runs.Run(tmp_path, {"epochs": 4, "model": "yolov8s.pt"},
                          frame([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4], [10.0, 20.0, 9.0, 18.0]))  # fmt: skip
    row = compare_runs.summarize_run(resumed)
    assert row["resumed"] and row["train time (s)"] == 38.0
    assert (row["family"], row["size"], row["init"]) == ("yolov8", "s", "weights")


def test_effects_compare_only_otherwise_equal_runs() -> None:
    table = pd.DataFrame({
        "run": ["a", "b", "c", "d", "e"], "family": "yolo11", "size": ["n", "n", "n", "n", "s"],
        "optimizer": ["SGD", "SGD", "AdamW", "AdamW", "SGD"], "lr0": [0.01, 0.05, 0.01, 0.05, 0.01],
        "epochs planned": 10, "status": "complete", "Kaggle mAP": [0.20, 0.15, 0.18, 0.10, 0.25],
    })  # fmt: skip
    lines = compare_table.effects(table, ["optimizer", "lr0"], "Kaggle mAP")
    by_factor = {line.split(" ")[0]: line for line in lines}
    # lr0: two comparable sets (SGD: a vs b, AdamW: c vs d); 0.01 wins in both.
    assert "lr0=0.01 → 0.2000 (a), lr0=0.05 → 0.1500 (b) (spread 0.0500)" in by_factor["lr0"]
    assert "Best at lr0=0.01 in every comparable set." in by_factor["lr0"]
    assert "Thin evidence" not in by_factor["lr0"]
    # size: only a vs e differ in size alone; one pair is thin evidence.
    assert "size=s → 0.2500 (e), size=n → 0.2000 (a)" in by_factor["size"]
    assert "Thin evidence: 2 runs" in by_factor["size"]
    # Runs without a score are left out: with d unscored, optimizer is compared on a vs c only.
    table.loc[3, "Kaggle mAP"] = float("nan")
    opt = next(
        line
        for line in compare_table.effects(table, ["optimizer", "lr0"], "Kaggle mAP")
        if line.startswith("optimizer")
    )
    assert "(d)" not in opt and "optimizer=SGD → 0.2000 (a), optimizer=AdamW → 0.1800 (c)" in opt


def test_runs_found_at_any_depth_and_traces_reported(tmp_path: Path) -> None:
    """runs/ holding runs/detect/<run> and runs/sweeps/<name>/trial_*: every run is found, a run's own
    sub-folders are not searched, and a folder with only weights/ is reported, not silently dropped."""
    for run in ("detect/train", "sweeps/s1/trial_000", "sweeps/s1/trial_001"):
        (tmp_path / "runs" / run / "weights").mkdir(parents=True)
        (tmp_path / "runs" / run / "args.yaml").write_text("epochs: 1\n")
    (tmp_path / "runs" / "detect" / "train" / "sub").mkdir()
    (tmp_path / "runs" / "detect" / "train" / "sub" / "args.yaml").write_text("epochs: 1\n")
    (tmp_path / "runs" / "detect" / "killed" / "weights").mkdir(parents=True)
    (tmp_path / "runs" / "notes").mkdir()
    found = [p.relative_to(tmp_path / "runs").as_posix() for p in compare_runs.find_runs([tmp_path / "runs"])]
    assert found == ["detect/killed", "detect/train", "sweeps/s1/trial_000", "sweeps/s1/trial_001"]
    with pytest.raises(compare_runs.RunError, match=r"no args\.yaml"):
        compare_runs.read_run(tmp_path / "runs" / "detect" / "killed")
    # A corrupt kaggle.json is reported, not silently dropped.
    train = tmp_path / "runs" / "detect" / "train"
    pd.DataFrame(
        {"epoch": [1], "time": [3.0], compare_runs.MAP50_95: [0.1], compare_runs.MAP50: [0.2]}
    ).to_csv(train / "results.csv", index=False)
    (train / "kaggle.json").write_text("{not json")
    paths, table = compare.run_compare([train], tmp_path / "out", rescore=False, progress=False)
    assert table["Kaggle mAP"].isna().all()
    assert "kaggle.json: not valid JSON" in paths["markdown"].read_text()


def test_best_run_sentence_names_ties() -> None:
    scored = pd.DataFrame({"run": ["a", "b", "c"], "Kaggle mAP": [0.5, 0.5, 0.4],
                           "Kaggle conf": [0.2, 0.3, 0.2], "Kaggle scale": [1.0, 1.0, 1.0]})  # fmt: skip
    assert compare.best_run_sentence(scored, "Kaggle mAP") == (
        "Best runs by Kaggle mAP: a, b, tied at 0.5000, 0.1000 ahead of c."
    )
    assert compare.best_run_sentence(scored.iloc[1:], "Kaggle mAP") == (
        "Best run by Kaggle mAP: b (0.5000 at conf 0.3, box scale 1, 0.1000 ahead of c)."
    )
