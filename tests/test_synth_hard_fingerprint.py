"""The hard synthetic level must never change: the same arguments write the same bytes as when it was pinned.

Benchmarks (``benchmarks/gating_bench.py``) and the README's gating figures are measured on this level; a
change to it would silently make every earlier figure incomparable. If you mean to change the hard level,
make it a new ``--difficulty`` instead.

The fingerprint is a SHA-256 over every file the command writes: ``relative/path\\0<sha256 of the file>\\n``
for each file, in sorted order. Pinned on commit e22a40b (and checked identical on the working tree of
2026-12-02 with the analysis sub-packages) with the versions in :data:`PINNED_WITH`; ``requirements.lock``
holds the same ones, so ``make venv`` reproduces the bytes. OpenCV 5.1 writes others (measured): a lock
refresh that moves one of these libraries must keep this test passing, or keep the old version.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, subprocess_env

ARGS = ["--patients", "12", "--test-patients", "2", "--seed", "3", "--imgsz", "128", "--difficulty", "hard"]
FILES = 18  # 12 train + 2 test DICOMs, 3 CSVs, README.md
FINGERPRINT = "2d30a60bc5cde73aa285075d31d533f8613dc5c8ec4de39ecb59b659354aded5"
# The libraries whose versions decide the bytes (distribution names), as they were when the level was pinned.
PINNED_WITH = {"numpy": "2.4.6", "opencv-python": "5.0.0.93", "pydicom": "3.0.2"}


def library_versions(python: str = sys.executable) -> dict[str, str]:
    """The versions of :data:`PINNED_WITH`'s libraries that ``python`` imports (``"absent"`` where none)."""
    code = (
        "import json, importlib.metadata as m\n"
        "def v(n):\n"
        "    try:\n        return m.version(n)\n"
        "    except m.PackageNotFoundError:\n        return 'absent'\n"
        f"print(json.dumps({{n: v(n) for n in {sorted(PINNED_WITH)!r}}}))"
    )
    import json

    return json.loads(subprocess.check_output([python, "-c", code], text=True))


def versions_line(present: dict[str, str]) -> str:
    """``numpy 2.4.6 (pinned with 2.4.6), opencv-python 5.1.0.95 (pinned with 5.0.0.93), ...``."""
    return ", ".join(
        f"{name} {present.get(name, 'absent')} (pinned with {v})" for name, v in PINNED_WITH.items()
    )


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
        "convert synth --difficulty hard no longer writes the bytes it wrote when pinned: every figure "
        f"measured on it would be incomparable. Here: Python {platform.python_version()}, "
        f"{versions_line(library_versions())}. If a library moved, install the lock (make venv); if the "
        "generator changed, add a new difficulty instead."
    )


def test_versions_line_names_what_moved():
    """The failure message names each library's version beside the one the level was pinned with."""
    line = versions_line({"numpy": "2.4.6", "opencv-python": "5.1.0.95"})
    assert "opencv-python 5.1.0.95 (pinned with 5.0.0.93)" in line
    assert "pydicom absent (pinned with 3.0.2)" in line
    assert set(library_versions()) == set(PINNED_WITH)


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
