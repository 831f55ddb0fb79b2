"""The benchmarks that train run from the clone into a fresh output folder, at their smallest size: the
other half of ``test_benchmarks.py``, in a file of its own so that the parallel suite (one file per worker)
can run the two halves side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_benchmarks import TRAINING, run_benchmark


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAINING)
def test_training_benchmark_runs_into_a_fresh_folder(name: str, tmp_path: Path):
    run_benchmark(name, tmp_path)
