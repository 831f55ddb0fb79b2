"""Inference from trained weights on PNGs or DICOMs, to boxes in source pixels.

One image's path: read (PNG as is; DICOM decoded with :func:`rsna_yolo.core.dicom.read_dicom` +
:func:`rsna_yolo.core.dicom.dicom_to_uint8` and resized like the converter, longer side = ``imgsz``) ->
Ultralytics
predicts on the array (it letterboxes and maps boxes back to the array) -> optional horizontal-flip copy
-> several models / flips fused with weighted box fusion (a batch at a time:
:func:`analysis.record.fusion.fuse_batch`, bit-equal to ``ensemble_boxes``, which :func:`fuse` calls for one
image) -> divided by the array's
PNG scale (PNG pixels per source pixel, ``png_scale``) -> ``xywh_px`` in the source frame.

:func:`predict_images` returns a frame ``patientId, conf, x, y, width, height`` (one row per box); images
that could not be read are listed in ``frame.attrs["failed"]`` (patientId -> reason) and have no row.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from analysis.record.defaults import DEFAULTS
from analysis.record.fusion import fuse_batch
from rsna_yolo.core.boxes import xyxy_to_xywh
from rsna_yolo.core.films import load_image
from rsna_yolo.core.layout import PRED_COLUMNS

T = TypeVar("T")

PART_COLUMNS = ["patientId", "part", "conf", "x1", "y1", "x2", "y2", "png_width", "png_height", "png_scale"]
"""One model's (or flip's) box before fusion: ``part`` numbers the model x flip passes; corners in PNG
pixels of a ``png_width x png_height`` image; ``png_scale`` maps them back to the source frame."""


def trained_size(model, default: int = 640) -> int:
    """The image size a loaded ``YOLO`` model was trained at (its checkpoint's ``imgsz``), else
    ``default``."""
    imgsz = model.overrides.get("imgsz", default)
    return int(max(imgsz) if isinstance(imgsz, (list, tuple)) else imgsz)


def resolve_imgsz(weights: str | Path, default: int = 640) -> int:
    """The image size the weights were trained at (their checkpoint's ``imgsz``), else ``default``."""
    from ultralytics import YOLO

    return trained_size(YOLO(str(weights)), default)


def model_sizes(weights: Sequence, imgsz: int | Sequence[int] | None = None) -> list[int]:
    """The inference size of each of ``weights`` (paths, or loaded ``YOLO`` models): ``imgsz`` for all when
    it is a number, one each when it is a list (sizes resolved earlier), else each one's own training size
    (an ensemble of sizes predicts each model at the size it learned)."""
    if imgsz is None:
        return [trained_size(w) if hasattr(w, "overrides") else resolve_imgsz(w) for w in weights]
    if isinstance(imgsz, (int, float, str)):
        return [int(imgsz)] * len(weights)
    if len(imgsz) != len(weights):
        raise ValueError(f"{len(imgsz)} sizes for {len(weights)} weights")
    return [int(x) for x in imgsz]


def manifest_png_scales(manifest: pd.DataFrame) -> dict[str, float]:
    """patientId -> PNG scale (PNG pixels per source pixel: the ``scale`` column) of ``manifest.csv`` rows,
    the ``png_scales`` of :func:`predict_images`."""
    return dict(zip(manifest["patientId"].astype(str), manifest["scale"].astype(float), strict=True))


_MODELS: dict[tuple[str, int, int, str], object] = {}
MODELS_KEPT = 8
"""Loaded models kept for the next call (by path, size and modification time): a chunked prediction
(:meth:`analysis.inference.Predictor.predict`) would otherwise load every model again for each chunk."""


def load_model(weights: str | Path, backend: str = "torch"):
    """``YOLO(weights)``, loaded once while the file is unchanged (the :data:`MODELS_KEPT` last ones kept);
    an export as its ``backend`` runs it (:func:`analysis.inference.export.open_exported`)."""
    from ultralytics import YOLO

    stat = Path(weights).stat()
    key = (str(Path(weights).resolve()), stat.st_size, stat.st_mtime_ns, backend)
    if key not in _MODELS:
        while len(_MODELS) >= MODELS_KEPT:
            _MODELS.pop(next(iter(_MODELS)))
        if backend == "torch":
            _MODELS[key] = YOLO(str(weights))
        else:
            from analysis.inference.export import open_exported

            _MODELS[key] = open_exported(weights, backend)
    return _MODELS[key]


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _now(load: Callable[[Path], T], path: Path) -> Future:
    """``load(path)`` run in this thread, as a finished future (``workers=0`` in :func:`iter_loaded`)."""
    future: Future = Future()
    try:
        future.set_result(load(path))
    except Exception as exc:
        future.set_exception(exc)
    return future


def iter_loaded(
    images: Sequence[Path],
    batch: int,
    load: Callable[[Path], T],
    *,
    workers: int | None = None,
    pool: Executor | None = None,
) -> Iterator[tuple[Sequence[Path], list[tuple[Path, T]], dict[str, str]]]:
    """``load`` every image, in chunks of ``batch``, on ``workers`` threads (default: the cores this process
    may use; 0: in this thread) while the caller works on the previous chunk, so decoding and resizing
    (Pillow and OpenCV release the GIL) overlap inference. Yields ``(chunk, [(path, loaded)...],
    {patientId: reason})`` in order; an image whose ``load`` raises is reported, never fatal (a corrupt file
    must not stop a submission). ``pool``: an executor of the caller's to load on instead (kept open), such
    as worker processes (``load`` must then pickle); ``benchmarks/cpu_inference.py`` measures them against
    the threads."""
    from rsna_yolo.core.workers import available_cpus

    workers = available_cpus() if workers is None else int(workers)
    upcoming = iter(_chunks(list(images), max(1, int(batch))))
    own = pool is None
    with ThreadPoolExecutor(max(1, workers)) if own else contextlib.nullcontext(pool) as executor:
        inline = own and workers <= 0

        def start(chunk: Sequence[Path]) -> tuple[Sequence[Path], list[Future]]:
            return chunk, [_now(load, p) if inline else executor.submit(load, p) for p in chunk]

        pending = deque(start(chunk) for chunk in itertools.islice(upcoming, 2))
        while pending:
            chunk, futures = pending.popleft()
            nxt = next(upcoming, None)
            if nxt is not None:  # one chunk loads ahead of the one being used
                pending.append(start(nxt))
            ok, failed = [], {}
            for path, future in zip(chunk, futures, strict=True):
                try:
                    ok.append((path, future.result()))
                except Exception as exc:
                    failed[path.stem] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            yield chunk, ok, failed


def fuse(
    parts: list[tuple[np.ndarray, np.ndarray]],
    width: int,
    height: int,
    *,
    conf: float,
    iou_thr: float = DEFAULTS.wbf_iou,
    skip_box_thr: float | None = None,
    conf_type: str = DEFAULTS.wbf_conf_type,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted box fusion of several ``(xyxy (N, 4) px, conf (N,))`` predictions of one image
    (``ensemble_boxes``: boxes below ``skip_box_thr``, default ``conf``, are dropped first): the reference
    :func:`analysis.record.fusion.fuse_batch` is tested against, which :func:`predict_images` uses."""
    if len(parts) == 1:
        return parts[0]
    from ensemble_boxes import weighted_boxes_fusion

    norm = np.array([width, height, width, height], dtype=np.float64)
    boxes = [np.clip(b / norm, 0, 1).tolist() for b, _ in parts]
    scores = [c.tolist() for _, c in parts]
    labels = [[0] * len(c) for _, c in parts]
    if not any(scores):
        return np.zeros((0, 4)), np.zeros(0)
    skip = conf if skip_box_thr is None else skip_box_thr
    fb, fs, _ = weighted_boxes_fusion(
        boxes, scores, labels, iou_thr=iou_thr, skip_box_thr=skip, conf_type=conf_type
    )
    return np.asarray(fb, dtype=np.float64).reshape(-1, 4) * norm, np.asarray(fs, dtype=np.float64)


def _predict_batch(models, arrays: list[np.ndarray], *, sizes, conf, tta, device) -> list[list]:
    """Per image, a list of ``(xyxy, conf)`` from each model (at its size in ``sizes``; and its flipped copy
    with ``tta``)."""
    out: list[list] = [[] for _ in arrays]
    bgr = [np.repeat(a[:, :, None], 3, axis=2) for a in arrays]
    variants = [(bgr, False)]
    if tta:
        variants.append(([np.ascontiguousarray(b[:, ::-1]) for b in bgr], True))
    for model, imgsz in zip(models, sizes, strict=True):
        for batch, flipped in variants:
            results = model.predict(batch, imgsz=imgsz, conf=conf, device=device, verbose=False)
            for k, r in enumerate(results):
                xyxy = r.boxes.xyxy.cpu().numpy().astype(np.float64).reshape(-1, 4)
                scores = r.boxes.conf.cpu().numpy().astype(np.float64).reshape(-1)
                if flipped:  # mirror back: x1' = W - x2, x2' = W - x1
                    w = arrays[k].shape[1]
                    xyxy = np.stack([w - xyxy[:, 2], xyxy[:, 1], w - xyxy[:, 0], xyxy[:, 3]], axis=1)
                out[k].append((xyxy, scores))
    return out


def predict_images(
    weights: Sequence[str | Path] | str | Path,
    images: Sequence[str | Path],
    *,
    imgsz: int | Sequence[int] | None = None,
    floor: float = DEFAULTS.prediction_floor,
    batch: int = 16,
    tta: bool = False,
    device=None,
    png_scales: Mapping[str, float] | None = None,
    wbf_iou: float = DEFAULTS.wbf_iou,
    wbf: Mapping[str, object] | None = None,
    keep_parts: bool = False,
    workers: int | None = None,
    backend: str = "torch",
    progress: bool = True,
    decode_pool: Executor | None = None,
) -> pd.DataFrame:
    """Predict every image; boxes in SOURCE pixels (xywh_px), one row per box, :data:`PRED_COLUMNS`, with
    confidence at least ``floor`` (the prediction floor by default: the threshold is tuned afterwards).

    ``images``: PNG or ``.dcm`` paths (patientId = file stem). ``png_scales``: patientId -> PNG pixels per
    source pixel (the manifest's ``scale``, :func:`manifest_png_scales`) for converted PNGs; without it a
    PNG's source frame is taken to be ``NATIVE_SIZE`` on its longer side. ``imgsz`` is the inference size
    of every model (or a list, one per model); without it each model predicts at its own training size
    (:func:`model_sizes`), the images being loaded at the largest. Several weights and/or ``tta``
    (horizontal flip) are fused with weighted box fusion (``wbf_iou``, or ``wbf``: ``{"iou_thr",
    "skip_box_thr", "conf_type"}`` as tuned by :func:`analysis.tuning.wbf.tune_wbf`); ``keep_parts`` also
    returns each model's (and flip's) own boxes before fusion in ``frame.attrs["parts"]``
    (:data:`PART_COLUMNS`). ``workers`` threads decode and resize the next batch during inference
    (:func:`iter_loaded`; or ``decode_pool``, an executor of the caller's, such as worker processes).
    ``backend``: ``torch`` (the weights themselves) or the export of each one at its
    size that ``rsna-yolo export`` made (:func:`analysis.inference.export.exported_model`: ``onnx``,
    ``openvino``, ``openvino-bf16``, ``openvino-int8``).
    Unreadable images are skipped and listed in ``frame.attrs["failed"]`` (patientId -> reason).
    """
    from tqdm import tqdm

    weights = [weights] if isinstance(weights, (str, Path)) else list(weights)
    if backend == "torch":
        models = [load_model(w) for w in weights]
        sizes = model_sizes(models, imgsz)  # read from the loaded models: no checkpoint loaded twice
    else:
        from analysis.inference.export import exported_model

        wanted = [None] * len(weights) if imgsz is None else model_sizes(weights, imgsz)
        found = [exported_model(w, backend, s) for w, s in zip(weights, wanted, strict=True)]
        models = [load_model(path, backend) for path, _ in found]
        sizes = [size for _, size in found]
    imgsz = max(sizes)
    images = [Path(p) for p in images]
    rows: list[tuple] = []
    part_rows: list[tuple] = []
    failed: dict[str, str] = {}
    fusion = dict(wbf or {"iou_thr": wbf_iou})
    bar = tqdm(total=len(images), desc="predict", unit="img", disable=not progress)
    load = functools.partial(load_image, imgsz=imgsz, png_scales=png_scales)  # pickles: for worker processes
    for chunk, ok, bad in iter_loaded(images, batch, load, workers=workers, pool=decode_pool):
        failed.update(bad)
        loaded = [(path.stem, png_scale, img.shape) for path, (img, png_scale) in ok]
        arrays = [img for _, (img, _) in ok]
        if arrays:
            per_image = _predict_batch(models, arrays, sizes=sizes, conf=floor, tta=tta, device=device)
            # the whole batch fused in one call (numpy, bit-equal to fuse() image by image)
            fused = fuse_batch(per_image, [(s[1], s[0]) for *_, s in loaded], conf=floor, **fusion)
            for (pid, png_scale, shape), parts, (xyxy, scores) in zip(loaded, per_image, fused, strict=True):
                if keep_parts:
                    for k, (xy, sc) in enumerate(parts):
                        frame_px = (shape[1], shape[0], png_scale)
                        part_rows += [
                            (pid, k, float(c), *map(float, b), *frame_px) for c, b in zip(sc, xy, strict=True)
                        ]
                keep = scores >= floor
                xywh = xyxy_to_xywh(xyxy[keep] / png_scale)
                rows += [(pid, float(c), *map(float, b)) for c, b in zip(scores[keep], xywh, strict=True)]
        bar.update(len(chunk))
    bar.close()
    frame = pd.DataFrame(rows, columns=PRED_COLUMNS)
    frame.attrs["failed"] = failed
    if keep_parts:
        frame.attrs["parts"] = pd.DataFrame(part_rows, columns=PART_COLUMNS)
    return frame
