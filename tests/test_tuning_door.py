"""The tuning door (:mod:`analysis.tuning`): one table of defaults, one function that tunes, the held-out
score worked out by hand, and the same answers as the pieces it replaced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.record.defaults import load_defaults
from analysis.scoring.truth import TruthSet
from analysis.tuning import DEFAULTS, breakdown_at, tune, tune_gate
from analysis.tuning.gating import best_gate, gate_sweep
from analysis.tuning.threshold import best_row, heldout_half, sweep_scores

BOX = [100.0, 100.0, 200.0, 200.0]


def frame(rows):
    return pd.DataFrame(rows, columns=["patientId", "conf", "x", "y", "width", "height"])


def test_the_halves_are_fixed_by_patient_id():
    assert [heldout_half(i) for i in "abcx"] == [0, 1, 0, 1]


def test_score_heldout_equals_the_value_worked_out_by_hand():
    """Half 0 = {a, c}, half 1 = {b, x} (by patientId). Each image with truth has one box predicted exactly.

    threshold  a (truth, 0.5)  c (empty, 0.4 FP)  | b (truth, 0.7)  x (empty, 0.5 FP)
    0.3        1               0                  | 1               0       half 0: 0.5, half 1: 0.5
    0.6        0 (missed)      left out           | 1               left out half 0: 0.0, half 1: 1.0

    Tuned on half 0 -> 0.3 (0.5 beats 0.0) -> half 1 at 0.3 = 0.5. Tuned on half 1 -> 0.6 (1.0) -> half 0
    at 0.6 = 0.0. Held-out = (0.5 + 0.0) / 2 = 0.25. All four images: 0.5 at both thresholds; the tie goes
    to the higher threshold, 0.6, so the tuned score 0.5 is twice the honest one.
    """
    truth = {"a": np.array([BOX]), "b": np.array([BOX]), "c": np.zeros((0, 4)), "x": np.zeros((0, 4))}
    gt = TruthSet(truth, {"a": "Lung Opacity", "b": "Lung Opacity", "c": "Normal", "x": "Normal"})
    preds = frame([("a", 0.5, *BOX), ("c", 0.4, *BOX), ("b", 0.7, *BOX), ("x", 0.5, *BOX)])
    tuned = tune(gt, preds, thresholds=[0.3, 0.6], box_scales=[1.0])
    assert tuned.best == {"conf": 0.6, "scale": 1.0, "score": 0.5}
    assert tuned.score_heldout == pytest.approx(0.25)
    assert len(tuned.table) == 2


def test_score_heldout_is_none_when_a_half_has_no_scored_image():
    gt = TruthSet({"a": np.array([BOX]), "c": np.zeros((0, 4))}, {})  # both in half 0
    tuned = tune(gt, frame([("a", 0.9, *BOX)]), thresholds=[0.3], box_scales=[1.0])
    assert tuned.score == 1.0 and tuned.score_heldout is None


def random_case(seed: int, n: int = 40):
    rng = np.random.default_rng(seed)
    truth, classes, rows = {}, {}, []
    for k in range(n):
        pid = f"p{k:03d}"
        g = rng.integers(0, 3)
        boxes = np.column_stack([rng.uniform(0, 600, (g, 2)), rng.uniform(50, 300, (g, 2))])
        truth[pid] = boxes
        classes[pid] = "Lung Opacity" if g else ("Normal" if k % 2 else "No Lung Opacity / Not Normal")
        for b in boxes:  # a noisy hit per true box, and some false boxes
            rows.append((pid, rng.uniform(0.01, 1), *(b + rng.normal(0, 15, 4))))
        for _ in range(rng.integers(0, 3)):
            rows.append((pid, rng.uniform(0.01, 1), *rng.uniform(50, 500, 4)))
    return TruthSet(truth, classes), frame(rows)


def test_tune_gives_what_the_pieces_it_replaced_gave():
    gt, preds = random_case(0)
    tuned = tune(gt, preds)
    table = sweep_scores(gt.truth, preds)
    pd.testing.assert_frame_equal(tuned.table, table)
    assert tuned.best == best_row(table)
    assert tuned.breakdown == breakdown_at(gt, preds, best_row(table))
    assert 0.0 <= tuned.score_heldout <= 1.0
    assert len(tuned.table) == len(DEFAULTS.thresholds) * len(DEFAULTS.box_scales)


def test_tune_drops_rows_below_the_floor_and_thresholds_below_it():
    gt, preds = random_case(1)
    tuned = tune(gt, preds, floor=0.2)
    assert tuned.table["conf"].min() == 0.2 and tuned.frame["conf"].min() >= 0.2
    assert tuned.best == best_row(sweep_scores(gt.truth, preds[preds["conf"] >= 0.2],
                                               [c for c in DEFAULTS.thresholds if c >= 0.2]))  # fmt: skip


def test_tune_gate_gives_what_gate_sweep_and_best_gate_gave():
    gt, preds = random_case(2)
    rng = np.random.default_rng(3)
    p = {i: float(rng.uniform()) for i in gt.truth}
    tuned = tune_gate(gt, preds, p)
    best = best_gate(gate_sweep(gt.truth, preds, p))
    assert tuned.best == best
    assert len(tuned.gates) == len(DEFAULTS.gates) + 1  # every hard gate and the soft mode
    assert tuned.score >= tune(gt, preds).score  # "no gate" is in the grid
    assert tuned.score_heldout is not None


def test_the_defaults_table_rejects_an_unknown_key(tmp_path):
    from analysis.record.defaults import DEFAULTS_YAML

    bad = tmp_path / "defaults.yaml"
    bad.write_text(DEFAULTS_YAML.read_text() + "\nthreshold_grid: [0.5]\n")
    with pytest.raises(ValueError, match="threshold_grid"):
        load_defaults(bad)
