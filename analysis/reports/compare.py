"""Compare Ultralytics training runs: one table, shared-axis curves, and the effect of each hyperparameter.

A run folder is what ``yolo train``, ``python -m train`` or a sweep leaves (Ultralytics 8.4):
``args.yaml`` (every argument of the run), ``results.csv`` (one row per epoch: ``epoch, time`` in seconds
since the start of training, ``train/*_loss``, ``metrics/*(B)``, ``val/*_loss``, ``lr/pg*``),
``weights/{best,last}.pt`` and, once rescored, ``kaggle.json`` (docs/ARCHITECTURE.md).

- :func:`read_run` -> :class:`Run` or a :class:`RunError` naming what is wrong (no ``args.yaml``, no or
  empty ``results.csv``, unreadable files); interrupted runs are read and flagged, not rejected;
- :func:`summarize_run` -> one table row; :func:`varying_hyperparameters` -> the arguments that differ;
- :func:`effects` -> observations for each varying hyperparameter among otherwise-equal runs;
- :func:`run_compare` -> the whole command (rescoring runs without ``kaggle.json`` when it can).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.reports.report import Report
from core.cli import UserError
from core.runs import read_args, read_kaggle, run_weights

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
    return any((folder / name).exists() for name in ("args.yaml", "results.csv", "weights"))


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
    csv = path / "results.csv"
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
        "Kaggle mAP": _float(k.get("score")),
        "Kaggle conf": _float(k.get("conf")),
        "Kaggle scale": _float(k.get("scale")),
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


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _hashable(v):
    return json.dumps(v, sort_keys=True, default=str)


def varying_hyperparameters(runs: list[Run]) -> list[str]:
    """``args.yaml`` keys (bookkeeping excluded) whose values differ between runs, in args.yaml order; a
    key missing from some runs counts as differing. The model's family and size are columns of their own."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.args if k not in keys]
    out = []
    for k in keys:
        if k in BOOKKEEPING:
            continue
        values = {_hashable(run.args.get(k, "<absent>")) for run in runs}
        if len(values) > 1:
            out.append(k)
    return out


def comparison_table(runs: list[Run], varying: list[str]) -> pd.DataFrame:
    """One row per run: the summary columns with the varying hyperparameters after the model columns."""
    rows = []
    for run in runs:
        row = summarize_run(run)
        hp = {k: _display(run.args.get(k)) for k in varying if k != "epochs"}
        head = {c: row.pop(c) for c in ("run", "family", "size", "init")}
        rows.append({**head, **hp, **row})
    return pd.DataFrame(rows)


def _display(v):
    """A hyperparameter value for a table cell: paths shortened to their last two parts."""
    if isinstance(v, str) and ("/" in v or "\\" in v):
        parts = Path(v).parts
        return "/".join(parts[-2:])
    return v


def score_column(table: pd.DataFrame) -> tuple[str, str]:
    """The score to judge by: Kaggle mAP when any run has one, else best mAP50-95; and a note on runs
    that lack it (they are left out of the observations)."""
    if table["Kaggle mAP"].notna().any():
        missing = ", ".join(table.loc[table["Kaggle mAP"].isna(), "run"])
        return "Kaggle mAP", f"No Kaggle mAP for {missing}: left out of the observations" if missing else ""
    return "best mAP50-95", "No run has a Kaggle mAP (kaggle.json), so runs are compared on best mAP50-95"


def _column(factor: str) -> str:
    """Table column of a hyperparameter (``epochs`` is shown as "epochs planned")."""
    return "epochs planned" if factor == "epochs" else factor


