"""A converted dataset is accepted by Ultralytics as is: one tiny `yolo detect train` epoch on it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from convert.rsna import convert_rsna
from convert.synth import generate
from tests.conftest import REPO_ROOT, subprocess_env


def test_yolo_trains_one_epoch_on_converted_dataset(tmp_path: Path):
    src = tmp_path / "src"
    generate(src, 12, 0, seed=3, imgsz=128)
    out = tmp_path / "data"
    report = convert_rsna(
        src, out, imgsz=64, val_fraction=0.34, workers=1, progress=False, echo=lambda *_: None
    )
    assert report["check"]["ok"], report["check"]
    manifest = pd.read_csv(out / "manifest.csv")

    yolo = Path(sys.executable).with_name("yolo")
    proc = subprocess.run(
        [str(yolo), "detect", "train", f"data={out / 'data.yaml'}", "model=yolo11n.yaml", "imgsz=64",
         "epochs=1", "batch=4", "workers=0", "device=cpu", "plots=False", "amp=False",
         f"project={tmp_path / 'runs'}", "name=t", "exist_ok=True", "seed=0"],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert (tmp_path / "runs" / "t" / "results.csv").is_file()
    # Ultralytics' own count of what it found: images and backgrounds (empty label files) per split.
    for split in ("train", "val"):
        rows = manifest[manifest["split"] == split]
        n, backgrounds = len(rows), int((rows["Target"] == 0).sum())
        pattern = (
            rf"{split}: .*?{re.escape(str(out / 'labels' / split))}.*? {n} images, {backgrounds} backgrounds"
        )
        assert re.search(pattern, log), (
            f"{split}: expected {n} images, {backgrounds} backgrounds\n{log[-3000:]}"
        )
