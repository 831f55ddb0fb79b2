"""A full disk is one line naming the file, not a traceback (rsna_yolo.core.io writers, rsna_yolo.core.cli,
convert rsna)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from pathlib import Path

import pytest

from rsna_yolo.core.cli import call_reporting_errors
from rsna_yolo.core.io import is_disk_full, write_atomic, write_json_atomic


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_write_atomic_on_a_full_disk_names_the_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out" / "kaggle.json"
    write_json_atomic({"score": 0.1}, target)
    monkeypatch.setattr("rsna_yolo.core.io.os.replace", _full)
    with pytest.raises(OSError) as caught:
        write_json_atomic({"score": 0.2}, target)
    assert is_disk_full(caught.value) and caught.value.filename == str(target)
    assert json.loads(target.read_text()) == {"score": 0.1}  # the finished file is kept as it was
    assert sorted(p.name for p in target.parent.iterdir()) == ["kaggle.json"]  # temp file removed


def test_a_full_disk_is_one_line_and_status_2(tmp_path, monkeypatch, capsys):
    target = tmp_path / "predictions_val.csv"
    monkeypatch.setattr("rsna_yolo.core.io.os.replace", _full)
    status = call_reporting_errors("python -m analysis", lambda: write_atomic(target, "a,b\n"))
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("python -m analysis: error: the disk is full")
    assert str(target) in err and "kept" in err and "free some space" in err


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr("rsna_yolo.core.io.os.replace", denied)
    with pytest.raises(PermissionError):
        call_reporting_errors("prog", lambda: write_atomic(tmp_path / "x.txt", "x"))


def test_space_warning_before_a_conversion(tmp_path, monkeypatch):
    from convert import jobs as jobs_mod

    jobs = [jobs_mod.Job("p", tmp_path / "p.dcm", tmp_path / f"p{k}.png", None, (), 512) for k in range(10)]
    need = jobs_mod.space_needed(jobs)
    assert need == 10 * 512 * 512 * jobs_mod.PNG_BYTES_PER_PIXEL
    (tmp_path / "p0.png").write_bytes(b"done")  # a finished image needs no more space
    assert jobs_mod.space_needed(jobs) == need * 9 // 10
    usage = type("Usage", (), {"free": need // 2})
    monkeypatch.setattr(jobs_mod.shutil, "disk_usage", lambda path: usage)
    line = jobs_mod.space_warning(tmp_path, jobs, 512)
    assert line is not None and "9 images at --imgsz 512" in line and str(tmp_path) in line
    usage.free = need
    assert jobs_mod.space_warning(tmp_path, jobs, 512) is None


@contextlib.contextmanager
def small_filesystem(mount: Path, size: str):
    """A tmpfs of ``size`` (``160k``, ``40m``) at ``mount``, unmounted on leaving (root only; the test is
    skipped where mounting is not permitted)."""
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 160 KiB tmpfs."""
    with small_filesystem(tmp_path / "small", "160k") as mount:
        yield mount


