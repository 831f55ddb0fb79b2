"""Kill -9 in the middle of `python -m convert rsna`, rerun, and get the bytes of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convert.synth import generate
from tests.conftest import REPO_ROOT, subprocess_env


def cli(src: Path, out: Path, workers: int = 1) -> list[str]:
    # Upscaling the 256-px sources to 1024 px makes each image slow enough (PNG encoding) to be
    # caught half-way by a poll every few milliseconds.
    return [sys.executable, "-m", "convert", "rsna", "--src", str(src), "--out", str(out),
            "--imgsz", "1024", "--folds", "2", "--workers", str(workers)]  # fmt: skip


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` by relative path; the absolute dataset path (in data.yaml and the fold
    lists, where Ultralytics needs it) is replaced so two folders can be compared."""
    files = {}
    for path in sorted(out.rglob("*")):
        if path.is_file():
            files[path.relative_to(out).as_posix()] = path.read_bytes().replace(str(out).encode(), b"<OUT>")
    return files


def processes_writing(out: Path) -> list[int]:
    """Pids of live (not zombie) processes whose command line names ``out``: the converter and its workers."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(out).encode() in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_and_resume_gives_identical_bytes(tmp_path: Path, workers: int):
    src = tmp_path / "src"
    generate(src, 40, 4, seed=2, imgsz=256)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        cli(src, out, workers),
        cwd=REPO_ROOT,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(out.glob("images/*/*.png"))) >= 4:
            break
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # Pool workers die with the converter: none is left asleep, or writing beside the rerun.
    deadline = time.monotonic() + 10
    while processes_writing(out) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = processes_writing(out)
    for pid in left:  # do not leak them when this fails
        os.kill(pid, signal.SIGKILL)
    assert left == []
    assert not (out / "manifest.csv").exists(), "the run finished before it was killed: not a mid-way kill"
    done = {}
    for png in out.glob("images/*/*.png"):
        label = out / "labels" / png.parent.name / f"{png.stem}.txt"
        if label.exists() or png.parent.name == "test":  # test images have no label
            done[png] = (png.stat().st_ino, png.stat().st_mtime_ns)
    assert 0 < len(done) < 44

    resumed = subprocess.run(
        cli(src, out, workers), cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"and {len(done)} reused from an earlier run" in resumed.stdout
    for png, stat in done.items():  # finished images were not redone
        assert (png.stat().st_ino, png.stat().st_mtime_ns) == stat

    clean = tmp_path / "clean"
    whole = subprocess.run(
        cli(src, clean), cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True
    )
    assert whole.returncode == 0, whole.stderr
    a, b = snapshot(out), snapshot(clean)
    assert sorted(a) == sorted(b)  # no temp files or extras left by the kill
    assert len([name for name in a if name.endswith(".png")]) == 44
    assert {name for name in a if a[name] != b[name]} == set()
