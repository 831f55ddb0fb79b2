"""Gating boxes with P(opacity): scores worked out by hand, gate 0 = ungated, missing probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.record.gate import apply_gate
from analysis.tuning.gating import best_gate, gate_sweep
from analysis.tuning.threshold import sweep_scores
from rsna_yolo.core.cli import UserError

# A: Lung Opacity, one truth box, predicted exactly but with a modest confidence (0.5), p_opacity 0.3.
# B: Normal, a confident false box (0.9), p_opacity 0.2.  C: Not Normal, a false box (0.8), p_opacity 0.6.
# D: Normal, no box at all (left out of the mean while it has no prediction).
TRUTH = {"A": np.array([[100.0, 100.0, 200.0, 200.0]]), "B": np.zeros((0, 4)), "C": np.zeros((0, 4)),
         "D": np.zeros((0, 4))}  # fmt: skip
PREDS = pd.DataFrame(
    [("A", 0.5, 100.0, 100.0, 200.0, 200.0), ("B", 0.9, 500.0, 500.0, 100.0, 100.0),
     ("C", 0.8, 600.0, 300.0, 150.0, 150.0)],
    columns=["patientId", "conf", "x", "y", "width", "height"],
)  # fmt: skip
P = {"A": 0.3, "B": 0.2, "C": 0.6, "D": 0.1}
CONFS, SCALES = (0.1, 0.5, 0.85), (1.0,)


def _score(table: pd.DataFrame, mode: str, gate: float | None, conf: float) -> float:
    gates = table["gate"].isna() if gate is None else table["gate"] == gate
    return float(table[(table["mode"] == mode) & gates & (table["conf"] == conf)]["score"].iloc[0])


def test_scores_by_hand():
    table = gate_sweep(TRUTH, PREDS, P, confs=CONFS, box_scales=SCALES, gates=(0.0, 0.25, 0.35, 0.65))
    # No gate: conf 0.1 keeps all three (A 1, B 0, C 0) = 1/3; conf 0.5 keeps all too; conf 0.85 keeps only
    # B's false box (A missed: 0, B 0) = 0. The threshold alone cannot separate them.
    assert [_score(table, "hard", 0.0, c) for c in CONFS] == pytest.approx([1 / 3, 1 / 3, 0.0])
    # Gate 0.25 drops B (0.2 < 0.25): A 1, C 0, B left out = 1/2.
    assert _score(table, "hard", 0.25, 0.1) == pytest.approx(0.5)
    # Gate 0.35 also drops A's TRUE box (0.3 < 0.35): A 0, C 0 = 0.
    assert _score(table, "hard", 0.35, 0.1) == 0.0
    # Gate 0.65 drops everything: only A (a missed opacity) is scored = 0.
    assert _score(table, "hard", 0.65, 0.1) == 0.0
    # Soft: confidences become A 0.15, B 0.18, C 0.48: conf 0.1 keeps all (1/3), conf 0.5 none (A missed).
    assert [_score(table, "soft", None, c) for c in CONFS[:2]] == pytest.approx([1 / 3, 0.0])
    # Best: gate 0.25 (the lowest gate at the top score); conf 0.1 and 0.5 tie there, the higher wins.
    best = best_gate(table)
    assert best == {"mode": "hard", "gate": 0.25, "conf": 0.5, "scale": 1.0, "score": pytest.approx(0.5)}


def test_gate_zero_is_exactly_the_ungated_score():
    rng = np.random.default_rng(0)
    truth, rows = {}, []
    for k in range(60):
        pid = f"p{k}"
        truth[pid] = rng.uniform(0, 600, (rng.integers(0, 3), 4)) + np.array([0, 0, 50, 50])
        for _ in range(rng.integers(0, 4)):
            rows.append((pid, rng.uniform(0.01, 1), *(rng.uniform(0, 600, 2)), *(rng.uniform(50, 300, 2))))
    preds = pd.DataFrame(rows, columns=["patientId", "conf", "x", "y", "width", "height"])
    p = {pid: float(rng.uniform()) for pid in truth}
    table = gate_sweep(truth, preds, p, gates=(0.0, 0.5))
    ungated = sweep_scores(truth, preds)
    zero = table[(table["mode"] == "hard") & (table["gate"] == 0.0)].reset_index(drop=True)
    assert zero[["conf", "scale", "score"]].equals(ungated[["conf", "scale", "score"]])
    assert best_gate(table)["score"] >= ungated["score"].max()  # never below the ungated best


def test_ties_go_to_no_gate():
    table = gate_sweep(TRUTH, PREDS.iloc[:1], P, confs=CONFS, box_scales=SCALES, gates=(0.0, 0.1))
    assert best_gate(table)["mode"] == "hard" and best_gate(table)["gate"] == 0.0


def test_missing_probabilities_are_one_clear_error():
    with pytest.raises(UserError, match=r"no classifier probability for 1 of 4 image\(s\), e.g. D"):
        gate_sweep(TRUTH, PREDS, {k: v for k, v in P.items() if k != "D"})
    with pytest.raises(UserError, match="no classifier probability for 1 of 3"):
        apply_gate(PREDS, {"A": 1.0, "B": 1.0})
