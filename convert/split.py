"""Patient-grouped, class-stratified train/val split and cross-validation folds (pure functions).

Every RSNA image is one patient, so grouping by patient means one row per patient here. Each class is
shuffled on its own with one seeded generator (classes in a fixed order, patients sorted first), so the
split depends only on the set of patients, their classes and the seed.

- Without folds: the first ``round(val_fraction * n)`` patients of each shuffled class are ``val``
  (``fold`` 0), the rest ``train`` (``fold`` 1).
- With ``folds = K``: patients are dealt round-robin into folds 0..K-1, class after class, continuing
  the deal where the previous class stopped (so every fold is stratified and fold sizes differ by at most
  one); fold 0 is the main ``val`` split.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from rsna_yolo.core.labels import CLASSES


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (Python's ``round`` sends 2.5 to 2).

    >>> [round_half_up(v) for v in (0.5, 1.5, 2.5, 2.4)]
    [1, 2, 3, 2]
    """
    return math.floor(x + 0.5)


def split_patients(
    classes: pd.Series, *, val_fraction: float = 0.2, folds: int = 0, seed: int = 0
) -> pd.DataFrame:
    """Assign each patient a split and a fold.

    ``classes``: index patientId, values the 3-way class. Returns a frame indexed like ``classes``
    (sorted by patientId) with columns ``split`` (``"train"`` / ``"val"``) and ``fold`` (int).

    >>> s = split_patients(pd.Series(["Normal"] * 10, index=[f"p{i}" for i in range(10)]), val_fraction=0.3)
    >>> int((s["split"] == "val").sum()), sorted(set(s["fold"]))
    (3, [0, 1])
    """
    if folds < 0 or folds == 1:
        raise ValueError(f"folds must be 0 (no cross-validation) or at least 2, got {folds}")
    if not folds and not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    order = [c for c in CLASSES if c in set(classes)] + sorted(set(classes) - set(CLASSES))
    fold = pd.Series(0, index=classes.index, dtype=int)
    dealt = 0  # with folds: where the round-robin deal continues for the next class
    for name in order:
        ids = np.array(sorted(classes.index[classes == name]), dtype=object)
        shuffled = ids[rng.permutation(len(ids))]
        if folds:
            fold[shuffled] = (dealt + np.arange(len(shuffled))) % folds
            dealt = (dealt + len(shuffled)) % folds
        else:
            n_val = round_half_up(val_fraction * len(shuffled))
            fold[shuffled] = np.where(np.arange(len(shuffled)) < n_val, 0, 1)
    out = pd.DataFrame({"split": np.where(fold == 0, "val", "train"), "fold": fold}, index=classes.index)
    return out.sort_index()
