"""Conversion speed: `convert_rsna` against a naive loop and against the floor, in one run.

On ``--n`` generated JPEG-Baseline 1024-px DICOMs (like the real ones), reports images/s of:

- ``floor``: read + decode (Pillow on the JPEG frame) + resize + PNG encode, nothing else, one process:
  the least work any converter must do per image on one core;
- ``naive``: ``pydicom.dcmread(...).pixel_array`` (pydicom's default decoder order) + ``cv2.resize`` +
  ``cv2.imwrite``, one process;
- ``convert_rsna`` with 1 worker and with all cores, end to end (CSV validation, split, PNGs, labels,
  manifest, report and the final check included).

Targets: 1 worker >= 0.85 x floor; all cores >= 0.8 x cores x (1 worker). Each figure is the best of
``--repeat`` runs. Wall-clock rates suffer from other work on the machine, so images per CPU-second
(this process plus its worker processes) are printed beside them: those compare the work done per
image whatever else runs; the wall-clock scaling across cores can only be judged on idle cores.

    python benchmarks/convert_bench.py [--n 300] [--imgsz 640] [--repeat 2] [--src DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import resource
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

from convert.rsna import convert_rsna
from convert.synth import generate
from rsna_yolo import offline  # noqa: F401  (before anything that may import ultralytics)
from rsna_yolo.core.images import resized_shape
from rsna_yolo.core.workers import available_cpus


class Clock:
    """Wall time and CPU time (this process plus finished child processes) of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, self._cpu() - self.cpu

    @staticmethod
    def _cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def floor_pass(files: list[Path], imgsz: int) -> Clock:
    """Decode + resize + PNG encode of ``files`` in this process, one OpenCV thread, nothing written."""
    cv2.setNumThreads(1)
    with Clock() as clock:
        for path in files:
            ds = pydicom.dcmread(path)
            frame = next(generate_frames(ds.PixelData, number_of_frames=1))
            image = np.asarray(Image.open(io.BytesIO(frame)))
            h, w, _ = resized_shape(*image.shape, imgsz)
            if (h, w) != image.shape:
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            ok, _png = cv2.imencode(".png", image)
            assert ok
    return clock


def naive_pass(files: list[Path], imgsz: int, out: Path) -> Clock:
    """The obvious loop: pydicom default decoding, cv2.resize, cv2.imwrite (OpenCV's default threads)."""
    cv2.setNumThreads(-1)
    out.mkdir(parents=True, exist_ok=True)
    with Clock() as clock:
        for path in files:
            image = pydicom.dcmread(path).pixel_array
            image = cv2.resize(image, (imgsz, imgsz), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(out / f"{path.stem}.png"), image)
    return clock


def convert_pass(src: Path, out: Path, imgsz: int, workers: int) -> Clock:
    """``convert_rsna`` end to end into a fresh ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    with Clock() as clock:
        report = convert_rsna(src, out, imgsz=imgsz, workers=workers, progress=False, echo=lambda *_: None)
    assert report["check"]["ok"], report["check"]["problems"][:5]
    return clock


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="generated DICOMs (default 300)")
    parser.add_argument("--imgsz", type=int, default=640, help="PNG longer side (default 640)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; best kept")
    parser.add_argument("--src", type=Path, default=None, help="reuse (or create) the generated data here")
    args = parser.parse_args()
    cores = available_cpus()  # what convert_rsna uses by default

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

        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}

        def keep(name: str, clock: Clock) -> None:
            wall[name] = min(wall.get(name, float("inf")), clock.wall)
            cpu[name] = min(cpu.get(name, float("inf")), clock.cpu)

        load_before = os.getloadavg()[0]
        for _ in range(args.repeat):
            keep("floor", floor_pass(files, args.imgsz))
            keep("convert_1", convert_pass(src, work / "out1", args.imgsz, 1))
            keep("convert_all", convert_pass(src, work / "outN", args.imgsz, cores))
            keep("naive", naive_pass(files, args.imgsz, work / "naive"))
        load_after = os.getloadavg()[0]

        rate = {k: n / v for k, v in wall.items()}
        cpu_rate = {k: n / v for k, v in cpu.items()}  # images per CPU-second: immune to other load
        plugins = {m: importlib.util.find_spec(m) is not None for m in ("pylibjpeg", "gdcm", "PIL")}
        print(f"{n} images, imgsz {args.imgsz}, {cores} cores, best of {args.repeat}; load average "
              f"{load_before:.1f} before, {load_after:.1f} after; decoders installed: "
              + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in plugins.items()))  # fmt: skip
        print("                                   wall img/s  x floor | img/CPU-s  x floor")
        for name, label in (("floor", "floor (decode+resize+encode)"), ("naive", "naive loop (1 process)"),
                            ("convert_1", "convert_rsna, 1 worker"),
                            ("convert_all", f"convert_rsna, {cores} workers")):  # fmt: skip
            print(f"  {label:31s} {rate[name]:8.1f} {rate[name] / rate['floor']:8.2f} | "
                  f"{cpu_rate[name]:9.1f} {cpu_rate[name] / cpu_rate['floor']:8.2f}")  # fmt: skip
        scaling = rate["convert_all"] / (cores * rate["convert_1"])
        cpu_scaling = cpu_rate["convert_all"] / cpu_rate["convert_1"]
        print(
            f"target 1 worker >= 0.85 x floor: wall {rate['convert_1'] / rate['floor']:.2f}, "
            f"CPU {cpu_rate['convert_1'] / cpu_rate['floor']:.2f}"
        )
        print(
            f"target {cores} workers >= 0.8 x {cores} x 1 worker: wall {scaling:.2f} "
            f"(img/CPU-s, {cores} workers / 1 worker: {cpu_scaling:.2f}; wall scaling needs idle cores)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
