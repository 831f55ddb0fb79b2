"""`python -m train`: yolo-compatible arguments, Kaggle rescoring + W&B in one run, resume, clear errors.

Training runs are tiny real runs (imgsz 64, 8-12 images, 1-3 epochs). Runs that must show W&B logging go
through a subprocess without ``PYTEST_CURRENT_TEST`` (Ultralytics switches its W&B callback off under pytest).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT, subprocess_env
from tiny_yolo_data import make_synthetic_dataset

from rsna_yolo.core.cli import UserError
from rsna_yolo.train.args import TrainOptions, parse_key_values, resolve_model
from rsna_yolo.train.resume import completed_epochs, finished_reason

TINY = ["model=yolo11n.yaml", "imgsz=64", "batch=4", "workers=0", "plots=False"]


def run_train(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "train", *argv],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), patients=20)


# ------------------------------------------------------------------------------------------- arguments
def test_key_values_are_typed_like_the_yolo_cli():
    args, opts = parse_key_values(
        ["epochs=3", "lr0=1e-3", "cos_lr=True", "imgsz", "=", "[64,", "64]", "name=007"]
    )
    assert args == {"epochs": 3, "lr0": 0.001, "cos_lr": True, "imgsz": [64, 64], "name": "007"}
    assert opts == TrainOptions()


def test_checkpoint_and_transfer_keys_pass_through_to_ultralytics():
    args, _ = parse_key_values(["save_period=2", "patience=5", "freeze=10", "model=runs/x/weights/best.pt"])
    assert args == {"save_period": 2, "patience": 5, "freeze": 10, "model": "runs/x/weights/best.pt"}


def test_our_keys_are_removed_before_ultralytics():
    args, opts = parse_key_values(
        ["detect", "train", "kaggle_every=2", "wandb=False", "wandb_group=g", "epochs=1"]
    )
    assert args == {"epochs": 1}
    assert (opts.kaggle_every, opts.wandb, opts.wandb_group, opts.rescore) == (2, False, "g", True)


def test_cfg_fills_in_and_explicit_keys_win_in_any_position():
    before, _ = parse_key_values(["mosaic=0.0", "cfg=yolo_configs/hyp/xray.yaml", "lr0=0.02"])
    after, _ = parse_key_values(["cfg=yolo_configs/hyp/xray.yaml", "mosaic=0.0", "lr0=0.02"])
    assert before == after
    assert (before["mosaic"], before["lr0"], before["hsv_s"], before["scale"]) == (0.0, 0.02, 0.0, 0.25)
    assert before["cfg"] == str(REPO_ROOT / "yolo_configs/hyp/xray.yaml")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["lr_0=0.1"], "'lr_0' is not a valid YOLO argument. Similar arguments are i.e. ['lr0=0.01']"),
        (["epochs"], "'epochs': expected key=value"),
        (["cfg=nope.yaml"], "cfg=nope.yaml: file not found"),
        (["kaggle_every=-1"], "kaggle_every=-1"),
        (["task=segment"], "task=segment: python -m train trains detectors (task=detect) or classifiers"),
    ],
)
def test_bad_arguments_are_one_clear_error(argv, message):
    with pytest.raises(UserError) as err:
        parse_key_values(argv)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_model_kinds(tmp_path: Path):
    assert resolve_model("yolo11n.yaml") == "yolo11n.yaml"  # from scratch: Ultralytics finds the YAML
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"")
    assert resolve_model(str(weights)) == str(weights.resolve())  # local transfer learning
    with pytest.raises(UserError, match="not found"):
        resolve_model(str(tmp_path / "missing.pt"))


def test_hub_model_offline_is_one_clear_message(tiny_data: Path):
    from ultralytics.utils import SETTINGS

    assert not (Path(SETTINGS["weights_dir"]) / "yolo11s.pt").exists()
    proc = run_train(f"data={tiny_data}", "model=yolo11s.pt", "epochs=1", timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "yolo11s.pt" in err[0] and "offline" in err[0]
    assert "RSNA_YOLO_ONLINE=1" in err[0] and "model=/path/to/yolo11s.pt" in err[0]


def test_hub_download_failure_online_is_one_clear_message(tiny_data: Path, monkeypatch):
    """RSNA_YOLO_ONLINE=1 on a machine whose network fails: Ultralytics' download error (faked here, so the
    test opens no socket) becomes one line saying what to do, instead of a traceback."""
    import ultralytics

    from rsna_yolo.train.run import train

    def offline_yolo(name, task=None):
        raise ConnectionError(f"❌  Download failure for https://x/{name}. Environment may be offline.")

    monkeypatch.setenv("RSNA_YOLO_ONLINE", "1")
    monkeypatch.setattr(ultralytics, "YOLO", offline_yolo)
    with pytest.raises(UserError) as err:
        train({"data": str(tiny_data), "model": "yolo11s.pt"}, TrainOptions(wandb=False))
    message = str(err.value)
    assert message.startswith("model=yolo11s.pt: downloading the pretrained weights failed (ConnectionError")
    assert "model=/path/to/yolo11s.pt" in message and "model=yolo11s.yaml" in message and "\n" not in message


def test_missing_data_is_one_clear_message(tmp_path: Path):
    proc = run_train(f"data={tmp_path / 'nope.yaml'}", "model=yolo11n.yaml", timeout=120)
    assert proc.returncode == 2 and "nope.yaml: file not found" in proc.stderr


# --------------------------------------------------------------------------------- resume, unit level
def test_finished_reason():
    assert finished_reason({"epoch": 0, "optimizer": {"state": 1}, "train_args": {"epochs": 3}}, 1) is None
    assert "no optimizer state" in finished_reason({"epoch": -1, "optimizer": None, "train_args": {}}, 5)
    assert "all 5 planned" in finished_reason({"epoch": -1, "optimizer": None, "train_args": {}}, 5)


def test_completed_epochs(tmp_path: Path):
    csv = tmp_path / "results.csv"
    assert completed_epochs(csv) == 0
    csv.write_text("epoch,loss\n1,0.5\n2,0.4\n\n")
    assert completed_epochs(csv) == 2


# ------------------------------------------------------------------------------------ real tiny runs
@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """One `python -m train` run (2 epochs, per-epoch Kaggle score, offline W&B): its process and folder."""
    project = tmp_path_factory.mktemp("runs")
    proc = run_train(
        f"data={tiny_data}", "mosaic=0.0", "cfg=yolo_configs/hyp/xray.yaml", *TINY, "epochs=2",
        "kaggle_every=1", f"project={project}", "name=run",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, project / "run"


@pytest.mark.slow
def test_train_writes_kaggle_json_and_logs_it_to_the_same_offline_wandb_run(tiny_data: Path, trained):
    proc, run = trained
    result = json.loads((run / "kaggle.json").read_text())
    n_val = (pd.read_csv(tiny_data.parent / "manifest.csv")["split"] == "val").sum()
    assert 0.0 <= result["score"] <= 1.0 and result["split"] == "val" and result["n_images"] == n_val > 0
    assert {"conf", "scale", "sweep", "predictions"} <= set(result)
    assert Path(result["weights"]) == run / "weights" / "best.pt"
    args = yaml.safe_load((run / "args.yaml").read_text())  # the resolved config Ultralytics saved
    assert (args["mosaic"], args["hsv_s"], args["epochs"]) == (0.0, 0.0, 2)
    assert args["cfg"] == str(REPO_ROOT / "yolo_configs/hyp/xray.yaml")
    assert "Kaggle mAP (val):" in proc.stdout
    # One offline W&B run under the run folder holds Ultralytics' metrics and ours.
    (wandb_file,) = run.glob("wandb/offline-run-*/run-*.wandb")
    blob = wandb_file.read_bytes()
    for key in (b"kaggle/mAP", b"kaggle/conf", b"kaggle/scale", b"metrics/mAP50(B)", b"train/box_loss"):
        assert key in blob, key
    hint = (run / "WANDB_SYNC.txt").read_text()
    assert f"wandb sync {wandb_file.parent}" in hint
    assert json.loads((run / "train_options.json").read_text())["kaggle_every"] == 1


def test_final_val_maps_come_from_the_trainers_metrics():
    from types import SimpleNamespace

    from rsna_yolo.train.scoring import final_val_maps

    metrics = {"metrics/mAP50(B)": 0.5, "metrics/mAP50-95(B)": 0.25, "metrics/precision(B)": 0.9}
    assert final_val_maps(SimpleNamespace(metrics=metrics)) == {"map50": 0.5, "map50_95": 0.25}
    assert final_val_maps(SimpleNamespace(metrics={"metrics/mAP50(B)": 0.5})) is None
    assert final_val_maps(SimpleNamespace(metrics=None)) is None


@pytest.mark.slow
def test_kaggle_json_maps_are_those_of_best_pt_on_val(tiny_data: Path, trained):
    """The trainer's final validation of best.pt is reused, not repeated: its values must be best.pt's."""
    from analysis.tuning.rescoring import ultralytics_map

    result = json.loads((trained[1] / "kaggle.json").read_text())
    expected = ultralytics_map(
        trained[1] / "weights" / "best.pt", tiny_data, "val", imgsz=64, batch=4, device="cpu"
    )
    assert result["map50"] == pytest.approx(expected["map50"], abs=1e-9)
    assert result["map50_95"] == pytest.approx(expected["map50_95"], abs=1e-9)


@pytest.mark.slow
def test_transfer_learning_from_local_weights_with_freeze(tiny_data: Path, trained, tmp_path: Path):
    from rsna_yolo.train.run import train

    best = trained[1] / "weights" / "best.pt"
    args, _ = parse_key_values(
        [
            f"data={tiny_data}",
            f"model={best}",
            "freeze=3",
            *TINY[1:],
            "epochs=1",
            f"project={tmp_path}",
            "name=ft",
        ]
    )
    result = train(args, TrainOptions(wandb=False, rescore=False))
    saved = yaml.safe_load((result.run_dir / "args.yaml").read_text())
    assert (saved["model"], saved["freeze"], saved["epochs"]) == (str(best), 3, 1)
    assert result.kaggle is None and result.epochs_done == 1
    assert completed_epochs(result.run_dir / "results.csv") == 1


@pytest.mark.slow
def test_kill_and_resume_finishes_the_planned_epochs(tiny_data: Path, tmp_path: Path):
    # SIGKILL from inside, right after epoch 1's checkpoint (deterministic, unlike a timed kill).
    script = f"""
