"""Reading training runs for ``analysis compare``: what a run folder holds, as a :class:`Run`.

A run folder is what ``yolo train``, ``python -m train`` or a sweep leaves (Ultralytics 8.4):
``args.yaml`` (every argument of the run), ``results.csv`` (one row per epoch: ``epoch, time`` in seconds
since the start of training, ``train/*_loss``, ``metrics/*(B)``, ``val/*_loss``, ``lr/pg*``),
``weights/{best,last}.pt`` and, once rescored, ``kaggle.json`` (docs/ARCHITECTURE.md).

- :func:`find_runs` / :func:`read_run` -> :class:`Run` or a :class:`RunError` naming what is wrong (no
  ``args.yaml``, no or empty ``results.csv``, unreadable files); interrupted runs are read and flagged;
- :func:`summarize_run` -> one table row; :func:`run_status`, :func:`best_epoch`, :func:`train_seconds`;
- :func:`ensure_kaggle` rescores a run without ``kaggle.json`` when it can.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.runs import ARGS_YAML, RESULTS_CSV, WEIGHTS_DIR, read_args, read_kaggle, run_weights

MAP50 = "metrics/mAP50(B)"
MAP50_95 = "metrics/mAP50-95(B)"
LOSSES = ("box_loss", "cls_loss", "dfl_loss")
SIZES = "nsmlx"
"""Ultralytics model sizes (what it calls scales), smallest first."""
BOOKKEEPING = {
    "name", "save_dir", "project", "exist_ok", "resume", "device", "workers", "verbose", "plots", "save",
    "save_period", "cache", "mode", "task", "model", "source", "show", "save_txt", "save_conf", "save_crop",
    "show_labels", "show_conf", "show_boxes", "line_width", "format", "tracker", "wandb", "profile",
}  # fmt: skip
"""``args.yaml`` keys that name, place or display a run rather than change what it learns (``model`` is
shown as family + size + initialisation instead)."""
MODEL_RE = re.compile(r"(yolov\d+|yolo\d+|rtdetr)-?([nsmlx])?", re.IGNORECASE)


class RunError(Exception):
    """A folder that cannot be compared (the message is the reason, shown in the report)."""


@dataclass
class Run:
    """One readable run: ``args`` from args.yaml, ``results`` from results.csv (columns stripped of
    padding), ``kaggle`` from kaggle.json (``None`` when absent), ``notes`` worth reporting."""

    path: Path
    args: dict
    results: pd.DataFrame
    kaggle: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def _is_run(folder: Path) -> bool:
    """Any trace of a run: a run killed before writing args.yaml may still have left ``weights/``."""
    return any((folder / name).exists() for name in (ARGS_YAML, RESULTS_CSV, WEIGHTS_DIR))


def find_runs(paths: list[Path]) -> list[Path]:
    """Each path that looks like a run folder, or, for a folder of runs at any depth (``runs/``,
    ``runs/detect``, ``runs/sweeps/<name>``), each folder below it holding ``args.yaml``, ``results.csv``
    or ``weights/`` (not looking inside a run). A path that is neither is kept (and reported)."""
    found = []
    for p in map(Path, paths):
        if p.is_dir() and not _is_run(p):
            found += _runs_below(p) or [p]
        else:
            found.append(p)
    return found


def _runs_below(folder: Path) -> list[Path]:
    """Run folders under ``folder``, sorted; a run's own sub-folders (weights, wandb) are not searched."""
    out = []
    for d in sorted(folder.iterdir()):
        if d.is_dir() and not d.is_symlink():
            out += [d] if _is_run(d) else _runs_below(d)
    return out


def read_run(path: Path) -> Run:
    """Read a run folder; raises :class:`RunError` with the reason when it cannot be compared."""
    path = Path(path)
    if not path.is_dir():
        raise RunError("not a folder")
    try:
        args = read_args(path)
    except UserError as exc:
        raise RunError("args.yaml: " + str(exc).split(": ", 1)[1]) from exc
    if args is None:
        raise RunError("no args.yaml (not an Ultralytics run folder, or its start was interrupted)")
    csv = path / RESULTS_CSV
    if not csv.is_file():
        raise RunError(
            "no results.csv: no epoch finished (interrupted in the first epoch, or still starting)"
        )
    try:
        results = pd.read_csv(csv)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RunError(f"results.csv unreadable ({type(exc).__name__})") from exc
    results.columns = [c.strip() for c in results.columns]
    if "epoch" not in results or MAP50_95 not in results:
        raise RunError(f"results.csv lacks the epoch/{MAP50_95} columns (a detection run?)")
    results = results.dropna(subset=["epoch"])
    if results.empty:
        raise RunError("results.csv has no epoch rows")
    kaggle, notes = None, []
    try:
        kaggle = read_kaggle(path)
    except UserError as exc:
        notes.append(f"{path.name}: {exc}; treated as missing")
    return Run(path, args, results.reset_index(drop=True), kaggle, notes)


def model_family_size(model: str | None) -> tuple[str, str, str]:
    """``(family, size, init)`` from an ``args.yaml`` ``model``: init is "scratch" for a ``.yaml``,
    "weights" for a ``.pt``.

    >>> [model_family_size(m) for m in ("yolo11n.yaml", "/w/yolov8s.pt", "runs/x/best.pt")]
    [('yolo11', 'n', 'scratch'), ('yolov8', 's', 'weights'), ('', '', 'weights')]
    """
    text = str(model or "")
    name = Path(text).name
    init = "scratch" if name.endswith((".yaml", ".yml")) else "weights" if name.endswith(".pt") else ""
    m = MODEL_RE.match(name)
    if not m:
        return "", "", init
    return m.group(1).lower(), (m.group(2) or "").lower(), init


