"""Run a W&B sweep file locally with Optuna: ``python -m train sweep yolo_configs/sweeps/x.yaml``.

One sweep file, two engines:

- online, many machines: ``wandb sweep x.yaml`` then ``wandb agent ENTITY/PROJECT/ID`` on each machine;
  the agent runs the file's ``command`` (``python -m train key=value ...``) with each suggestion;
- offline, here: this module reads the same file and lets Optuna suggest the values (``grid`` ->
  GridSampler, ``random`` -> RandomSampler, ``bayes`` -> TPESampler; ``early_terminate: hyperband`` ->
  HyperbandPruner, fed each epoch's ``kaggle/mAP`` when ``kaggle_every`` is set, else Ultralytics' fitness).
  Each trial is an ordinary `python -m train` run (its own run folder and W&B run, grouped by the sweep's
  name). The study lives in an RDB storage (SQLite in the sweep folder by default), so an interrupted sweep
  continues where it stopped and several machines can share one study (``--storage`` on a shared DB).

Three modules: :mod:`rsna_yolo.train.sweep_spec` translates the sweep file (parameter specs, sampler, pruner),
:mod:`rsna_yolo.train.sweep_storage` keeps the study (storage, locks, binding, requeueing), and this one
runs the
loop (draw a trial, train it, tell the result, ``trials.csv``, ``best_args.txt``).
"""

from __future__ import annotations

import functools
import math
import re
import time
import warnings
from pathlib import Path
from typing import Any

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_atomic, write_csv_atomic
from rsna_yolo.train.sweep_spec import (
    SweepSpec,
    default_count,
    example_values,
    load_sweep,
    make_pruner,
    make_sampler,
    objective_value,
    suggest,
)
from rsna_yolo.train.sweep_storage import bind_study, open_storage, redact, requeue_interrupted, study_lock

DEFAULT_SWEEPS_DIR = Path("runs") / "sweeps"
DEFAULT_GRACE = 120
"""Seconds without a heartbeat after which a running trial counts as dead (failed, run again once)."""


def trials_table(study, metric: str, data: str) -> pd.DataFrame:  # noqa: F821  (pandas imported lazily)
    """One row per trial: number, state, the metric, each parameter, run folder, Kaggle conf/scale, time,
    and the dataset ``data`` the study is bound to (see :func:`bind_study`)."""
    df = study.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs", "duration"))
    if df.empty:
        return df
    df.insert(2, "data", data)
    df = df.rename(columns={"value": metric})
    df.columns = [re.sub(r"^(params|user_attrs)_", "", c) for c in df.columns]
    if "duration" in df:
        df["duration"] = df["duration"].dt.total_seconds().round(1)
        df = df.rename(columns={"duration": "seconds"})
    return df


BEST_ARGS = "best_args.txt"
"""In the sweep folder: the best finished trial's arguments (swept, then fixed; not ``data``, ``project``
or ``name``) as one line of ``key=value`` words, to train with them again:
``python -m train folds D/folds $(cat SWEEP/best_args.txt) name=...``."""


def best_args(params: dict[str, Any], fixed: dict[str, Any]) -> str:
    """``key=value`` words for a trial's ``params`` (floats to 6 significant digits), then the ``fixed``
    ones (the sweep file's constants overridden by the command's key=value arguments, as the trials ran;
    the dataset and where runs went are left out).

    >>> best_args({"lr0": 0.00123456789, "batch": 16, "fliplr": 1.0}, {"epochs": 5})
    'lr0=0.00123457 batch=16 fliplr=1.0 epochs=5'
    """

    def text(v) -> str:
        if isinstance(v, float):
            t = f"{v:.6g}"
            return t if any(c in t for c in ".en") else t + ".0"
        return str(v)

    return " ".join(f"{k}={text(v)}" for k, v in {**params, **fixed}.items())


def next_trial(study, wanted: int):
    """The next trial for this worker (call under :func:`study_lock`): a new or queued trial while fewer than
    ``wanted`` are finished or running; ``None`` once ``wanted`` are finished; :data:`WAIT` while the rest
    are running elsewhere (one of them may die and have to run again)."""
    import optuna
    from optuna.storages import fail_stale_trials

    with warnings.catch_warnings():
        # Optuna calls heartbeats experimental and expects them inside Study.optimize; run_trials sends them
        # itself (get_heartbeat_thread), as optimize does, around each trial it takes here.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        fail_stale_trials(study)  # dead workers' trials -> FAIL, each queued again once (WAITING)
        states = optuna.trial.TrialState
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state in (states.COMPLETE, states.PRUNED) for t in trials)
        running = sum(t.state == states.RUNNING for t in trials)
        if done + running < wanted:
            return study.ask()  # takes a queued (WAITING) trial first
    return None if done >= wanted else WAIT