import os, signal
from rsna_yolo import offline
from rsna_yolo.train.args import parse_key_values
from rsna_yolo.train.run import train
args, opts = parse_key_values({[f"data={tiny_data}", *TINY, "epochs=3", f"project={tmp_path}", "name=run"]!r})
train(args, opts, on_epoch=lambda epoch, value: epoch == 1 and os.kill(os.getpid(), signal.SIGKILL))
"""
    killed = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, timeout=300
    )
    run = tmp_path / "run"
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert completed_epochs(run / "results.csv") == 1 and not (run / "kaggle.json").exists()

    assert json.loads((run / "train_options.json").read_text())["kaggle_every"] == 0
    proc = run_train("resume", str(run), "kaggle_every=1")  # our keys may change on resume
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert completed_epochs(run / "results.csv") == 3
    assert json.loads((run / "train_options.json").read_text())["kaggle_every"] == 1
    assert "kaggle/mAP (val, epoch 2)" in proc.stdout and "kaggle/mAP (val, epoch 1)" not in proc.stdout
    assert json.loads((run / "kaggle.json").read_text())["split"] == "val"
    ids = {p.stem for p in run.glob("wandb/offline-run-*/run-*.wandb")}
    assert len(ids) == 1, "the resumed run continues the same W&B run id"

    # Resuming the now finished run: a clear message, not Ultralytics' silent fresh default run.
    again = run_train("resume", str(run), timeout=120)
    assert again.returncode == 2
    assert "cannot be resumed: it finished all 3 planned epochs" in again.stderr
    assert f"model={run / 'weights' / 'best.pt'}" in again.stderr
    assert completed_epochs(run / "results.csv") == 3
    assert not any(p.name != "run" for p in tmp_path.iterdir() if p.is_dir())  # no new run folder appeared


@pytest.mark.slow
def test_epoch_hook_sees_each_epoch_and_can_stop_the_run(tiny_data: Path, tmp_path: Path):
    """What sweep pruning relies on: one call per trained epoch (not for the final validation), and True stops
    training after that epoch, without the final rescoring."""
    from rsna_yolo.train.run import train

    seen = []

    def hook(epoch: int, value: float) -> bool:
        seen.append((epoch, value))
        return epoch == 2

    args, _ = parse_key_values([f"data={tiny_data}", *TINY, "epochs=4", f"project={tmp_path}", "name=stop"])
    result = train(args, TrainOptions(wandb=False, kaggle_every=2), on_epoch=hook)
    assert [e for e, _ in seen] == [1, 2] and result.stopped_by_hook and result.epochs_done == 2
    assert set(result.epoch_scores) == {2} and seen[1][1] == result.epoch_scores[2]  # kaggle/mAP fed the hook
    assert (
        0.0 <= seen[1][1] <= 1.0 and result.kaggle is None and not (result.run_dir / "kaggle.json").exists()
    )
    assert completed_epochs(result.run_dir / "results.csv") == 2


def test_epoch_scorer_uses_the_fold_yamls_own_val_images(tmp_path: Path):
    """kaggle_every on a fold YAML scores that fold's val list, not the manifest's split (fold 0)."""
    from convert.rsna import convert_rsna
    from convert.synth import generate
    from rsna_yolo.train.scoring import EpochScorer

    generate(tmp_path / "kaggle", 24, 0, 3, imgsz=128)
    convert_rsna(
        tmp_path / "kaggle", tmp_path / "ds", imgsz=64, folds=3, workers=1, progress=False,
        echo=lambda *a, **k: None,
    )  # fmt: skip
    fold1_val = tmp_path / "ds" / "folds" / "fold1_val.txt"
    expected = sorted(Path(line).stem for line in fold1_val.read_text().split())
    scorer = EpochScorer(tmp_path / "ds" / "folds" / "fold1.yaml")
    assert sorted(Path(p).stem for p in scorer.split.images) == expected
    assert sorted(scorer.split.gt.truth) == expected
    fold0 = EpochScorer(tmp_path / "ds" / "data.yaml")
    assert not set(Path(p).stem for p in fold0.split.images) & set(expected)
