"""convert.split: patient-grouped, stratified, reproducible; folds stratified and disjoint."""

from __future__ import annotations

import pandas as pd
import pytest

from convert.split import split_patients


def classes(n_pos: int, n_not_normal: int, n_normal: int) -> pd.Series:
    names = ["Lung Opacity"] * n_pos + ["No Lung Opacity / Not Normal"] * n_not_normal + ["Normal"] * n_normal
    return pd.Series(names, index=[f"p{i:04d}" for i in range(len(names))])


def test_val_is_rounded_fraction_of_each_class():
    c = classes(22, 44, 33)
    s = split_patients(c, val_fraction=0.2, seed=3)
    val = c[s["split"] == "val"].value_counts().to_dict()
    # round(0.2 * 22) = 4, round(0.2 * 44) = 9, round(0.2 * 33) = 7 (6.6)
    assert val == {"Lung Opacity": 4, "No Lung Opacity / Not Normal": 9, "Normal": 7}
    assert set(s.index) == set(c.index) and s.index.is_unique  # every patient exactly once
    assert (s["fold"] == (s["split"] == "train").astype(int)).all()


def test_reproducible_for_a_seed_and_different_across_seeds():
    c = classes(50, 50, 50)
    a = split_patients(c, seed=1)
    assert a.equals(split_patients(c.sample(frac=1, random_state=0), seed=1))  # input order irrelevant
    assert not a.equals(split_patients(c, seed=2))


def test_folds_are_stratified_disjoint_and_balanced():
    c = classes(23, 41, 30)
    s = split_patients(c, folds=5, seed=0)
    counts = pd.crosstab(s["fold"], c)
    assert sorted(s["fold"].unique()) == [0, 1, 2, 3, 4]
    assert (counts.max() - counts.min() <= 1).all()  # each class spread evenly over the folds
    sizes = s["fold"].value_counts()
    assert sizes.max() - sizes.min() <= 1  # the deal continues across classes
    assert (s["split"] == "val").sum() == sizes[0]


def test_bad_arguments():
    with pytest.raises(ValueError):
        split_patients(classes(1, 1, 1), folds=1)
    with pytest.raises(ValueError):
        split_patients(classes(1, 1, 1), val_fraction=1.0)
