"""Conversion speed: `convert_rsna` against a naive loop and against the floor, in one run.

On ``--n`` generated JPEG-Baseline 1024-px DICOMs (like the real ones), reports images/s of:

- ``floor``: read + decode (Pillow on the JPEG frame) + resize + PNG encode, nothing else, one process:
  the least work any converter must do per image on one core;
- ``naive``: ``pydicom.dcmread(...).pixel_array`` (pydicom's default decoder order) + ``cv2.resize`` +
  ``cv2.imwrite``, one process;
- ``convert_rsna`` with 1 worker and with all cores, end to end (CSV validation, split, PNGs, labels,
  manifest, report and the final check included).

Targets: 1 worker >= 0.85 x floor; all cores >= 0.8 x cores x (1 worker). Each figure is the best of
``--repeat`` runs, which damps noise from other work on the machine (it cannot remove it).

    python benchmarks/convert_bench.py [--n 300] [--imgsz 640] [--repeat 2] [--src DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import pydicom
from PIL import Image
from pydicom.encaps import generate_frames

import offline  # noqa: F401  (before anything that may import ultralytics)
from convert.rsna import convert_rsna, resized_shape
from convert.synth import generate


def floor_pass(files: list[Path], imgsz: int) -> float:
    """Seconds for decode + resize + PNG encode of ``files`` in this process, one OpenCV thread."""
    cv2.setNumThreads(1)
    start = time.perf_counter()
    for path in files:
        ds = pydicom.dcmread(path)
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        image = np.asarray(Image.open(io.BytesIO(frame)))
        h, w, _ = resized_shape(*image.shape, imgsz)
        if (h, w) != image.shape:
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        ok, _png = cv2.imencode(".png", image)
        assert ok
    return time.perf_counter() - start


def naive_pass(files: list[Path], imgsz: int, out: Path) -> float:
    """Seconds for the obvious loop: pydicom default decoding, cv2.resize, cv2.imwrite."""
    cv2.setNumThreads(cv2.getNumberOfCPUs())
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path in files:
        image = pydicom.dcmread(path).pixel_array
        image = cv2.resize(image, (imgsz, imgsz), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(out / f"{path.stem}.png"), image)
    return time.perf_counter() - start


def convert_pass(src: Path, out: Path, imgsz: int, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    report = convert_rsna(src, out, imgsz=imgsz, workers=workers, progress=False, echo=lambda *_: None)
    elapsed = time.perf_counter() - start
    assert report["check"]["ok"], report["check"]["problems"][:5]
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="generated DICOMs (default 300)")
    parser.add_argument("--imgsz", type=int, default=640, help="PNG longer side (default 640)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; best kept")
    parser.add_argument("--src", type=Path, default=None, help="reuse (or create) the generated data here")
    args = parser.parse_args()
    cores = os.cpu_count() or 1

    work = Path(tempfile.mkdtemp(prefix="convert_bench_"))
    src = args.src or work / "src"
    try:
        if not (src / "stage_2_train_images").is_dir():
            t = time.perf_counter()
            generate(src, args.n, 0, seed=0, workers=cores)
            print(
                f"generated {args.n} JPEG-Baseline 1024-px DICOMs in {time.perf_counter() - t:.1f} s: {src}"
            )
        files = sorted((src / "stage_2_train_images").glob("*.dcm"))
        n = len(files)
        for path in files:  # warm the page cache so the first measurement is not penalised
            path.read_bytes()

        best: dict[str, float] = {}

        def keep(name: str, seconds: float) -> None:
            best[name] = min(best.get(name, float("inf")), seconds)

        for _ in range(args.repeat):
            keep("floor", floor_pass(files, args.imgsz))
            keep("convert_1", convert_pass(src, work / "out1", args.imgsz, 1))
            keep("convert_all", convert_pass(src, work / "outN", args.imgsz, cores))
            keep("naive", naive_pass(files, args.imgsz, work / "naive"))

        rate = {k: n / v for k, v in best.items()}
        plugins = {m: importlib.util.find_spec(m) is not None for m in ("pylibjpeg", "gdcm", "PIL")}
        print(f"{n} images, imgsz {args.imgsz}, {cores} cores, best of {args.repeat}; decoders installed: "
              + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in plugins.items()))  # fmt: skip
        print(f"  floor (decode+resize+PNG encode, 1 core) {rate['floor']:7.1f} img/s")
        print(f"  naive loop (1 process)                   {rate['naive']:7.1f} img/s  "
              f"{rate['naive'] / rate['floor']:.2f} x floor")  # fmt: skip
        print(f"  convert_rsna, 1 worker                   {rate['convert_1']:7.1f} img/s  "
              f"{rate['convert_1'] / rate['floor']:.2f} x floor (target >= 0.85)")  # fmt: skip
        scaling = rate["convert_all"] / (cores * rate["convert_1"])
        print(f"  convert_rsna, {cores} workers                  {rate['convert_all']:7.1f} img/s  "
              f"{rate['convert_all'] / rate['floor']:.2f} x floor, {scaling:.2f} x cores x 1 worker "
              "(target >= 0.8)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
