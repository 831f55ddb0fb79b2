"""Compare Ultralytics training runs: one table, shared-axis curves, and the effect of each hyperparameter.

A run folder is what ``yolo train``, ``python -m train`` or a sweep leaves (Ultralytics 8.4):
``args.yaml`` (every argument of the run), ``results.csv`` (one row per epoch: ``epoch, time`` in seconds
since the start of training, ``train/*_loss``, ``metrics/*(B)``, ``val/*_loss``, ``lr/pg*``),
``weights/{best,last}.pt`` and, once rescored, ``kaggle.json`` (docs/ARCHITECTURE.md).

Three pieces: :mod:`analysis.reports.compare_runs` reads the runs (:func:`read_run` -> :class:`Run`),
:mod:`analysis.reports.compare_table` builds the table and the effect of each hyperparameter,
:mod:`analysis.reports.compare_figures` draws; here :func:`best_run_sentence`, :func:`build_report` and
:func:`run_compare`, the whole command (rescoring runs without ``kaggle.json`` when it can).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.reports.compare_figures import fig_curves, fig_losses, fig_score_vs_hyperparameters, fig_size
from analysis.reports.compare_runs import (
    BOOKKEEPING,
    Run,
    RunError,
    ensure_kaggle,
    find_runs,
    read_run,
    run_status,
    summarize_run,
)
from analysis.reports.compare_table import (
    comparison_table,
    display_value,
    effects,
    score_column,
    varying_hyperparameters,
)
from analysis.reports.report import Report
from rsna_yolo.core.io import write_csv_atomic


def best_run_sentence(scored: pd.DataFrame, score: str) -> str:
    """Which run scores best (runs sorted best first), or that they all tie."""
    if scored.empty:
        return f"No run has a {score}."
    best = scored.iloc[0]
    if len(scored) > 1 and scored[score].max() - scored[score].min() < 1e-9:
        return f"All {len(scored)} runs score the same {score}, {best[score]:.4f}: nothing to choose between."
    where = ""
    if score == "Kaggle mAP":
        heldout = best.get("Kaggle held-out")
        honest = "" if heldout is None or pd.isna(heldout) else f"; held-out {heldout:.4f}"
        where = f" at conf {best['Kaggle conf']:g}, box scale {best['Kaggle scale']:g}{honest}"
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
        fixed = [k for k in runs[0].args if k not in BOOKKEEPING and k not in varying]
        same = {k: display_value(runs[0].args[k]) for k in fixed}
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
        write_csv_atomic(table, Path(out) / "runs.csv")
    return report.write(), table
