"""The loss breakdown: per-class counts and losses that add up to ``1 - score``."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.scoring.breakdown import breakdown, format_breakdown


def test_breakdown_losses_add_up():
    truth = {
        "n1": np.zeros((0, 4)),  # Normal, false box: score 0
        "n2": np.zeros((0, 4)),  # Normal, no box: left out
        "o1": np.zeros((0, 4)),  # Not Normal, false box
        "p1": np.array([[0.0, 0, 10, 10]]),  # Lung Opacity, perfect
        "p2": np.array([[0.0, 0, 10, 10]]),  # Lung Opacity, missed
    }
    classes = {"n1": "Normal", "n2": "Normal", "o1": "No Lung Opacity / Not Normal"}
    classes |= {"p1": "Lung Opacity", "p2": "Lung Opacity"}
    scores = {"n1": 0.0, "o1": 0.0, "p1": 1.0, "p2": 0.0}
    b = breakdown(scores, truth, classes, {"n1": 1, "o1": 2, "p1": 1})
    assert b["n_scored"] == 4 and b["loss"] == 0.75
    assert b["false_box_loss"] == 0.5 and b["lung_opacity_loss"] == 0.25
    normal, lo = b["classes"]["Normal"], b["classes"]["Lung Opacity"]
    assert (normal["n_images"], normal["n_scored"], normal["n_with_boxes"]) == (2, 1, 1)
    assert normal["mean_score"] == 0.0 and normal["loss_share"] == pytest.approx(1 / 3)
    assert lo["mean_score"] == 0.5 and lo["missed_images"] == 1
    assert lo["missed_loss"] == 0.25 and lo["misplaced_loss"] == 0.0
    assert sum(c["loss"] for c in b["classes"].values()) == pytest.approx(b["loss"])


def test_format_breakdown_lines():
    truth = {"n": np.zeros((0, 4)), "p": np.array([[0.0, 0, 10, 10]])}
    b = breakdown({"n": 0.0, "p": 0.0}, truth, {"n": "Normal", "p": "Lung Opacity"}, {"n": 1})
    assert format_breakdown(b) == [
        "loss 1 - score = 1.0000 over 2 scored images:",
        "  Normal                              1 images,      1 scored,      1 with boxes, mean 0.0000, "
        "loss 0.5000 (50.0%)",
        "  Lung Opacity                        1 images,      1 scored,      0 with boxes, mean 0.0000, "
        "loss 0.5000 (50.0%) = missed 0.5000 (1 image) + misplaced 0.0000",
    ]
