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

W&B parameter specs understood: ``value``; ``values`` (categorical); ``min``/``max`` (int_uniform when
both are whole numbers, else uniform); ``distribution`` one of constant, categorical, int_uniform, uniform,
q_uniform, log_uniform_values, log_uniform (min/max are natural-log exponents), q_log_uniform_values
(whole numbers).
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.cli import UserError
from core.io import write_atomic

DEFAULT_SWEEPS_DIR = Path("runs") / "sweeps"
DEFAULT_GRACE = 120
"""Seconds without a heartbeat after which a running trial counts as dead (failed, run again once)."""
METHODS = ("grid", "random", "bayes")
NUMBER = (int, float)


@dataclass(frozen=True)
class SweepSpec:
    """A W&B sweep file, checked. ``fixed``: parameters with one value; ``space``: Optuna distributions."""

    name: str
    method: str
    metric: str
    goal: str
    fixed: dict[str, Any]
    space: dict[str, Any]  # name -> optuna.distributions.BaseDistribution
    early_terminate: dict[str, Any] = field(default_factory=dict)
    run_cap: int | None = None


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def distribution(name: str, spec: dict[str, Any]):
    """One W&B parameter spec -> an Optuna distribution, or ``("value", v)`` for a constant.

    >>> distribution("lr0", {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-2})
    FloatDistribution(high=0.01, log=True, low=0.0001, step=None)
    >>> distribution("batch", {"values": [8, 16]})
    CategoricalDistribution(choices=(8, 16))
    >>> distribution("epochs", {"min": 10, "max": 50})
    IntDistribution(high=50, log=False, low=10, step=1)
    >>> distribution("epochs", {"value": 5})
    ('value', 5)
    """
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not isinstance(spec, dict):
        raise UserError(
            f"parameter {name}: expected a mapping such as {{values: [...]}} or {{min: .., max: ..}}"
        )
    kind = spec.get("distribution")
    if kind is None:  # W&B's inference rules
        if "value" in spec:
            kind = "constant"
        elif "values" in spec:
            kind = "categorical"
        elif "min" in spec and "max" in spec:
            kind = "int_uniform" if _is_int(spec["min"]) and _is_int(spec["max"]) else "uniform"
        else:
            raise UserError(f"parameter {name}: needs value, values, or min and max")
    lo, hi, q = spec.get("min"), spec.get("max"), spec.get("q", 1)
    bounded = {"int_uniform", "uniform", "q_uniform", "log_uniform_values", "log_uniform"}
    bounded.add("q_log_uniform_values")
    if kind in bounded and not (isinstance(lo, NUMBER) and isinstance(hi, NUMBER) and lo < hi):
        raise UserError(f"parameter {name}: {kind} needs numbers min < max (got min={lo}, max={hi})")
    if kind == "constant":
        return ("value", spec["value"])
    if kind == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise UserError(f"parameter {name}: values must be a non-empty list")
        if "probabilities" in spec:
            raise UserError(f"parameter {name}: 'probabilities' is not supported by the local sweep")
        if any(not (v is None or isinstance(v, (bool, int, float, str))) for v in values):
            raise UserError(f"parameter {name}: values must be numbers, strings or booleans")
        return CategoricalDistribution(values)
    if kind == "int_uniform":
        return IntDistribution(int(lo), int(hi))
    if kind == "uniform":
        return FloatDistribution(float(lo), float(hi))
    if kind == "q_uniform":
        if all(_is_int(v) for v in (lo, hi, q)):
            return IntDistribution(lo, hi, step=q)
        return FloatDistribution(float(lo), float(hi), step=float(q))
    if kind == "log_uniform_values":
        return FloatDistribution(float(lo), float(hi), log=True)
    if kind == "log_uniform":
        return FloatDistribution(math.exp(lo), math.exp(hi), log=True)
    if kind == "q_log_uniform_values" and all(_is_int(v) for v in (lo, hi)) and q == 1:
        return IntDistribution(lo, hi, log=True)
    raise UserError(
        f"parameter {name}: distribution {kind!r} (with these bounds) is not supported by the local sweep; "
        "run this file with `wandb sweep` + `wandb agent`, or use values/min/max/log_uniform_values"
    )


