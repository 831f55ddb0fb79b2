"""Weights & Biases for `python -m train`: the one module of the project that imports ``wandb``.

We start the W&B run ourselves (before Ultralytics' own callback would), so that

- Ultralytics' callback logs its per-epoch metrics into *our* run and leaves it open when training ends,
  which lets the Kaggle score computed afterwards land in the same run (see ../shared/FACTS.md);
- the run lives in ``<run folder>/wandb/`` and is offline unless an API key is configured and the W&B
  server answers (:func:`choose_mode`), so a missing key or network never crashes or hangs training;
- sweep trials share a W&B ``group`` and a resumed run continues under its old run id.

Everything here is best effort: if W&B fails to start, training goes on without it and says so once.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from rsna_yolo import offline

SYNC_HINT_FILE = "WANDB_SYNC.txt"
DEFAULT_PROJECT = "rsna-yolo"


def previous_run_id(run_dir: Path) -> str | None:
    """The W&B run id already stored under ``run_dir/wandb`` (newest first), or None.

    W&B writes ``wandb/<offline-run|run>-<time>-<id>/run-<id>.wandb`` on every platform.
    """
    files = sorted(Path(run_dir).glob("wandb/*run-*/run-*.wandb"), key=lambda f: f.stat().st_mtime)
    return files[-1].stem[len("run-") :] if files else None


def choose_mode(user_set: frozenset[str] = offline.USER_SET) -> str:
    """The W&B mode for a run about to start: ``rsna_yolo/offline.py``'s choice, except that an ``online``
    it chose
    (an API key is configured) falls back to ``offline`` when the server does not answer within seconds,
    where W&B itself would hang for minutes. A ``WANDB_MODE`` the user set is never second-guessed."""
    mode = os.environ.get("WANDB_MODE", "offline")
    if mode == "online" and "WANDB_MODE" not in user_set and not offline.wandb_reachable():
        print("train: a W&B API key is configured but the W&B server does not answer; logging offline")
        mode = os.environ["WANDB_MODE"] = "offline"
    return mode


def start_run(
    run_dir: Path,
    config: dict[str, Any],
    *,
    project: str | None = None,
    group: str | None = None,
    resume: bool = False,
):
    """Start (or, with ``resume``, continue) the W&B run of the training run in ``run_dir``.

    Returns the ``wandb`` run, or None when W&B could not start (the reason is printed, training goes on).
    """
    try:
        import wandb
    except ImportError:
        print("train: wandb is not installed; training without W&B logging")
        return None
    choose_mode()
    run_dir = Path(run_dir)
    run_id = previous_run_id(run_dir) if resume else None
    name = run_dir.name
    # Started by `wandb agent`: the agent has chosen the run id (WANDB_RUN_ID) that ties this run to the
    # sweep; an id of our own would create a run outside the sweep.
    if os.environ.get("WANDB_RUN_ID") or os.environ.get("WANDB_SWEEP_ID"):
        run_id, resume = None, False
    elif run_id is None:
        stamp = datetime.now().astimezone().strftime("%Y%m%d_%H%M%S")
        run_id = f"{re.sub('[^A-Za-z0-9_.-]', '_', name)[:64]}_{stamp}"
    try:
        run = wandb.init(
            project=project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
            name=name,
            group=group,
            id=run_id,
            resume="allow" if resume else None,
            dir=str(run_dir),
            config=config,
            # With a key but no network W&B would otherwise wait minutes before failing.
            settings=wandb.Settings(init_timeout=60),
        )
    except Exception as exc:  # W&B is optional: any failure to start must not stop training
        print(f"train: W&B did not start ({type(exc).__name__}: {exc}); training without W&B logging")
        return None
    # Ultralytics logs "epoch" with every row; our per-epoch Kaggle score uses it as its x axis too.
    for prefix in ("train", "lr", "metrics", "val", "kaggle"):
        run.define_metric(f"{prefix}/*", step_metric="epoch")
    return run


def log(run, values: dict[str, Any], *, commit: bool = True) -> None:
    """Log ``values`` to ``run`` (no-op when ``run`` is None)."""
    if run is not None:
        run.log(values, commit=commit)


def set_summary(run, values: dict[str, Any]) -> None:
    """Write final values into the run summary (what W&B tables and sweeps show)."""
    if run is not None:
        for key, value in values.items():
            run.summary[key] = value


def finish(run, *, failed: bool = False) -> str | None:
    """Finish ``run``; return the ``wandb sync`` command for an offline run (None when online or no run)."""
    if run is None:
        return None
    offline = run.settings.mode == "offline" or os.environ.get("WANDB_MODE") == "offline"
    run_files = Path(run.dir).parent  # .../wandb/offline-run-<time>-<id>; run.dir is its files/ folder
    run.finish(exit_code=1 if failed else 0)
    return f"wandb sync {run_files}" if offline else None


def write_sync_hint(run_dir: Path, command: str | None) -> Path | None:
    """Append the ``wandb sync`` command to ``run_dir/WANDB_SYNC.txt`` and print it; returns the file."""
    if command is None:
        return None
    path = Path(run_dir) / SYNC_HINT_FILE
    with path.open("a") as f:
        if f.tell() == 0:
            f.write("# This run's W&B log was written offline. Upload it from a machine with internet:\n")
        f.write(command + "\n")
    print(f"W&B (offline): upload later with `{command}` (also in {path})")
    return path
