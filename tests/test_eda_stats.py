"""``analysis.reports.eda_stats``: box geometry and the coverage heatmap, against values computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.reports.eda_stats import box_geometry, boxes_in_native_frame, coverage_heatmap


def test_coverage_heatmap_closed_form() -> None:
    full = coverage_heatmap(np.array([[0, 0, 1024, 1024]]))
    assert full.shape == (256, 256) and (full == 1).all()
    left = coverage_heatmap(np.array([[0, 0, 512, 1024], [0, 0, 512, 512]]))
    assert (left[:, :128] >= 1).all() and (left[:, 128:] == 0).all()
    assert left[:128, :128].sum() == 2 * 128 * 128 and left[128:, :128].sum() == 128 * 128
    # Boxes reaching past the frame are clipped, not wrapped.
    past = coverage_heatmap(np.array([[1000, -50, 100, 100]]))
    assert past.sum() == 6 * 12 and past[0, 255] == 1 and past[0, 0] == 0


def test_box_geometry_sides_and_sizes() -> None:
    boxes = pd.DataFrame(
        {
            "patientId": ["a", "b"],
            "x": [100.0, 600.0],
            "y": [0.0, 10.0],
            "width": [200.0, 100.0],
            "height": [400.0, 50.0],
        }
    )
    geom = box_geometry(boxes)
    assert geom["area"].tolist() == [80_000.0, 5_000.0]
    assert geom["aspect"].tolist() == [2.0, 0.5]
    assert geom["side"].tolist() == ["image left", "image right"]
    # With header sizes, each box is judged in its own image (a 256-px image's middle is x = 128).
    small = pd.DataFrame({"patientId": ["a", "b"], "rows": [256, 1024], "cols": [256, 1024]})
    geom = box_geometry(boxes, small)
    assert geom["side"].tolist() == ["image right", "image right"]
    assert boxes_in_native_frame(geom)[0].tolist() == [400.0, 0.0, 800.0, 1600.0]