def load_sweep(path: Path, name: str | None = None) -> SweepSpec:
    """Read and check a W&B sweep YAML (``method``, ``metric``, ``parameters``, ``early_terminate``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: sweep file not found (see yolo_configs/sweeps/)")
    doc = yaml.safe_load(path.read_text()) or {}
    method = doc.get("method")
    if method not in METHODS:
        raise UserError(f"{path}: method must be one of {', '.join(METHODS)} (got {method!r})")
    metric = doc.get("metric") or {}
    if not metric.get("name") or metric.get("goal", "maximize") not in {"maximize", "minimize"}:
        raise UserError(f"{path}: metric needs a name and goal maximize|minimize")
    params = doc.get("parameters")
    if not isinstance(params, dict) or not params:
        raise UserError(f"{path}: parameters must be a non-empty mapping")
    fixed, space = {}, {}
    for key, spec in params.items():
        if isinstance(spec, dict) and "parameters" in spec:
            raise UserError(
                f"{path}: parameter {key}: nested parameters are not supported by the local sweep"
            )
        d = distribution(str(key), spec)
        if isinstance(d, tuple):
            fixed[str(key)] = d[1]
        else:
            space[str(key)] = d
    early = doc.get("early_terminate") or {}
    if early and early.get("type") != "hyperband":
        raise UserError(f"{path}: early_terminate type {early.get('type')!r}: only hyperband is supported")
    run_cap = doc.get("run_cap")
    return SweepSpec(
        name=name or str(doc.get("name") or path.stem),
        method=method,
        metric=str(metric["name"]),
        goal=str(metric.get("goal", "maximize")),
        fixed=fixed,
        space=space,
        early_terminate=dict(early),
        run_cap=int(run_cap) if run_cap else None,
    )


def grid_values(spec: SweepSpec) -> dict[str, list[Any]]:
    """Every value of each swept parameter, for the grid method (categorical or whole-number ranges)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    grid = {}
    for key, d in spec.space.items():
        if isinstance(d, CategoricalDistribution):
            grid[key] = list(d.choices)
        elif isinstance(d, IntDistribution) and not d.log:
            grid[key] = list(range(d.low, d.high + 1, d.step))
        else:
            raise UserError(
                f"sweep {spec.name}: grid needs values or whole-number ranges; {key} is continuous"
            )
    return grid


def make_sampler(spec: SweepSpec, seed: int):
    """grid -> GridSampler, random -> RandomSampler, bayes -> TPESampler (seeded, so reruns agree)."""
    import optuna

    if spec.method == "grid":
        return optuna.samplers.GridSampler(grid_values(spec), seed=seed)
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(spec: SweepSpec, epochs: int | None):
    """W&B ``hyperband`` (min_iter / max_iter / eta) -> Optuna's HyperbandPruner over epochs; else none."""
    import optuna

    if not spec.early_terminate:
        return optuna.pruners.NopPruner()
    et = spec.early_terminate
    max_iter = et.get("max_iter") or epochs or "auto"
    return optuna.pruners.HyperbandPruner(
        min_resource=int(et.get("min_iter", 1)), max_resource=max_iter, reduction_factor=int(et.get("eta", 3))
    )


def default_count(spec: SweepSpec) -> int:
    """Trials to run when ``--count`` is not given: the grid size, W&B's ``run_cap``, else 10."""
    if spec.method == "grid":
        return math.prod(len(v) for v in grid_values(spec).values())
    return spec.run_cap or 10


def objective_value(metric: str, result) -> float:
    """The sweep metric of a finished trial: ``kaggle/<key of kaggle.json>`` (a detector),
    ``classify/<key of classify.json>`` (a classifier: ``classify/auc_opacity``, ``classify/accuracy``) or
    an Ultralytics metric."""
    if metric.startswith("classify/") and result.classify is not None:
        value = result.classify.get(metric.removeprefix("classify/"))
        return float("nan") if value is None else float(value)
    if metric == "kaggle/mAP":
        return float(result.kaggle["score"])
    if metric.startswith("kaggle/"):
        return float(result.kaggle[metric.removeprefix("kaggle/")])
    if metric in result.metrics:
        return float(result.metrics[metric])
    raise UserError(
        f"metric {metric}: not produced by a run (use kaggle/mAP or one of {sorted(result.metrics)})"
    )


def example_values(spec: SweepSpec) -> dict[str, Any]:
    """One value of each swept parameter (the first choice, or the low end), to check keys before a study.

    >>> spec = load_sweep(Path(__file__).parents[1] / "yolo_configs/sweeps/optimizers.yaml")
    >>> example_values(spec)
    {'cfg': 'yolo_configs/hyp/sgd.yaml'}
    """
    from optuna.distributions import CategoricalDistribution

    space = spec.space
    return {k: d.choices[0] if isinstance(d, CategoricalDistribution) else d.low for k, d in space.items()}


