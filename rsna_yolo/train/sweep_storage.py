"""Where a sweep's Optuna study lives and how workers share it: the RDB storage (SQLite in the sweep
folder, or a shared PostgreSQL), the locks around creating its tables and drawing trials, the binding of a
study to its dataset and arguments, and trials of a killed worker queued again
(:mod:`rsna_yolo.train.sweep`)."""

from __future__ import annotations

import contextlib
import re
import warnings
import zlib
from pathlib import Path
from typing import Any

from rsna_yolo.core.cli import UserError


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
