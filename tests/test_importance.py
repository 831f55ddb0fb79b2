"""What a sweep says about each hyperparameter: a hand-made study where one parameter drives the score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from analysis.reports.compare import run_compare
from analysis.reports.importance import effect_sentence, fig_parameter, find_study, importances, trial_frame

SPACE = {"lr0": FloatDistribution(1e-4, 1e-1, log=True), "mosaic": FloatDistribution(0.0, 1.0),
         "optimizer": CategoricalDistribution(["SGD", "Adam", "AdamW"])}  # fmt: skip


@pytest.fixture
def sweep_folder(tmp_path: Path) -> Path:
    """``bayes/optuna.db`` as `python -m train sweep` leaves it: 40 complete trials whose score is driven
    by log10(lr0) alone (plus a little noise), and 3 pruned trials with intermediate values."""
    folder = tmp_path / "bayes"
    folder.mkdir()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="bayes", storage=f"sqlite:///{folder / 'optuna.db'}",
                                direction="maximize")  # fmt: skip
    study.set_user_attr("metric", "kaggle/mAP")
    rng = np.random.default_rng(0)
    for _ in range(40):
        params = {"lr0": float(10 ** rng.uniform(-4, -1)), "mosaic": float(rng.uniform()),
                  "optimizer": str(rng.choice(["SGD", "Adam", "AdamW"]))}  # fmt: skip
        value = 0.1 * (np.log10(params["lr0"]) + 4) + rng.normal(0, 0.005)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=SPACE, value=value))
    for k in range(3):
        params = {"lr0": 1e-3, "mosaic": 0.5, "optimizer": "SGD"}
        pruned = optuna.trial.create_trial(
            params=params,
            distributions=SPACE,
            intermediate_values={1: 0.01 * k},
            state=optuna.trial.TrialState.PRUNED,
        )
        study.add_trial(pruned)
    return folder


def test_the_parameter_that_drives_the_score_ranks_first(sweep_folder: Path):
    study = find_study(sweep_folder)
    imp = importances(study)
    assert next(iter(imp)) == "lr0" and imp["lr0"] > 0.8 and sum(imp.values()) == pytest.approx(1.0)
    assert next(iter(importances(study, "ped-anova"))) == "lr0"
    trials = trial_frame(study)
    assert (trials["state"] == "PRUNED").sum() == 3
    sentence = effect_sentence(trials, "lr0", imp["lr0"], "kaggle/mAP", "maximize")
    assert sentence.startswith("lr0 (") and "higher values scored better" in sentence
    assert "40 complete trials" in sentence
    cat = effect_sentence(trials, "optimizer", imp["optimizer"], "kaggle/mAP", "maximize")
    assert "scored best (mean kaggle/mAP" in cat and "worst" in cat


def _trials(xs, values):
    import pandas as pd

    return pd.DataFrame({"state": "COMPLETE", "x": xs, "value": values})


def test_a_direction_is_named_only_where_the_rank_correlation_points_that_way():
    # the docs/study.md case: the thirds' means say "lower" while the rank correlation is positive
    xs = [0.02, 0.42, 0.72, 0.79, 0.89, 0.93]
    values = [0.4818, 0.4981, 0.5595, 0.5826, 0.3209, 0.5139]
    sentence = effect_sentence(_trials(xs, values), "x", 0.2, "kaggle/mAP", "maximize")
    assert "scored better" not in sentence and "no clear effect" in sentence
    assert "rank correlation +0.14" in sentence and "below 0.30 in size" in sentence
    # large enough a correlation, but the thirds' means point the other way: still no direction
    xs = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    values = [0.43, 0.71, 0.71, 0.78, 0.88, 0.94, 0.02, 0.82, 0.9]  # rank correlation +0.51
    sentence = effect_sentence(_trials(xs, values), "x", 0.5, "kaggle/mAP", "maximize")
    assert "the thirds' means and the rank correlation disagree" in sentence and "better" not in sentence
    assert "rank correlation +0.51" in sentence


@pytest.mark.parametrize(("goal", "word"), [("maximize", "higher"), ("minimize", "lower")])
def test_a_clear_effect_names_the_direction_of_the_goal(goal: str, word: str):
    xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    values = [0.1, 0.15, 0.3, 0.25, 0.5, 0.6]  # rank correlation +0.94
    sentence = effect_sentence(_trials(xs, values), "x", 0.9, "score", goal)
    assert f"{word} values scored better" in sentence and "rank correlation +0.94" in sentence


def test_pruned_trials_are_drawn_as_pruned_not_as_scores(sweep_folder: Path):
    trials = trial_frame(find_study(sweep_folder))
    fig = fig_parameter(trials, "lr0", "kaggle/mAP", "maximize")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["complete", "best 3", "pruned (3, last reported value)"]
    offsets = [c.get_offsets() for c in fig.axes[0].collections]
    assert [len(o) for o in offsets] == [40, 3, 3]


def test_compare_on_a_sweep_folder_reports_importances(sweep_folder: Path, tmp_path: Path):
    paths, _ = run_compare([sweep_folder], tmp_path / "report", rescore=False, progress=False)
    text = Path(paths["markdown"]).read_text()
    assert "What the sweep bayes says about each hyperparameter" in text
    assert "40 complete and 3 pruned trials" in text and "fANOVA" in text
    assert text.index("| lr0 ") < text.index("| mosaic ") and "higher values scored better" in text


def test_a_sweep_whose_trials_all_scored_the_same_says_so(tmp_path: Path):
    """Every trial at 0.0 (a sweep too short to learn anything): no importance, and the report says why
    instead of failing in fANOVA ("zero total variance")."""
    folder = tmp_path / "flat"
    folder.mkdir()
    study = optuna.create_study(study_name="flat", storage=f"sqlite:///{folder / 'optuna.db'}",
                                direction="maximize")  # fmt: skip
    for k in range(3):
        params = {"lr0": 10.0 ** -(k + 2), "mosaic": 0.5, "optimizer": "SGD"}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=SPACE, value=0.0))
    assert importances(find_study(folder)) == {}
    paths, _ = run_compare([folder], tmp_path / "report", rescore=False, progress=False)
    assert "All 3 complete trials scored the same (0.0000)" in Path(paths["markdown"]).read_text()
