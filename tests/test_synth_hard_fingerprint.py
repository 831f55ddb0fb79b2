"""The hard synthetic level must never change: the same arguments write the same bytes as when it was pinned.

Benchmarks (``benchmarks/gating_bench.py``) and the README's gating figures are measured on this level; a
change to it would silently make every earlier figure incomparable. If you mean to change the hard level,
make it a new ``--difficulty`` instead.

The fingerprint is a SHA-256 over every file the command writes: ``relative/path\\0<sha256 of the file>\\n``
for each file, in sorted order. Pinned on commit e22a40b (and checked identical on the working tree of
2026-12-02 with the analysis sub-packages) with Python 3.11, numpy 2.4, OpenCV 5.0, pydicom 3.0.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, subprocess_env

ARGS = ["--patients", "12", "--test-patients", "2", "--seed", "3", "--imgsz", "128", "--difficulty", "hard"]
FILES = 18  # 12 train + 2 test DICOMs, 3 CSVs, README.md
FINGERPRINT = "2d30a60bc5cde73aa285075d31d533f8613dc5c8ec4de39ecb59b659354aded5"


def tree_fingerprint(root: Path) -> tuple[int, str]:
    """``(number of files, SHA-256 over each file's relative path and SHA-256)`` of a folder."""
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        inner = hashlib.sha256(path.read_bytes()).hexdigest()
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + inner.encode() + b"\n")
    return len(files), digest.hexdigest()


def test_hard_level_writes_the_pinned_bytes(tmp_path: Path):
    out = tmp_path / "hard"
    cmd = [sys.executable, "-m", "convert", "synth", "--out", str(out), *ARGS, "--workers", "1"]
    env = subprocess_env()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert tree_fingerprint(out) == (FILES, FINGERPRINT), (
        "convert synth --difficulty hard no longer writes the bytes it wrote when pinned: the hard level "
        "changed (every figure measured on it is now incomparable). Add a new difficulty instead."
    )


def test_fingerprint_sees_a_one_byte_change(tmp_path: Path):
    """The fingerprint itself can fail: one changed byte, or a renamed file, changes it."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"\x00\x01")
    before = tree_fingerprint(tmp_path)
    (tmp_path / "a" / "x.bin").write_bytes(b"\x00\x02")
    changed = tree_fingerprint(tmp_path)
    (tmp_path / "a" / "x.bin").rename(tmp_path / "a" / "y.bin")
    renamed = tree_fingerprint(tmp_path)
    assert len({before, changed, renamed}) == 3