def best_epoch(results: pd.DataFrame) -> int:
    """The epoch Ultralytics 8.4 keeps as ``best.pt``: fitness is mAP50-95 and a later epoch wins only
    when strictly better, except while the best fitness is still 0 (``EarlyStopping.__call__``)."""
    best, best_fit = int(results["epoch"].iloc[0]), 0.0
    for epoch, fit in zip(results["epoch"], results[MAP50_95].fillna(0), strict=True):
        if fit > best_fit or best_fit == 0:
            best, best_fit = int(epoch), float(fit)
    return best


def train_seconds(time_column: pd.Series) -> float:
    """Training time from ``results.csv`` ``time`` (seconds since start): a resumed run restarts the clock,
    so each segment's last value is summed.

    >>> train_seconds(pd.Series([10.0, 20.0, 5.0, 12.0]))
    32.0
    """
    t = time_column.astype(float).to_numpy()
    if not len(t):
        return float("nan")
    ends = np.flatnonzero(np.diff(t) < 0)  # last row of each segment before a restart
    return float(t[ends].sum() + t[-1])


def run_status(run: Run) -> tuple[str, str]:
    """``(status, reason)``: "complete", "early-stopped", "time limit" or "interrupted"."""
    planned = int(run.args.get("epochs") or 0)
    done = int(run.results["epoch"].max())
    if run.args.get("time"):
        return "time limit", f"time={run.args['time']} h caps training; epochs are recomputed from it"
    if done >= planned:
        return "complete", ""
    patience = run.args.get("patience")
    best = best_epoch(run.results)
    # The stopper checks after every epoch, so a run whose last row reached `patience` epochs without
    # improvement stopped there; any other short run was killed (or is still training).
    if patience and done - best >= int(patience):
        return (
            "early-stopped",
            f"no improvement for {done - best} epochs (patience {patience}) after epoch {best}",
        )
    return (
        "interrupted",
        f"stopped after epoch {done} of {planned} without early stopping (killed or still running)",
    )


def summarize_run(run: Run) -> dict:
    """One table row: model, epochs, best epoch, stopping, resume, time, Ultralytics and Kaggle scores."""
    r = run.results
    family, size, init = model_family_size(run.args.get("model"))
    best = best_epoch(r)
    best_row = r[r["epoch"] == best].iloc[0]
    status, reason = run_status(run)
    # A resumed run has `resume: <last.pt>` in args.yaml, and its time column restarts from 0.
    clock_restarts = "time" in r and bool((np.diff(r["time"].astype(float)) < 0).any())
    resumed = bool(run.args.get("resume")) or clock_restarts
    k = run.kaggle or {}
    return {
        "run": run.name,
        "family": family,
        "size": size,
        "init": init,
        "epochs planned": int(run.args.get("epochs") or 0),
        "epochs run": int(r["epoch"].max()),
        "best epoch": best,
        "status": status,
        "early-stopped": status == "early-stopped",
        "resumed": resumed,
        "train time (s)": train_seconds(r["time"]) if "time" in r else float("nan"),
        "final mAP50": float(r[MAP50].iloc[-1]) if MAP50 in r else float("nan"),
        "best mAP50": float(best_row[MAP50]) if MAP50 in r else float("nan"),
        "final mAP50-95": float(r[MAP50_95].iloc[-1]),
        "best mAP50-95": float(best_row[MAP50_95]),
        "Kaggle mAP": as_float(k.get("score")),
        "Kaggle held-out": as_float(k.get("score_heldout")),
        "Kaggle conf": as_float(k.get("conf")),
        "Kaggle scale": as_float(k.get("scale")),
        "Kaggle split": k.get("split", ""),
        "Kaggle weights": _weights_name(k.get("weights")),
        "status reason": reason,
    }


def _weights_name(weights) -> str:
    """The checkpoint kaggle.json scored: ``best.pt`` / ``last.pt``, or ``ensemble of N`` for a list.

    >>> _weights_name("/r/weights/best.pt"), _weights_name(["a.pt", "b.pt"]), _weights_name(None)
    ('best.pt', 'ensemble of 2', '')
    """
    if isinstance(weights, list):
        return f"ensemble of {len(weights)}"
    return Path(weights).name if weights else ""


def as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def hashable(v):
    return json.dumps(v, sort_keys=True, default=str)


def ensure_kaggle(run: Run, data: Path | None, split: str, *, progress: bool = True) -> str:
    """Compute ``kaggle.json`` with ``analysis.tuning.rescoring`` when it is missing and the run has weights
    and a
    data YAML (``data`` or the run's own ``args.yaml`` ``data``). Returns a note ("" when nothing to say)."""
    if run.kaggle is not None:
        return ""
    if run_weights(run.path) is None:
        return f"{run.name}: no kaggle.json and no weights to compute it"
    data_yaml = Path(data) if data else Path(str(run.args.get("data", "")))
    if not data_yaml.is_file():
        return f"{run.name}: no kaggle.json, and the data YAML {data_yaml} is not here (pass --data)"
    from analysis.tuning.rescoring import rescore  # imports Ultralytics: only when needed

    try:
        run.kaggle = rescore(run.path, data_yaml, split=split, progress=progress)
    except UserError as exc:
        return f"{run.name}: rescoring failed: {exc}"
    return f"{run.name}: kaggle.json computed now with analysis rescore on {split}"
