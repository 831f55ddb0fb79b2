"""Sweeps shared through a real PostgreSQL server: two workers, exact counts, a worker killed mid-trial.

Each worker is a separate `python -m train sweep` process (standing in for a machine) with its own --out
folder; they share one study on a throwaway PostgreSQL cluster (tests/pg_cluster.py). Trials are real tiny
trainings (imgsz 64, one epoch)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO_ROOT, subprocess_env
from pg_cluster import postgres_cluster, server_bin

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        server_bin() is None,
        reason="needs Debian's PostgreSQL server (apt-get install postgresql; .ci/run installs it)",
    ),
]
SWEEP = REPO_ROOT / "yolo_configs/sweeps/optimizers.yaml"  # a grid of 4 hyperparameter files
TINY = ["model=yolo11n.yaml", "epochs=1", "imgsz=64", "batch=4", "workers=0", "plots=False", "wandb=False"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from tiny_yolo_data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("pgdata"), patients=16)


@pytest.fixture
def pg_url():
    with postgres_cluster() as url:
        yield url


def worker(url: str, data: Path, out: Path, count: int, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "train", "sweep", str(SWEEP), "--count", str(count), "--storage", url,
           "--data", str(data), "--out", str(out), *extra, *TINY]  # fmt: skip
    log = open(out.with_suffix(".log"), "w")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT)


def trials(url: str, name: str = "optimizers"):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def test_two_workers_share_one_study_and_run_exactly_count_trials(pg_url: str, data: Path, tmp_path: Path):
    procs = [worker(pg_url, data, tmp_path / f"machine{k}", 3) for k in (1, 2)]
    for k, p in zip((1, 2), procs, strict=True):
        assert p.wait(timeout=600) == 0, (tmp_path / f"machine{k}.log").read_text()[-3000:]
    states = [t.state.name for t in trials(pg_url)]
    assert states == ["COMPLETE"] * 3  # exactly --count trials between them, none failed
    cfgs = [t.params["cfg"] for t in trials(pg_url)]
    assert len(set(cfgs)) == 3  # no grid point twice
    run_dirs = [Path(t.user_attrs["run_dir"]) for t in trials(pg_url)]
    assert len(set(run_dirs)) == 3 and all((d / "kaggle.json").is_file() for d in run_dirs)
    assert {d.parent for d in run_dirs} <= {tmp_path / "machine1", tmp_path / "machine2"}
    # Both workers wrote trials.csv after the last trial ended: the same table whichever wrote last.
    one, two = (pd.read_csv(tmp_path / f"machine{k}" / "trials.csv") for k in (1, 2))
    assert len(one) == 3 and one.drop(columns="run_dir").equals(two.drop(columns="run_dir"))


def test_a_killed_worker_s_trial_fails_and_another_worker_runs_it_again(pg_url, data, tmp_path):
    grace = ["--heartbeat-grace", "3"]
    first = worker(pg_url, data, tmp_path / "a", 2, *grace)
    deadline = time.time() + 120
    while time.time() < deadline:  # until its first trial is running (the study exists by then)
        try:
            if any(t.state.name == "RUNNING" for t in trials(pg_url)):
                break
        except KeyError:  # no study yet
            pass
        time.sleep(0.5)
    else:
        pytest.fail("the first worker never started a trial")
    time.sleep(2)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    second = worker(pg_url, data, tmp_path / "b", 2, *grace)
    assert second.wait(timeout=600) == 0, (tmp_path / "b.log").read_text()[-3000:]
    got = trials(pg_url)
    assert [t.state.name for t in got] == ["FAIL", "COMPLETE", "COMPLETE"]
    dead, retry = got[0], next(t for t in got if t.system_attrs.get("failed_trial") == 0)
    assert retry.params == dead.params and retry.state.name == "COMPLETE"  # the same grid point, run again


def test_server_down_or_wrong_url_is_one_line(data: Path, tmp_path: Path, monkeypatch, capsys):
    from rsna_yolo.train.__main__ import main

    monkeypatch.chdir(REPO_ROOT)
    for url, words in [
        ("postgresql+psycopg://postgres@127.0.0.1:1/postgres", "cannot open the study database"),
        ("nosuchdb://x/y", "cannot open the study database"),
    ]:
        # in this process, as `python -m train sweep` runs it (a start-up of PyTorch saved per case)
        code = main(["sweep", str(SWEEP), "--storage", url, "--data", str(data), "--out", str(tmp_path / "o"),
                     *TINY])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and words in err, err[-2000:]
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
