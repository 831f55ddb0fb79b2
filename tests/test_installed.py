"""The installed command from a folder outside the clone that has a ``train/`` subfolder (as every YOLO
image folder and classification view has): synth -> convert -> a one-epoch training -> predict on five
test DICOMs, one of them corrupt. Every output lands where the documentation says, relative to that
folder, and nothing is written into the clone.

Needs the project installed (``make venv`` runs ``pip install -e .``): skipped with one line otherwise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT, subprocess_env

COMMAND = Path(sys.executable).parent / "rsna-yolo"


def clone_state() -> set[str]:
    """Every file of the clone, tracked or not, ignored or not (bytecode caches and the venv aside)."""
    skip = {".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".git"}
    return {
        str(p.relative_to(REPO_ROOT))
        for p in REPO_ROOT.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(REPO_ROOT).parts)
    }


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**subprocess_env(), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)  # the installed package, not the clone on the path
    done = subprocess.run([str(COMMAND), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"rsna-yolo {' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_the_installed_command_runs_the_whole_path_from_any_folder(tmp_path: Path) -> None:
    if not COMMAND.is_file():
        pytest.skip(f"needs the installed command {COMMAND} (make venv, or pip install -e .)")
    work = tmp_path / "films_project"
    (work / "train").mkdir(parents=True)  # a folder named like a package must not shadow the project
    (work / "train" / "x.png").write_bytes(b"")
    before = clone_state()
    run(["convert", "synth", "--out", "kaggle", "--patients", "24", "--test-patients", "5", "--seed", "1",
         "--imgsz", "256"], work)  # fmt: skip
    run(["convert", "rsna", "--src", "kaggle", "--out", "ds", "--imgsz", "64", "--val-fraction", "0.34"],
        work)  # fmt: skip
    run(["train", "data=ds/data.yaml", "model=yolov8n.yaml", "imgsz=64", "epochs=1", "batch=4", "workers=0",
         "device=cpu", "plots=False", "wandb=False"], work)  # fmt: skip
    run_dir = work / "runs" / "detect" / "train"  # the documented default: runs/<task>/train, here
    assert (run_dir / "weights" / "best.pt").is_file() and (run_dir / "kaggle.json").is_file()
    films = sorted((work / "kaggle" / "stage_2_test_images").glob("*.dcm"))
    assert len(films) == 5
    films[0].write_bytes(b"\x00not a DICOM\xff" * 40)  # one corrupt film among the five
    run(["predict", "runs/detect/train", "--images", "kaggle/stage_2_test_images", "--out", "predicted",
         "--submission", "predicted/submission.csv"], work)  # fmt: skip
    table = pd.read_csv(work / "predicted" / "predictions.csv", dtype={"patientId": str})
    assert set(table["patientId"]) == {p.stem for p in films}
    assert (work / "predicted" / "report.html").is_file()
    assert len(list((work / "predicted" / "images").glob("*.png"))) == 4  # the corrupt film has no picture
    sub = pd.read_csv(work / "predicted" / "submission.csv", dtype={"patientId": str})
    assert len(sub) == 5
    assert clone_state() == before, "the command wrote into the clone"