def effects(table: pd.DataFrame, varying: list[str], score: str) -> list[str]:
    """For each varying hyperparameter (and model size), sentences on its effect on ``score`` among runs that
    agree on every other varying hyperparameter; says so when no such pair exists or evidence is thin.

    Runs without ``score`` and interrupted runs (whose planned epochs were not run) are left out.
    """
    table = table[table[score].notna() & (table["status"] != "interrupted")].rename(
        columns={"epochs planned": "epochs"}
    )
    factors = [f for f in varying if table[f].map(_hashable).nunique() > 1]
    factors += [f for f in ("size", "family") if table[f].nunique() > 1]
    out = []
    for f in factors:
        others = [g for g in factors if g != f]
        key = (
            table[others].map(_hashable).agg("|".join, axis=1) if others else pd.Series("", index=table.index)
        )
        comparisons = []
        for _, group in table.groupby(key):
            values = group[f].map(_hashable)
            if values.nunique() < 2:
                continue
            ranked = group.sort_values(score, ascending=False)
            comparisons.append(ranked)
        if not comparisons:
            out.append(
                f"{f}: no two runs differ only in {f}; its effect cannot be separated from the other "
                f"changes ({', '.join(others) or 'none'})."
            )
            continue
        parts = []
        for ranked in comparisons:
            cells = ", ".join(
                f"{f}={_fmt(v)} → {s:.4f} ({r})"
                for v, s, r in zip(ranked[f], ranked[score], ranked["run"], strict=True)
            )
            spread = ranked[score].max() - ranked[score].min()
            parts.append(f"{cells} (spread {spread:.4f})")
        tied = all(c[score].max() - c[score].min() < 1e-9 for c in comparisons)
        best_vals = [_fmt(c.iloc[0][f]) for c in comparisons]
        n_runs = sum(len(c) for c in comparisons)
        if tied:
            verdict = f"No difference in {score} between these runs."
        elif len(set(best_vals)) == 1:
            where = "every" if len(comparisons) > 1 else "the only"
            verdict = f"Best at {f}={best_vals[0]} in {where} comparable set."
        else:
            verdict = f"No consistent winner (best value per comparable set: {', '.join(best_vals)})."
        thin = len(comparisons) == 1 and n_runs <= 3
        out.append(
            f"{f} ({score}): "
            + "; ".join(parts)
            + f". {verdict}"
            + (
                f" Thin evidence: {n_runs} runs, one seed each, so a difference this small may be noise."
                if thin and not tied
                else ""
            )
        )
    if "lr0" in varying and "optimizer" in table and (table["optimizer"] == "auto").any():
        auto = ", ".join(table.loc[table["optimizer"] == "auto", "run"])
        out.append(
            f"lr0 has no effect in {auto}: optimizer=auto chooses the optimizer and learning rate itself."
        )
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


# ---------------------------------------------------------------------------------------------- figures