def test_convert_on_a_full_filesystem_is_one_line_and_a_rerun_finishes(tmp_path, tiny_filesystem, capsys):
    from convert.__main__ import COMMANDS
    from convert.synth import generate
    from rsna_yolo.core.cli import run_cli

    src = tmp_path / "download"
    generate(src, 12, 2, seed=0, imgsz=256)
    out = tiny_filesystem / "ds"
    argv = ["rsna", "--src", str(src), "--out", str(out), "--imgsz", "256", "--workers", "1", "--no-progress"]
    status = run_cli("python -m convert", "", COMMANDS, argv)
    captured = capsys.readouterr()
    assert status == 2
    lines = [line for line in captured.err.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert lines[0].startswith("python -m convert: error: the disk is full") and f"write {out}" in lines[0]
    assert "warning: 14 images at --imgsz 256 need about" in captured.out  # said before it started
    finished = sorted((out / "images").rglob("*.png"))
    assert finished and not list(tiny_filesystem.rglob("*.tmp"))  # finished PNGs kept, no temp files
    subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_filesystem)], check=True)
    assert run_cli("python -m convert", "", COMMANDS, argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["converted"] == 14 and report["check"]["ok"]
    assert all(Path(p).exists() for p in finished)


def test_torch_saves_while_training_are_atomic(tiny_filesystem):
    """Ultralytics' final ``strip_optimizer`` rewrites best.pt in place with ``torch.save(ckpt, path)``:
    under ``atomic_torch_saves`` a full disk keeps the old file whole and names it (torch alone raises
    ``RuntimeError: ... unexpected pos`` and leaves half a file); saves into a buffer are untouched."""
    import io

    import torch

    from rsna_yolo.train.run import atomic_torch_saves

    target = tiny_filesystem / "best.pt"
    torch.save({"w": torch.ones(10)}, target)
    with atomic_torch_saves():
        buffer = io.BytesIO()
        torch.save({"w": torch.zeros(3)}, buffer)  # a buffer: torch's own save
        assert torch.load(io.BytesIO(buffer.getvalue()))["w"].tolist() == [0.0, 0.0, 0.0]
        torch.save({"w": torch.full((5,), 2.0)}, target)  # fits: replaced whole
        assert torch.load(target)["w"].tolist() == [2.0] * 5
        before = target.read_bytes()
        with pytest.raises(OSError) as caught:
            torch.save({"w": torch.zeros(200_000)}, target)  # 800 kB on a 160 KiB filesystem
    assert is_disk_full(caught.value) and caught.value.filename == str(target)
    assert target.read_bytes() == before and sorted(p.name for p in tiny_filesystem.iterdir()) == ["best.pt"]
    assert torch.save.__module__ != "rsna_yolo.train.run"  # restored on leaving


@pytest.mark.slow
def test_training_on_a_full_disk_keeps_the_last_checkpoint_whole_and_resumes(tmp_path):
    """Ultralytics writes last.pt, then best.pt, after each epoch. On a 40 MiB filesystem the first epoch's
    last.pt fits (about 26 MiB with the optimiser) and best.pt does not: the run stops with one line naming
    best.pt, last.pt is whole (through ``core.io.AtomicPath``: no half-written checkpoint, no temporary left),
    and once space is freed ``python -m train resume`` finishes the planned epochs from it."""
    import sys

    import torch
    from conftest import REPO_ROOT, subprocess_env
    from tiny_yolo_data import make_synthetic_dataset

    from rsna_yolo.train.resume import completed_epochs

    data = make_synthetic_dataset(tmp_path / "synthetic", patients=20)
    with small_filesystem(tmp_path / "small", "40m") as mount:
        argv = [f"data={data}", "model=yolo11n.yaml", "imgsz=64", "batch=4", "workers=0", "plots=False",
                "epochs=2", "wandb=False", f"project={mount}", "name=run"]  # fmt: skip

        def train(*args):
            return subprocess.run([sys.executable, "-m", "train", *args], cwd=REPO_ROOT, env=subprocess_env(),
                                  capture_output=True, text=True, timeout=300)  # fmt: skip

        full = train(*argv)
        run = mount / "run"
        assert full.returncode == 2, full.stderr[-3000:]
        errors = [line for line in full.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
        assert errors[0].startswith("python -m train: error: the disk is full")
        assert f"could not write {run / 'weights' / 'best.pt'}" in errors[0]
        assert not list(mount.rglob("*.tmp")) and not (run / "weights" / "best.pt").exists()
        checkpoint = torch.load(run / "weights" / "last.pt", weights_only=False)  # whole, not half a file
        assert checkpoint["epoch"] == 0 and completed_epochs(run / "results.csv") == 1

        subprocess.run(["mount", "-o", "remount,size=160m", str(mount)], check=True)
        resumed = train("resume", str(run))
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        assert completed_epochs(run / "results.csv") == 2 and (run / "kaggle.json").is_file()
