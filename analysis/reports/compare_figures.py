"""The figures of ``analysis compare``: curves on shared axes, losses, score against each varying
hyperparameter, score against model size."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.reports.compare_runs import LOSSES, MAP50, MAP50_95, SIZES, Run
from analysis.reports.compare_table import factor_column, fmt_value


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
        values = table[factor_column(hp)]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().all() and values.map(lambda v: not isinstance(v, bool)).all():
            x = numeric.to_numpy(float)
            if (x > 0).all() and x.max() / x.min() >= 20:
                ax.set_xscale("log")
        else:
            labels = sorted({fmt_value(v) for v in values})
            x = np.array([labels.index(fmt_value(v)) for v in values], dtype=float)
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
