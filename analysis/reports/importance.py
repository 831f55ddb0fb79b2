"""What a sweep itself says about each hyperparameter: importances, score against each, and a sentence each.

After a Bayesian or random sweep every hyperparameter varies at once, so no two runs differ in one setting
only and ``analysis compare``'s one-factor effects have nothing to separate. The study the sweep kept
(``python -m train sweep``: ``optuna.db`` in the sweep folder, or the ``--storage`` database) still can:

- :func:`importances` -> each swept parameter's share of the score's variance, by Optuna's fANOVA
  (``FanovaImportanceEvaluator``, a random-forest functional ANOVA; PED-ANOVA on request), over the
  complete trials;
- :func:`effect_sentence` -> direction and size of a parameter's effect, computed from the trials, with how
  many trials it rests on;
- :func:`fig_parameter` -> the score of every complete trial against the parameter, the best trials marked,
  pruned trials drawn apart (at their last reported value), never as low scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rsna_yolo.core.cli import UserError

EVALUATORS = ("fanova", "ped-anova")


def find_study(folder: str | Path, storage: str | None = None):
    """The Optuna study of a sweep folder: in ``storage`` (a URL) or the folder's ``optuna.db``, named like
    the folder (``python -m train sweep``'s default), else the only study there. None when the folder has
    no study."""
    import optuna

    folder = Path(folder)
    if storage is None:
        if not (folder / "optuna.db").is_file():
            return None
        storage = f"sqlite:///{folder / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    name = folder.name if folder.name in names else (names[0] if len(names) == 1 else None)
    if name is None:
        raise UserError(f"{storage}: {len(names)} studies ({', '.join(names)}); none is named {folder.name}")
    return optuna.load_study(study_name=name, storage=storage)


def trial_frame(study) -> pd.DataFrame:
    """One row per trial: ``number, state, value``, the last reported value (pruned trials) and each param."""
    import optuna

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            continue
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else np.nan
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "last_reported": last,
                     **t.params})  # fmt: skip
    return pd.DataFrame(rows)


def importances(study, evaluator: str = "fanova") -> dict[str, float]:
    """Each swept parameter's importance (shares adding up to 1) over the complete trials, largest first.
    Empty when fewer than two complete trials, nothing varies, or every complete trial scored the same
    (no variance to share out)."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    if evaluator not in EVALUATORS:
        raise UserError(f"importance evaluator {evaluator!r}: one of {', '.join(EVALUATORS)}")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    names = {p for t in complete for p in t.params}
    varying = {k for k in names if len({repr(t.params.get(k)) for t in complete}) > 1}
    if len(complete) < 2 or not varying or len({t.value for t in complete}) < 2:
        return {}
    ev = FanovaImportanceEvaluator(seed=0) if evaluator == "fanova" else PedAnovaImportanceEvaluator()
    got = optuna.importance.get_param_importances(study, evaluator=ev, params=sorted(varying))
    return dict(sorted(got.items(), key=lambda kv: -kv[1]))


def _numeric(values: pd.Series) -> pd.Series | None:
    out = pd.to_numeric(values, errors="coerce")
    return out if out.notna().all() and not values.map(lambda v: isinstance(v, bool)).any() else None


# Below this absolute rank correlation between a numeric parameter and the score, the report names no
# direction: "no clear effect". With the 6-10 trials of a small sweep, |rho| < 0.3 is well within what
# random trials give (the 5% two-sided critical value of Spearman's rho is 0.89 at 6 trials, 0.65 at 10).
CLEAR_EFFECT_RHO = 0.3


def effect_sentence(trials: pd.DataFrame, param: str, importance: float, metric: str, goal: str) -> str:
    """One sentence on ``param`` computed from the complete trials: for a number, the rank correlation with
    the score and the mean score in the lowest and highest third of its values; for a category, the best
    and worst value's mean score; always the share of importance and the number of trials.

    A number's direction ("higher values scored better") is the rank correlation's, and is named only when
    the correlation is at least :data:`CLEAR_EFFECT_RHO` in size and the two thirds' means agree with it;
    otherwise the sentence says "no clear effect" and why, never a direction the correlation contradicts."""
    done = trials[trials["state"] == "COMPLETE"].dropna(subset=["value", param])
    n = len(done)
    sure = f"{n} complete trial{'s' * (n != 1)}" + (" (few: treat as a hint)" if n < 10 else "")
    head = f"{param} ({importance:.0%} of the importance)"
    if n < 2:
        return f"{head}: too few complete trials to say more ({sure})."
    x = _numeric(done[param])
    if x is not None and x.nunique() > 2:
        rho = x.rank().corr(done["value"].rank())
        rho = 0.0 if pd.isna(rho) else float(rho)
        lo, hi = x.quantile(1 / 3), x.quantile(2 / 3)
        low, high = done.loc[x <= lo, "value"].mean(), done.loc[x >= hi, "value"].mean()
        means = (
            f"mean {metric} {low:.4f} with {param} <= {lo:.3g} against {high:.4f} with {param} >= {hi:.3g} "
            f"(rank correlation {rho:+.2f}; {sure})"
        )
        if abs(rho) < CLEAR_EFFECT_RHO:
            why = f"rank correlation below {CLEAR_EFFECT_RHO:.2f} in size"
            return f"{head}: no clear effect ({why}); {means}."
        if (high > low) != (rho > 0):
            why = "the thirds' means and the rank correlation disagree"
            return f"{head}: no clear effect ({why}); {means}."
        better = "higher" if (rho > 0) == (goal == "maximize") else "lower"
        return f"{head}: {better} values scored better; {means}."
    means = done.groupby(done[param].map(str))["value"].agg(["mean", "size"])
    means = means.sort_values("mean", ascending=goal != "maximize")
    best, worst = means.index[0], means.index[-1]
    return (
        f"{head}: {best} scored best (mean {metric} {means.loc[best, 'mean']:.4f} over "
        f"{int(means.loc[best, 'size'])} trials), {worst} worst ({means.loc[worst, 'mean']:.4f} over "
        f"{int(means.loc[worst, 'size'])}); {sure}."
    )


def fig_parameter(trials: pd.DataFrame, param: str, metric: str, goal: str, n_best: int = 3) -> Figure:
    """The score of every complete trial against ``param``; the ``n_best`` best trials as stars; pruned
    trials as grey crosses at their last reported value (they never finished, so they have no score)."""
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    have = trials.dropna(subset=[param])
    x_all = _numeric(have[param])
    if x_all is None:
        labels = sorted({str(v) for v in have[param]})
        xs = have[param].map(lambda v: labels.index(str(v))).astype(float)
        ax.set_xticks(range(len(labels)), labels, rotation=20)
    else:
        xs = x_all.astype(float)
        if (xs > 0).all() and xs.max() / xs.min() >= 20:
            ax.set_xscale("log")
    done = have["state"] == "COMPLETE"
    ax.scatter(xs[done], have.loc[done, "value"], s=30, color="tab:blue", label="complete", zorder=3)
    top = have[done].sort_values("value", ascending=goal != "maximize").head(n_best)
    ax.scatter(xs[top.index], top["value"], s=160, marker="*", color="tab:orange", label=f"best {len(top)}",
               zorder=4)  # fmt: skip
    pruned = have["state"] == "PRUNED"
    if pruned.any():
        ax.scatter(xs[pruned], have.loc[pruned, "last_reported"], marker="x", color="grey", zorder=2,
                   label=f"pruned ({int(pruned.sum())}, last reported value)")  # fmt: skip
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {param}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def sweep_section(report, folder: Path, storage: str | None = None, evaluator: str = "fanova") -> list[str]:
    """Add "What the sweep says" for the sweep in ``folder`` to ``report``; returns notes (e.g. no study)."""
    study = find_study(folder, storage)
    if study is None:
        return []
    trials = trial_frame(study)
    goal = "maximize" if study.direction.name == "MAXIMIZE" else "minimize"
    metric = str(study.user_attrs.get("metric") or "score")
    imp = importances(study, evaluator)
    report.heading(f"What the sweep {study.study_name} says about each hyperparameter")
    n_done = int((trials["state"] == "COMPLETE").sum()) if len(trials) else 0
    n_pruned = int((trials["state"] == "PRUNED").sum()) if len(trials) else 0
    report.text(
        f"{n_done} complete and {n_pruned} pruned trials of the Optuna study in {folder}. Importance: "
        f"{'fANOVA' if evaluator == 'fanova' else 'PED-ANOVA'} over the complete trials (Optuna), each "
        "parameter's share of the variance of the score; pruned trials are drawn apart, at their last "
        "reported value, and are not scores. A direction is named only where the rank correlation with the "
        f"score is at least {CLEAR_EFFECT_RHO:.2f} in size and the lowest and highest thirds agree with it "
        "(else: no clear effect)."
    )
    if not imp:
        values = trials.loc[trials["state"] == "COMPLETE", "value"] if len(trials) else pd.Series([])
        report.text(
            f"All {len(values)} complete trials scored the same ({values.iloc[0]:.4f}): the score does not "
            "tell the parameters apart, so no importance to compute."
            if len(values) >= 2 and values.nunique() == 1
            else "Fewer than two complete trials, or no parameter varies: no importance to compute."
        )
        return []
    report.table(pd.DataFrame({"parameter": list(imp), "importance": [round(v, 3) for v in imp.values()]}))
    sentences = []
    for param, share in imp.items():
        if share < 0.01 and len(sentences) >= 1:
            continue
        report.figure(fig_parameter(trials, param, metric, goal), f"sweep_{study.study_name}_{param}",
                      f"{metric} against {param} across the trials")  # fmt: skip
        sentences.append(effect_sentence(trials, param, share, metric, goal))
    report.bullets(sentences)
    return []


def is_sweep_folder(folder: Path) -> bool:
    """A folder written by ``python -m train sweep``: its study (``optuna.db``) or its ``trials.csv``."""
    return (folder / "optuna.db").is_file() or (folder / "trials.csv").is_file()
