"""Every benchmark in ``benchmarks/`` runs from the clone into a fresh output folder, at its smallest size.

These check that a benchmark runs where it never ran before (``real_size.py`` once crashed on any new
``--work`` folder) and prints its table; the figures at these sizes mean nothing and are not asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, subprocess_env

# every benchmark; _steps.py holds what they share and is none
ALL = sorted(p.name for p in (REPO_ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))
# these train (in test_benchmarks_training.py)
TRAINING = ("cpu_determinism.py", "gating_bench.py", "train_bench.py", "cpu_inference.py", "int8_score.py")
JSON_LAST = {"real_size.py", "cpu_determinism.py", "predict_memory.py", "cpu_inference.py", "int8_score.py"}
BENCHMARKS = [n for n in ALL if n not in TRAINING]


def smallest(name: str, out: Path) -> list[str]:
    """The arguments that run ``benchmarks/<name>`` at its smallest size, writing only under ``out``."""
    args = {
        "convert_bench.py": "--n 10 --imgsz 64 --repeat 1",
        "metric_bench.py": "--images 40 --repeat 1",
        "real_size.py": "--sizes 40 --test-patients 6 --imgsz 32 --dicom-size 64 --workers 1 "
        "--baseline-images 10",
        "train_bench.py": "--patients 16 --n-test 3 --epochs 1 --imgsz 64 --batch 4",
        "gating_bench.py": "--patients 24 --imgsz 128 --det-epochs 1 --cls-epochs 1 --tries basic "
        "--ensemble 1",
        "cpu_determinism.py": "--patients 8 --epochs 1 --imgsz 64 --settings default,onednn_avx2",
        "predict_memory.py": "--sizes 4 --train-patients 12 --dicom-size 64",
        "int8_score.py": "--patients 12 --dicom-size 64 --imgsz 64 --epochs 1",
        "cpu_inference.py": "--films 4 --train-patients 8 --dicom-size 64 --imgsz 64 --backends torch "
        "--processes 1",
    }[name].split()
    if name in {"convert_bench.py", "metric_bench.py"}:  # these write only to a temporary folder they remove
        return args
    return [("--work" if name == "real_size.py" else "--out"), str(out), *args]


# what each prints once it has measured (a line of its table, or its JSON)
PRINTS = {
    "convert_bench.py": "convert_rsna, 1 worker",
    "metric_bench.py": "single scoring",
    "real_size.py": "post-training",
    "train_bench.py": "python -m train / yolo",
    "gating_bench.py": "ceiling",
    "cpu_determinism.py": "onednn_avx2",
    "predict_memory.py": "x smallest",
    "cpu_inference.py": "x threads",
    "int8_score.py": "openvino-int8",
}


def test_every_benchmark_has_a_smallest_size():
    assert set(ALL) == set(PRINTS), "a new benchmark needs its smallest size here"


def run_benchmark(name: str, tmp_path: Path) -> None:
    """``benchmarks/<name>`` at its smallest size into a folder that does not exist yet: it finishes, prints
    its table, and (where it has one) its JSON last line."""
    out = tmp_path / "fresh" / "out"  # neither folder exists yet
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / name), *smallest(name, out)],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    assert PRINTS[name] in proc.stdout, proc.stdout[-2000:]
    if name in JSON_LAST:
        assert isinstance(json.loads(proc.stdout.strip().splitlines()[-1]), dict)


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_into_a_fresh_folder(name: str, tmp_path: Path):
    run_benchmark(name, tmp_path)