def _label_points(ax, xs, ys, names) -> None:
    """Name each point; names of points at the same spot are stacked instead of overprinted."""
    seen: dict[tuple[float, float], int] = {}
    for x, y, name in zip(xs, ys, names, strict=True):
        spot = (round(float(x), 9), round(float(y), 9))
        k = seen.get(spot, 0)
        seen[spot] = k + 1
        ax.annotate(str(name), (x, y), fontsize=7, xytext=(4, 3 + 9 * k), textcoords="offset points")


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def fig_curves(runs: list[Run]) -> Figure:
    """mAP50 and mAP50-95 per epoch, all runs on shared axes."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for run in runs:
        r = run.results
        for ax, col in zip(axes, (MAP50, MAP50_95), strict=True):
            if col in r:
                ax.plot(r["epoch"], r[col], marker="o", markersize=3, label=run.name)
    for ax, title in zip(axes, ("mAP50 (val)", "mAP50-95 (val)"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        _integer_epochs(ax)
        ax.set_ylabel(title.split()[0])
        ax.grid(alpha=0.3)
    if axes[1].get_legend_handles_labels()[0]:  # a results.csv without these columns draws nothing
        axes[1].legend(fontsize=8)
    return fig


def fig_losses(runs: list[Run]) -> Figure:
    """Train (solid) and val (dashed) box/cls/dfl losses per epoch, all runs on shared axes."""
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True)
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for run, colour in zip(runs, colours, strict=True):
        r = run.results
        for ax, loss in zip(axes, LOSSES, strict=True):
            if f"train/{loss}" in r:
                ax.plot(r["epoch"], r[f"train/{loss}"], color=colour, label=f"{run.name} train")
            if f"val/{loss}" in r:
                ax.plot(r["epoch"], r[f"val/{loss}"], color=colour, linestyle="--", label=f"{run.name} val")
    for ax, loss in zip(axes, LOSSES, strict=True):
        ax.set_title(loss.replace("_", " "))
        ax.set_xlabel("epoch")
        _integer_epochs(ax)
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    if axes[2].get_legend_handles_labels()[0]:  # a results.csv without these columns draws nothing
        axes[2].legend(fontsize=7)
    return fig


def fig_score_vs_hyperparameters(table: pd.DataFrame, varying: list[str], score: str) -> Figure:
    """``score`` against each varying hyperparameter (numeric axis when the values are numbers)."""
    n = max(len(varying), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.2 * cols, 3.5 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax, hp in zip(axes, varying, strict=False):
        values = table[_column(hp)]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all() and values.map(lambda v: not isinstance(v, bool)).all():
            x = numeric.to_numpy(float)
            if (x > 0).all() and x.max() / x.min() >= 20:
                ax.set_xscale("log")
        else:
            labels = sorted({_fmt(v) for v in values})
            x = np.array([labels.index(_fmt(v)) for v in values], dtype=float)
            ax.set_xticks(range(len(labels)), labels, rotation=20)
        ax.scatter(x, table[score], s=40, zorder=3)
        _label_points(ax, x, table[score], table["run"])
        ax.margins(x=0.15)  # room for the run names
        ax.set_xlabel(hp)
        ax.set_ylabel(score)
        ax.set_title(f"{score} vs {hp}")
        ax.grid(alpha=0.3)
    for ax in axes[len(varying) :]:
        ax.axis("off")
    if not varying:
        axes[0].text(0.5, 0.5, "no hyperparameter varies", ha="center", va="center")
    return fig


def fig_size(table: pd.DataFrame, score: str) -> Figure:
    """``score`` against model size, and against training time, one colour per model family."""
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    minutes = table["train time (s)"].max() >= 120  # short runs read better in seconds
    div, unit = (60, "minutes") if minutes else (1, "seconds")
    for i, (family, group) in enumerate(table.groupby("family")):
        colour = f"C{i % 10}"
        x = [SIZES.index(s) if s in SIZES else -1 for s in group["size"]]
        ax1.scatter(x, group[score], color=colour, label=family or "(unknown)", s=40, zorder=3)
        ax2.scatter(
            group["train time (s)"] / div,
            group[score],
            color=colour,
            label=family or "(unknown)",
            s=40,
            zorder=3,
        )
        _label_points(ax1, x, group[score], group["run"])
        _label_points(ax2, group["train time (s)"] / div, group[score], group["run"])
    ax1.set_xticks(range(len(SIZES)), list(SIZES))
    ax1.set_xlim(-0.5, len(SIZES) - 0.5)
    ax1.set_xlabel("model size")
    ax2.set_xlabel(f"train time ({unit})")
    for ax, title in ((ax1, "model size"), (ax2, "train time")):
        ax.set_ylabel(score)
        ax.set_title(f"{score} vs {title}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------- command


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


def best_run_sentence(scored: pd.DataFrame, score: str) -> str:
    """Which run scores best (runs sorted best first), or that they all tie."""
    if scored.empty:
        return f"No run has a {score}."
    best = scored.iloc[0]
    if len(scored) > 1 and scored[score].max() - scored[score].min() < 1e-9:
        return f"All {len(scored)} runs score the same {score}, {best[score]:.4f}: nothing to choose between."
    where = (
        f" at conf {best['Kaggle conf']:g}, box scale {best['Kaggle scale']:g}"
        if score == "Kaggle mAP"
        else ""
    )
    tied = scored[scored[score] >= best[score] - 1e-9]
    if len(tied) > 1:
        after = scored.iloc[len(tied)] if len(scored) > len(tied) else None
        ahead = f", {best[score] - after[score]:.4f} ahead of {after['run']}" if after is not None else ""
        return f"Best runs by {score}: {', '.join(tied['run'])}, tied at {best[score]:.4f}{ahead}."
    margin = (
        f", {best[score] - scored.iloc[1][score]:.4f} ahead of {scored.iloc[1]['run']}"
        if len(scored) > 1
        else ""
    )
    return f"Best run by {score}: {best['run']} ({best[score]:.4f}{where}{margin})."


def build_report(runs: list[Run], problems: list[tuple[str, str]], out_dir: Path, notes: list[str]) -> Report:
    """The comparison report of readable ``runs``; ``problems`` are ``(folder, reason)`` pairs."""
    report = Report(f"Comparison of {len(runs)} training run{'s' * (len(runs) != 1)}", out_dir)
    varying = varying_hyperparameters(runs) if runs else []
    if runs:
        table = comparison_table(runs, varying)
        score, why = score_column(table)
        report.heading("Runs")
        report.text(
            "Hyperparameters that differ between the runs: " + (", ".join(varying) or "none") + ". "
            "Best epoch follows Ultralytics' rule (highest mAP50-95; best.pt is that epoch). "
            "Train time sums results.csv's time column over resumed segments."
        )
        report.table(table.drop(columns=["status reason"]))
        if why:
            report.text(why + ".")
        same = {k: _display(v) for k, v in runs[0].args.items() if k not in BOOKKEEPING and k not in varying}
        report.heading("Curves", 2)
        report.figure(fig_curves(runs), "metrics", "Validation mAP50 and mAP50-95 per epoch, all runs")
        report.figure(fig_losses(runs), "losses", "Train (solid) and validation (dashed) losses per epoch")
        report.heading("Score against hyperparameters", 2)
        report.figure(
            fig_score_vs_hyperparameters(table, varying, score),
            "score_vs_hyperparameters",
            f"{score} against each hyperparameter that varies",
        )
        report.figure(fig_size(table, score), "score_vs_size", f"{score} against model size and train time")
        report.heading("Observations")
        scored = table[table[score].notna()].sort_values(score, ascending=False)
        obs = [best_run_sentence(scored, score)]
        obs += effects(table, varying, score)
        stopped = table[table["early-stopped"]]
        if len(stopped):
            obs.append(
                "Early stopping ended "
                + ", ".join(
                    f"{r['run']} at epoch {r['epochs run']} of {r['epochs planned']} (best {r['best epoch']})"
                    for _, r in stopped.iterrows()
                )
                + "."
            )
        late = table[
            (table["best epoch"] == table["epochs run"])
            & (table["status"] == "complete")
            & (table["best mAP50-95"] > 0)  # with zero fitness the rule makes the last epoch "best"
        ]
        if len(late):
            obs.append(
                f"{', '.join(late['run'])}: best epoch is the last one, so more epochs may still help."
            )
        report.bullets(obs)
        report.heading("Settings shared by all runs", 3)
        report.text(", ".join(f"{k}={v}" for k, v in same.items()))
    incomplete = [
        (r.name, summarize_run(r)["status reason"]) for r in runs if run_status(r)[0] == "interrupted"
    ]
    if problems or incomplete or notes:
        report.heading("Incomplete or malformed runs")
        rows = [(p, reason, "left out") for p, reason in problems]
        rows += [(n, reason, "in the table, flagged interrupted") for n, reason in incomplete]
        if rows:
            report.table(pd.DataFrame(rows, columns=["run", "reason", "handling"]))
        report.bullets(notes)
    return report


def run_compare(
    paths: list[Path],
    out: Path,
    *,
    data: Path | None = None,
    split: str = "val",
    rescore: bool = True,
    storage: str | None = None,
    importance: str = "fanova",
    progress: bool = True,
) -> tuple[dict[str, Path], pd.DataFrame]:
    """Compare the runs under ``paths``; write the report into ``out``. Returns ``(paths, table)``.

    A path that is a sweep folder (``python -m train sweep``) adds what its Optuna study says about each
    hyperparameter (:mod:`analysis.reports.importance`; the study in its ``optuna.db`` or in ``storage``)."""
    runs, problems, notes = [], [], []
    for path in find_runs(paths):
        try:
            runs.append(read_run(path))
        except RunError as exc:
            problems.append((str(path), str(exc)))
        else:
            notes += runs[-1].notes
    if rescore:
        for run in runs:
            note = ensure_kaggle(run, data, split, progress=progress)
            if note:
                notes.append(note)
    report = build_report(runs, problems, Path(out), notes)
    from analysis.reports.importance import is_sweep_folder, sweep_section

    for path in map(Path, paths):
        if path.is_dir() and is_sweep_folder(path):
            sweep_section(report, path, storage, importance)
    varying = varying_hyperparameters(runs) if runs else []
    table = comparison_table(runs, varying) if runs else pd.DataFrame()
    if len(table):
        table.to_csv(Path(out) / "runs.csv", index=False)
    return report.write(), table
