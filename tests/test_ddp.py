"""Multi-GPU (DDP) without GPUs: the state file Ultralytics writes for DDP carries our hooks, a fresh process
rebuilds them as the generated script does, they work there on rank 0 and stay quiet on other ranks, and
what DDP changes is announced before training."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import REPO_ROOT, subprocess_env
from tiny_yolo_data import make_tiny_dataset

from rsna_yolo.train.args import TrainOptions
from rsna_yolo.train.ddp import ddp_notes, ddp_world_size
from rsna_yolo.train.run import _Session

LOAD = """
import json, sys
from ultralytics.utils.patches import torch_load
state = torch_load(sys.argv[1], map_location="cpu")
hooks = [h for hs in state["callbacks"].values() for h in hs
         if type(getattr(h, "__self__", None)).__name__ == "_Session"]
session = hooks[0].__self__
from pathlib import Path
class FakeTrainer:  # what on_pretrain_routine_start reads and sets
    save_dir = sys.argv[2]
    wdir = Path(save_dir) / "weights"
    last, best = wdir / "last.pt", wdir / "best.pt"
trainer = FakeTrainer()
session.on_pretrain_routine_start(trainer)
print(json.dumps({"hooks": sorted({h.__name__ for h in hooks}), "wandb_run": repr(session.wandb_run),
                  "on_epoch": repr(session.on_epoch), "kaggle_every": session.options.kaggle_every,
                  "data": str(session.data),
                  "checkpoint_paths": [type(p).__name__ for p in (trainer.wdir, trainer.last,
                                                                  trainer.best)]}))
"""


@pytest.fixture(scope="module")
def ddp_state(tmp_path_factory) -> dict:
    """A trainer with our hooks, as `python -m train` attaches them, pickled by Ultralytics' own
    generate_ddp_file (cloudpickle), with a live-looking W&B run and sweep hook that cannot be pickled."""
    from ultralytics import YOLO
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.dist import generate_ddp_file

    root = tmp_path_factory.mktemp("ddp")
    data = make_tiny_dataset(root / "data", n_train=8, n_val=4)
    lock = threading.Lock()  # stands for an Optuna trial's database connection: not picklable

    def on_epoch(epoch: int, value: float) -> bool:
        with lock:
            return False

    session = _Session(TrainOptions(kaggle_every=1, wandb=False), data, on_epoch)
    session.wandb_run = threading.Lock()  # stands for a live W&B run
    model = YOLO("yolo11n.yaml")
    session.attach(model)
    overrides = dict(data=str(data), model="yolo11n.yaml", epochs=1, imgsz=64, batch=4, workers=0,
                     device="cpu", project=str(root / "runs"), name="ddp", plots=False,
                     exist_ok=True)  # fmt: skip
    trainer = DetectionTrainer(overrides=overrides, _callbacks=model.callbacks)
    trainer.model = trainer.get_model(cfg="yolo11n.yaml", verbose=False)
    script = Path(generate_ddp_file(trainer))
    yield {"root": root, "data": data, "script": script, "state": script.with_suffix(".pt"),
           "run_dir": Path(trainer.save_dir), "session": session}  # fmt: skip
    script.unlink(missing_ok=True)
    script.with_suffix(".pt").unlink(missing_ok=True)


def _load(state: Path, save_dir: Path, rank: str | None) -> dict:
    save_dir.mkdir(parents=True, exist_ok=True)  # Ultralytics makes it before the hook runs
    env = subprocess_env()
    env.pop("RANK", None)
    if rank is not None:
        env["RANK"] = rank
    done = subprocess.run([sys.executable, "-c", LOAD, str(state), str(save_dir)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_state_file_carries_our_hooks_without_what_cannot_cross_a_process(ddp_state, tmp_path):
    got = _load(ddp_state["state"], tmp_path / "rank0", None)
    assert got["hooks"] == [
        "on_fit_epoch_end", "on_pretrain_routine_end", "on_pretrain_routine_start", "on_train_end",
        "on_train_epoch_end",
    ]  # fmt: skip
    assert got["wandb_run"] == "None" and got["on_epoch"] == "None"  # dropped, not a pickling error
    assert got["kaggle_every"] == 1 and got["data"] == str(ddp_state["data"])
    assert json.loads((tmp_path / "rank0" / "train_options.json").read_text())["kaggle_every"] == 1
    # rank 0 writes the checkpoints: atomically there too (core.io.AtomicPath)
    assert got["checkpoint_paths"] == ["AtomicPath"] * 3
    # The live objects of the launching process are untouched by pickling.
    assert ddp_state["session"].on_epoch is not None and ddp_state["session"].wandb_run is not None


def test_hooks_stay_quiet_on_other_ranks(ddp_state, tmp_path):
    got = _load(ddp_state["state"], tmp_path / "rank1", "1")
    assert not (tmp_path / "rank1" / "train_options.json").exists()
    assert got["checkpoint_paths"] == ["PosixPath"] * 3  # other ranks write no checkpoint: left alone


@pytest.mark.slow
def test_the_generated_script_trains_with_working_hooks(ddp_state):
    """The script Ultralytics runs in each DDP process, run here on the CPU as rank 0 would run it: one
    epoch, and our per-epoch Kaggle hook scores it."""
    env = subprocess_env()
    env.pop("RANK", None)
    done = subprocess.run([sys.executable, str(ddp_state["script"])], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "kaggle/mAP (val, epoch 1):" in out
    run_dir = ddp_state["run_dir"]
    assert json.loads((run_dir / "train_options.json").read_text())["kaggle_every"] == 1
    assert (run_dir / "weights" / "last.pt").is_file()


def test_ddp_changes_are_announced_in_one_line_each():
    assert ddp_world_size("0,1") == 2 and ddp_notes(1, TrainOptions(), None) == []
    notes = ddp_notes(2, TrainOptions(kaggle_every=2), on_epoch=lambda e, v: False)
    assert len(notes) == 2 and all("\n" not in n for n in notes)
    assert "kaggle/mAP every 2 epochs" in notes[0] and "runs once, in this process" in notes[0]
    assert "cannot be pruned" in notes[1]
