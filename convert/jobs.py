"""One image's journey, and running many of them: the per-image half of :func:`convert.rsna.convert_rsna`.

:func:`convert_one` reads a DICOM, maps it to 8-bit (:func:`rsna_yolo.core.dicom.dicom_to_uint8`), resizes
so the longer side is ``imgsz``, writes the PNG and the YOLO label (each atomically), or reuses them when a
killed run left them finished; :func:`run_jobs` runs the jobs on worker processes with a progress bar;
:func:`space_warning` says before a conversion that the disk will not hold it. A bad file never raises:
it comes back as a skip with its reason.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from rsna_yolo.core.boxes import clip_xywh
from rsna_yolo.core.dicom import DicomError, dicom_to_uint8, header_metadata, read_dicom
from rsna_yolo.core.images import png_header, resize_longer_side, resized_shape
from rsna_yolo.core.io import is_disk_full, write_atomic
from rsna_yolo.core.layout import (
    label_text,
)
from rsna_yolo.core.workers import die_with_parent

PNG_BYTES_PER_PIXEL = 0.5
"""A generous size of an 8-bit film's PNG per pixel of ``imgsz x imgsz`` (OpenCV's default compression;
chest films compress to less): only to warn before a conversion that will not fit."""
FILE_BLOCK = 4096
"""The least a file takes on disk (one block): a label file of a few bytes costs this much."""


def outside_boxes(boxes_xywh_px, rows: int, cols: int) -> np.ndarray:
    """Boolean mask ``(N,)``: the boxes with no area inside a ``rows x cols`` image (left out of the label).

    >>> outside_boxes([[10, 10, 5, 5], [300, 10, 5, 5], [290, 10, 20, 5]], 200, 300).tolist()
    [False, True, False]
    """
    boxes = np.asarray(boxes_xywh_px, dtype=np.float64).reshape(-1, 4)
    clipped = clip_xywh(boxes, cols, rows)
    return (clipped[:, 2] <= 0) | (clipped[:, 3] <= 0)


@dataclass(frozen=True)
class Job:
    """One image to convert. ``label`` is None for test images; ``boxes`` are xywh_px source pixels."""

    patient_id: str
    dicom: Path
    png: Path
    label: Path | None
    boxes: tuple[tuple[float, float, float, float], ...]
    imgsz: int


def convert_one(job: Job) -> dict:
    """Convert one DICOM (or reuse a finished one). Never raises for bad input.

    Returns ``{"patientId", "ok": True, "reused": bool, "meta": header_metadata(...), "png_scale"}`` or
    ``{"patientId", "ok": False, "reason": str}``.
    """
    try:
        reused = _reuse(job)
        if reused is not None:
            return reused
        ds = read_dicom(job.dicom)
        meta = header_metadata(ds)
        image = resize_longer_side(dicom_to_uint8(ds), job.imgsz)
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise DicomError("PNG encoding failed")
        write_atomic(job.png, encoded.tobytes())
        if job.label is not None:
            write_atomic(job.label, label_text(job.boxes, meta["rows"], meta["cols"]).encode())
        png_scale = resized_shape(meta["rows"], meta["cols"], job.imgsz)[2]
        done = {"patientId": job.patient_id, "ok": True, "reused": False, "meta": meta}
        return {**done, "png_scale": png_scale}
    except DicomError as exc:
        reason = str(exc).replace(f"{job.dicom}: ", "")
        return {"patientId": job.patient_id, "ok": False, "reason": reason}
    except OSError as exc:
        if is_disk_full(exc):  # not this file's fault: stop (one line from the CLI), a rerun resumes
            raise
        reason = re.sub(r" at 0x[0-9a-fA-F]+", "", f"{type(exc).__name__}: {exc}")
        return {"patientId": job.patient_id, "ok": False, "reason": reason}
    except Exception as exc:  # one odd file must not stop thousands of others: record it and go on
        reason = re.sub(r" at 0x[0-9a-fA-F]+", "", f"{type(exc).__name__}: {exc}")  # reproducible reports
        return {"patientId": job.patient_id, "ok": False, "reason": reason}


def _reuse(job: Job) -> dict | None:
    """The result for a job whose outputs a previous run already finished, else None.

    Reused when the PNG exists, is newer than its DICOM (a replaced DICOM is converted again) and has the
    expected size (8-bit grayscale), and the label file (train/val) exists; a label whose content differs
    (same image, other boxes) is rewritten. Only the DICOM header is read.
    """
    try:
        if job.png.stat().st_mtime_ns < job.dicom.stat().st_mtime_ns:
            return None
    except OSError:  # no PNG yet (or no DICOM: the full conversion reports that)
        return None
    if job.label is not None and not job.label.exists():
        return None
    ds = read_dicom(job.dicom, headers_only=True)
    meta = header_metadata(ds)
    if meta["rows"] is None or meta["cols"] is None:
        return None
    height, width, png_scale = resized_shape(meta["rows"], meta["cols"], job.imgsz)
    if png_header(job.png) != (width, height, 8, 0):
        return None
    if job.label is not None:
        expected = label_text(job.boxes, meta["rows"], meta["cols"]).encode()
        if job.label.read_bytes() != expected:
            write_atomic(job.label, expected)
    return {"patientId": job.patient_id, "ok": True, "reused": True, "meta": meta, "png_scale": png_scale}


def space_needed(jobs: list[Job]) -> int:
    """Bytes the PNGs and labels of ``jobs`` are expected to take (:data:`PNG_BYTES_PER_PIXEL`, at least a
    :data:`FILE_BLOCK` a file); a job whose PNG already exists counts nothing (a rerun reuses it)."""
    need = 0
    for job in jobs:
        if job.png.exists():
            continue
        png = math.ceil(job.imgsz * job.imgsz * PNG_BYTES_PER_PIXEL / FILE_BLOCK) * FILE_BLOCK
        need += png + (FILE_BLOCK if job.label is not None else 0)
    return need


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def space_warning(out: Path, jobs: list[Job], imgsz: int) -> str | None:
    """A line saying the disk of ``out`` has less free space than the conversion is expected to need
    (:func:`space_needed`), else None."""
    need = space_needed(jobs)
    free = shutil.disk_usage(out).free
    if need <= free:
        return None
    todo = sum(not job.png.exists() for job in jobs)
    return (
        f"warning: {todo} images at --imgsz {imgsz} need about {_size(need)}, and {out} has "
        f"{_size(free)} free: the conversion will likely stop when the disk is full. Images finished "
        "by then are kept and a rerun reuses them: free some space (or choose a smaller --imgsz) first"
    )


def _init_worker(parent: int) -> None:
    # One OpenCV thread per process: the processes are the parallelism. Ctrl-C is the parent's to
    # handle (it stops the pool); workers ignoring it avoids a traceback from every process.
    cv2.setNumThreads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)


def run_jobs(jobs: list[Job], workers: int, progress: bool = True) -> list[dict]:
    """Run :func:`convert_one` over ``jobs`` on ``workers`` processes (1 = in this process), in order."""
    bar = tqdm(total=len(jobs), desc="convert", unit="img", disable=not progress, smoothing=0.1)
    results: list[dict] = []
    if workers <= 1 or len(jobs) <= 1:
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for job in jobs:
                results.append(convert_one(job))
                bar.update()
        finally:
            cv2.setNumThreads(threads)
    else:
        chunksize = max(1, min(32, len(jobs) // (workers * 8)))
        pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(os.getpid(),))
        try:
            for result in pool.map(convert_one, jobs, chunksize=chunksize):
                results.append(result)
                bar.update()
        except BaseException:
            # Interrupted: drop the queued work now; finished files are complete, a rerun resumes.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
    bar.close()
    return results
