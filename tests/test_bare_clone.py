"""A bare clone (no real challenge files beside it) passes: real-data tests skip, saying what they need."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, subprocess_env


def test_real_data_tests_skip_with_the_reason_when_the_sample_is_absent(tmp_path: Path):
    empty = tmp_path / "no_sample"
    empty.mkdir()
    env = subprocess_env()
    env["RSNA_SAMPLE_DIR"] = str(empty)
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "real_data", "-p", "no:cacheprovider", "tests"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    summary = out.strip().splitlines()[-1]
    skipped = re.search(r"(\d+) skipped", summary)
    # Every selected test is skipped: none errors, fails or passes without its files.
    assert skipped and int(skipped.group(1)) >= 20, summary
    assert not re.search(r"\d+ (passed|failed|error)", summary), summary
    # -ra prints the reason once per distinct skip, naming the folder and the variable.
    assert "needs real RSNA challenge files" in out and str(empty) in out and "RSNA_SAMPLE_DIR" in out
