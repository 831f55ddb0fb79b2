"""A tiny converted dataset for training tests, in the layout of docs/ARCHITECTURE.md.

Each image is a dark, slightly noisy square with at most one bright rectangle (the "opacity"); the source
frame is the native 1024 px, the PNGs are ``size`` px, so ``scale = size / 1024`` as the converter records.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

NATIVE = 1024
MANIFEST_COLUMNS = [
    "patientId", "split", "fold", "class", "Target", "n_boxes", "PatientAge", "PatientSex",
    "ViewPosition", "rows", "cols", "png", "scale",
]  # fmt: skip


def make_tiny_dataset(
    root: Path, *, n_train: int = 12, n_val: int = 6, size: int = 64, seed: int = 0
) -> Path:
    """Write ``root/{images,labels}/{train,val}``, data.yaml, manifest.csv, boxes.csv; return data.yaml."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    scale = size / NATIVE
    manifest, boxes = [], []
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pid = f"{split}{i:03d}"
            img = rng.integers(0, 40, (size, size), dtype=np.uint8)
            positive = i % 3 != 2  # two thirds positive
            label = ""
            if positive:
                w, h = rng.integers(250, 450, 2)  # source pixels
                x, y = rng.integers(50, NATIVE - 50 - max(w, h), 2)
                x0, y0, x1, y1 = (round(v * scale) for v in (x, y, x + w, y + h))
                img[y0:y1, x0:x1] = 220
                cx, cy, bw, bh = (x + w / 2) / NATIVE, (y + h / 2) / NATIVE, w / NATIVE, h / NATIVE
                label = f"0 {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n"
                boxes.append((pid, int(x), int(y), int(w), int(h)))
            png = Path("images") / split / f"{pid}.png"
            cv2.imwrite(str(root / png), img)
            (root / "labels" / split / f"{pid}.txt").write_text(label)
            manifest.append(
                (pid, split, 0, "Lung Opacity" if positive else "Normal", int(positive), int(positive),
                 50, "M", "PA", NATIVE, NATIVE, png.as_posix(), scale)
            )  # fmt: skip
    pd.DataFrame(manifest, columns=MANIFEST_COLUMNS).to_csv(root / "manifest.csv", index=False)
    pd.DataFrame(boxes, columns=["patientId", "x", "y", "width", "height"]).to_csv(
        root / "boxes.csv", index=False
    )
    data = root / "data.yaml"
    data.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n  0: opacity\n")
    return data


def make_synthetic_dataset(root: Path, *, patients: int = 20, imgsz: int = 64, seed: int = 0) -> Path:
    """The project's own pipeline in miniature: ``convert.synth`` DICOMs (256 px) -> ``convert.rsna`` at
    ``imgsz``; returns data.yaml. About half a second for 20 patients."""
    from convert.rsna import convert_rsna
    from convert.synth import generate

    root = Path(root)
    generate(root / "kaggle", patients, 0, seed, imgsz=256)
    convert_rsna(
        root / "kaggle", root / "dataset", imgsz=imgsz, workers=1, progress=False, echo=lambda *a, **k: None
    )
    return root / "dataset" / "data.yaml"
