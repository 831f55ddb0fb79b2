"""A hand-made converted dataset (docs/ARCHITECTURE.md layout) for tests of the truth, scoring and submit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def fake_dataset(root: Path) -> Path:
    """A hand-made converted dataset: 4 labelled patients (manifest val = v1, v2; train = t1, t2), one test
    patient, and a fold YAML whose val list names t1 and v1."""
    rows = [
        ("v1", "val", 0, "Lung Opacity", 1, 1),
        ("v2", "val", 0, "Normal", 0, 0),
        ("t1", "train", 1, "Lung Opacity", 1, 1),
        ("t2", "train", 1, "Normal", 0, 0),
        ("x1", "test", "", "", "", ""),
    ]
    manifest = pd.DataFrame(rows, columns=["patientId", "split", "fold", "class", "Target", "n_boxes"])
    manifest = manifest.assign(png=[f"images/{s}/{p}.png" for p, s, *_ in rows], scale=1.0)
    root.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(root / "manifest.csv", index=False)
    boxes = pd.DataFrame({"patientId": ["v1", "t1"], "x": [1, 2], "y": [3, 4], "width": [5, 6]})
    boxes["height"] = [7, 8]
    boxes.to_csv(root / "boxes.csv", index=False)
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\n")
    (root / "folds").mkdir(exist_ok=True)
    (root / "folds" / "fold1_val.txt").write_text(f"{root}/images/train/t1.png\n{root}/images/val/v1.png\n")
    fold = f"path: {root}\ntrain: folds/fold1_train.txt\nval: folds/fold1_val.txt\n"
    (root / "folds" / "fold1.yaml").write_text(fold)
    for p, s, *_ in rows:
        (root / "images" / s).mkdir(parents=True, exist_ok=True)
        (root / "images" / s / f"{p}.png").write_bytes(b"")
    return root
