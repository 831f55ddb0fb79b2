"""``analysis.reports.eda_load``: the relations checked between the raw Kaggle CSV rows."""

from __future__ import annotations

import pandas as pd

from analysis.reports.eda_load import kaggle_checks


def test_checks_find_violations() -> None:
    """The class/Target checks are computed: a broken pair of files fails exactly the statements it breaks."""
    labels = pd.DataFrame({
        "patientId": ["a", "a", "b", "c", "d"], "x": [1.0, None, None, 5.0, None],
        "y": [1.0, None, None, 5.0, None], "width": [9.0, None, None, 9.0, None],
        "height": [9.0, None, None, 9.0, None], "Target": [1, 1, 0, 1, 0],
    })  # fmt: skip
    lo, normal = "Lung Opacity", "Normal"
    classes = pd.DataFrame({"patientId": labels["patientId"], "class": [lo, lo, normal, normal, lo]})
    checks = kaggle_checks(labels, classes).set_index("check")["violations"]
    # a's second row is Target=1 without a box; c is Target=1 but Normal; d is Lung Opacity with Target=0.
    assert checks["every Target=1 row has all four box fields"] == 1
    assert checks["every Target=1 row is Lung Opacity"] == 1
    assert checks["every Lung Opacity row has Target=1"] == 1
    assert checks["patients with several rows are all Lung Opacity with one box per row"] == 1
    assert checks["every Target=0 row has all four box fields empty"] == 0
    assert checks["one class per patient"] == 0
