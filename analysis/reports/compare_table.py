"""The table of ``analysis compare``: which hyperparameters vary, one row per run, and what each one
changed among otherwise-equal runs (:func:`effects`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.reports.compare_runs import BOOKKEEPING, Run, hashable, summarize_run


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
        values = {hashable(run.args.get(k, "<absent>")) for run in runs}
        if len(values) > 1:
            out.append(k)
    return out


def comparison_table(runs: list[Run], varying: list[str]) -> pd.DataFrame:
    """One row per run: the summary columns with the varying hyperparameters after the model columns."""
    rows = []
    for run in runs:
        row = summarize_run(run)
        hp = {k: display_value(run.args.get(k)) for k in varying if k != "epochs"}
        head = {c: row.pop(c) for c in ("run", "family", "size", "init")}
        rows.append({**head, **hp, **row})
    return pd.DataFrame(rows)


def display_value(v):
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


def factor_column(factor: str) -> str:
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
    factors = [f for f in varying if table[f].map(hashable).nunique() > 1]
    factors += [f for f in ("size", "family") if table[f].nunique() > 1]
    out = []
    for f in factors:
        others = [g for g in factors if g != f]
        key = (
            table[others].map(hashable).agg("|".join, axis=1) if others else pd.Series("", index=table.index)
        )
        comparisons = []
        for _, group in table.groupby(key):
            values = group[f].map(hashable)
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
                f"{f}={fmt_value(v)} → {s:.4f} ({r})"
                for v, s, r in zip(ranked[f], ranked[score], ranked["run"], strict=True)
            )
            spread = ranked[score].max() - ranked[score].min()
            parts.append(f"{cells} (spread {spread:.4f})")
        tied = all(c[score].max() - c[score].min() < 1e-9 for c in comparisons)
        best_vals = [fmt_value(c.iloc[0][f]) for c in comparisons]
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


def fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


# ---------------------------------------------------------------------------------------------- figures