WAIT = object()
"""What :func:`next_trial` returns while the study's last trials run elsewhere."""


def run_trials(study, objective, wanted: int, lock, *, poll: float = 5.0) -> None:
    """Take trials (:func:`next_trial`, under ``lock()``: :func:`study_lock`'s context) and run
    ``objective`` on each, with heartbeats, until ``wanted`` are finished. A ``UserError`` stops the sweep;
    ``RuntimeError``/``ValueError``/``OSError`` fail one trial (another takes its place; after ``wanted``
    such failures in a row the sweep stops)."""
    import optuna
    from optuna.storages._heartbeat import get_heartbeat_thread

    failures = 0
    while True:
        with lock():
            trial = next_trial(study, wanted)
        if trial is None:
            return
        if trial is WAIT:
            time.sleep(poll)
            continue
        with get_heartbeat_thread(trial._trial_id, study._storage):
            try:
                value = objective(trial)
            except optuna.TrialPruned:
                _tell(study, trial, state=optuna.trial.TrialState.PRUNED)
                continue
            except (KeyboardInterrupt, UserError):
                _tell(study, trial, state=optuna.trial.TrialState.FAIL)
                raise
            except (RuntimeError, ValueError, OSError) as exc:
                _tell(study, trial, state=optuna.trial.TrialState.FAIL)
                failures += 1
                print(f"trial {trial.number} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                if failures >= wanted:
                    raise UserError(f"{failures} trials failed in a row; the last: {exc}") from exc
                continue
        failures = 0
        _tell(study, trial, value)


def _tell(study, trial, value: float | None = None, state=None) -> None:
    """``study.tell`` outside ``study.optimize``: Optuna's GridSampler calls ``study.stop()`` when its grid is
    used up, which raises there; the trial is stored all the same (Optuna stores it in a ``finally``), and
    :func:`run_trials` stops on its own count."""
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def run_sweep(
    sweep_file: Path,
    *,
    count: int | None = None,
    data: str | None = None,
    overrides: list[tuple[str, Any]] | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    out_dir: Path | None = None,
    seed: int = 0,
    heartbeat_grace: int = DEFAULT_GRACE,
    poll: float = 5.0,
):
    """Run (or continue) a sweep; returns the trials table, also written to ``<sweep folder>/trials.csv``.

    ``overrides`` (typed ``(key, value)`` pairs) apply to every trial and take a parameter out of the search.
    ``count`` is the total of finished trials wanted: a rerun only runs the ones still missing.

    Several workers (processes or machines) started with the same arguments and the same ``storage`` share
    the study and together run exactly ``count`` trials: each new trial is taken under a lock of the study
    (:func:`study_lock`), counting the trials finished and running. A trial whose worker died (``kill -9``,
    power loss) stops sending heartbeats; ``heartbeat_grace`` seconds later a worker marks it failed and it
    is run again, once, by whichever worker is free (so a worker waits, polling every ``poll`` seconds, while
    only others' running trials stand between the study and its count).
    """
    import optuna

    from rsna_yolo.train.args import resolve_data, split_values
    from rsna_yolo.train.run import train

    spec = load_sweep(Path(sweep_file), study_name)
    pinned = dict(overrides or [])
    if data:
        pinned["data"] = data
    spec = SweepSpec(
        **{**spec.__dict__, "space": {k: v for k, v in spec.space.items() if k not in pinned}},
    )
    # Check the dataset and the keys before creating a study whose every trial would fail on them.
    task = pinned.get("task", spec.fixed.get("task", "detect"))
    pinned["data"] = str(resolve_data({"data": pinned.get("data") or spec.fixed.get("data")}, task))
    split_values(list({**spec.fixed, **example_values(spec), **pinned}.items()))
    folder = Path(out_dir or DEFAULT_SWEEPS_DIR / spec.name).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    # Trial runs go to <project>/<name>_NNN: project= and name= as typed, else the sweep folder / "trial".
    runs_dir = Path(str(pinned.pop("project", None) or folder)).resolve()
    run_prefix = str(pinned.pop("name", None) or "trial")
    # The question the study answers: the dataset and the fixed arguments. Where this machine puts its trial
    # runs (project=, name=, --out) is not part of it: workers on other machines put theirs elsewhere.
    bound = {"data": pinned["data"], "overrides": {k: v for k, v in sorted(pinned.items()) if k != "data"}}
    storage_url = storage or f"sqlite:///{folder / 'optuna.db'}"
    epochs = pinned.get("epochs", spec.fixed.get("epochs"))
    if heartbeat_grace < 2:
        raise UserError(f"--heartbeat-grace {heartbeat_grace}: at least 2 seconds")
    rdb = open_storage(storage_url, heartbeat_grace)
    lock = functools.partial(study_lock, rdb, storage_url, spec.name)
    with lock():  # two workers starting together create, bind and requeue once
        study = optuna.create_study(
            storage=rdb,
            study_name=spec.name,
            sampler=make_sampler(spec, seed),
            pruner=make_pruner(spec, epochs if isinstance(epochs, int) else None),
            direction=spec.goal,
            load_if_exists=True,
        )
        bind_study(study, bound, storage_url)
        study.set_user_attr("metric", spec.metric)  # what analysis compare names the value
        requeued = requeue_interrupted(study)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    wanted = count if count is not None else default_count(spec)
    remaining = max(wanted - len(study.get_trials(deepcopy=False, states=finished)), 0)
    print(
        f"sweep {spec.name} ({spec.method}, {spec.metric} {spec.goal}): {remaining} of {wanted} trials to run"
    )
    print(f"  dataset: {bound['data']}")
    print(f"  study: {redact(storage_url)}   trial runs: {runs_dir}/{run_prefix}_NNN   trials.csv: {folder}")
    if requeued:
        print(f"  trials interrupted last time, run again first: {', '.join(map(str, requeued))}")

    def objective(trial) -> float:
        suggested = {key: suggest(trial, key, d) for key, d in spec.space.items()}
        values = {**spec.fixed, **suggested, **pinned}
        values.setdefault("wandb_group", spec.name)
        args, options = split_values(list(values.items()))
        args.update(project=str(runs_dir), name=f"{run_prefix}_{trial.number:03d}", exist_ok=True)

        def on_epoch(epoch: int, value: float) -> bool:
            if math.isfinite(value):
                trial.report(value, epoch)
            return trial.should_prune()

        started = time.time()
        try:
            result = train(args, options, on_epoch=on_epoch)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)  # run again first when the sweep continues
            raise
        trial.set_user_attr("run_dir", str(result.run_dir))
        trial.set_user_attr("epochs_done", result.epochs_done)
        if result.stopped_by_hook:
            raise optuna.TrialPruned(f"pruned after epoch {result.epochs_done}")
        if result.kaggle:
            trial.set_user_attr("kaggle_conf", result.kaggle.get("conf"))
            trial.set_user_attr("kaggle_scale", result.kaggle.get("scale"))
        print(f"trial {trial.number}: {spec.metric} = {objective_value(spec.metric, result):.4f} "
              f"({time.time() - started:.0f} s, {result.run_dir})")  # fmt: skip
        return objective_value(spec.metric, result)

    try:
        if remaining:
            run_trials(study, objective, wanted, lock, poll=poll)
    except KeyboardInterrupt:
        write_csv_atomic(trials_table(study, spec.metric, bound["data"]), folder / "trials.csv")
        print(f"sweep interrupted; trials so far: {folder / 'trials.csv'}. Rerun the command to continue")
        raise
    table = trials_table(study, spec.metric, bound["data"])
    write_csv_atomic(table, folder / "trials.csv")
    if not table.empty:
        import pandas as pd

        with pd.option_context("display.width", 160, "display.max_columns", 30):
            print(table.to_string(index=False))
        done = table[table["state"] == "COMPLETE"]
        if len(done):
            best = done.sort_values(spec.metric, ascending=spec.goal == "minimize").iloc[0]
            score = best[spec.metric]
            print(f"best: trial {best['number']}: {spec.metric} = {score:.4f}, {best.get('run_dir')}")
            best_trial = study.trials[int(best["number"])]
            args_line = best_args(best_trial.params, {**spec.fixed, **bound["overrides"]})
            write_atomic(folder / BEST_ARGS, args_line + "\n")
            print(f"its arguments ({folder / BEST_ARGS}): {args_line}")
    print(f"trials table: {folder / 'trials.csv'}")
    return table