def suggest(trial, key: str, d) -> Any:
    """Ask the trial for ``key`` from distribution ``d`` (define-by-run, so samplers see the same space)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(key, d.choices)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(key, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_float(key, d.low, d.high, step=d.step, log=d.log)


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


def redact(url: str) -> str:
    """A storage URL without its password (``postgresql+psycopg://user:***@host/db``).

    >>> redact("postgresql+psycopg://me:secret@db:5432/optuna")
    'postgresql+psycopg://me:***@db:5432/optuna'
    """
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_storage(url: str, grace: int):
    """Optuna's RDB storage at ``url`` with heartbeats (every ``grace // 4`` s; a trial silent for
    ``grace`` s is failed and retried once). A wrong URL, a missing driver or a server that does not answer
    is one :class:`UserError` line."""
    import optuna
    import sqlalchemy.exc

    try:
        # Optuna creates its tables when it opens a database; two workers doing that at the same moment
        # on PostgreSQL collide on the schema, so the first opening is serialised by an advisory lock.
        with _schema_lock(url), warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=max(1, grace // 4),
                grace_period=grace,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
                engine_kwargs={"pool_pre_ping": True},
            )
    except (ImportError, ValueError, sqlalchemy.exc.ArgumentError, sqlalchemy.exc.SQLAlchemyError) as exc:
        detail = " ".join(str(exc.orig if hasattr(exc, "orig") else exc).split())[:300]
        raise UserError(f"--storage {redact(url)}: cannot open the study database ({detail})") from None


@contextlib.contextmanager
def _schema_lock(url: str):
    """While Optuna creates or checks its tables: a PostgreSQL advisory lock on a connection of its own
    (released by the server if this process dies); nothing for other databases."""
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    key = zlib.crc32(b"rsna-yolo sweep schema")
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


@contextlib.contextmanager
def study_lock(rdb, url: str, name: str):
    """A lock shared by every worker of study ``name``: a PostgreSQL advisory lock (released by the server
    if the worker dies), or a file lock beside a SQLite database. Held only while a worker picks its next
    trial, so the count and the grid stay exact across workers."""
    if url.startswith("postgresql"):
        from sqlalchemy import text

        key = zlib.crc32(f"rsna-yolo sweep {name}".encode())
        with rdb.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    if url.startswith("sqlite:///"):
        import fcntl

        db = Path(url.removeprefix("sqlite:///"))
        with open(db.with_name(f".{db.name}.{name}.lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    yield  # other databases: no lock (workers may then run a trial or two more than asked)


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


BOUND_ATTR = "rsna_yolo_bound_to"
"""Study user attribute holding what a study was created for: ``{"data": ..., "overrides": {...}}``."""


def bind_study(study, bound: dict[str, Any], storage_url: str) -> None:
    """Record the dataset and fixed overrides of a new study; refuse to continue one created for others.

    ``bound`` is ``{"data": absolute data YAML, "overrides": {key: value}}`` (the key=value arguments given
    for every trial, less ``project`` and ``name``, which only say where runs go). A study recorded with
    other values raises ``UserError`` naming each difference: its trials answer another question, so
    their table and best trial must not be presented as this one's.
    """
    recorded = study.user_attrs.get(BOUND_ATTR)
    if recorded is None:
        study.set_user_attr(BOUND_ATTR, bound)
        return
    if recorded == bound:
        return
    was, now = (
        {"data": recorded["data"], **recorded["overrides"]},
        {"data": bound["data"], **bound["overrides"]},
    )
    diffs = [
        f"{k}={was.get(k, '(unset)')} in the study, {now.get(k, '(unset)')} now"
        for k in sorted(was.keys() | now.keys())
        if was.get(k, ...) != now.get(k, ...)
    ]
    raise UserError(
        f"study {study.study_name} ({storage_url}) was created for other arguments: {'; '.join(diffs)}. "
        "Continue it with the same ones, or start a separate study with --study-name NAME or another --out"
    )


def requeue_interrupted(study) -> list[int]:
    """Queue again, once, each trial that Ctrl-C interrupted (FAIL with user attribute ``interrupted``).

    Optuna marks an interrupted trial FAIL, and its GridSampler counts a failed grid point as visited, so a
    rerun would skip it. The retry keeps the trial's parameters and grid point, like Optuna's own retry of a
    trial killed outright (``RetryHeartbeatStaleTrialCallback``). Returns the numbers of the queued trials.
    """
    import optuna

    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    queued = []
    for t in trials:
        if t.state != optuna.trial.TrialState.FAIL or not t.user_attrs.get("interrupted"):
            continue
        if t.number in retried:
            continue
        system_attrs = {
            **t.system_attrs,
            "failed_trial": t.system_attrs.get("failed_trial", t.number),
            "retry_history": [*t.system_attrs.get("retry_history", []), t.number],
        }
        study.add_trial(
            optuna.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=t.params,
                distributions=t.distributions,
                system_attrs=system_attrs,
            )
        )
        queued.append(t.number)
    return queued


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

    from train.args import resolve_data, split_values
    from train.run import train

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
        trials_table(study, spec.metric, bound["data"]).to_csv(folder / "trials.csv", index=False)
        print(f"sweep interrupted; trials so far: {folder / 'trials.csv'}. Rerun the command to continue")
        raise
    table = trials_table(study, spec.metric, bound["data"])
    table.to_csv(folder / "trials.csv", index=False)
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
