"""Loading a film for inference, read from disk once: what the detector, the classifier and a picture of the
film all start from, below both doors of ``analysis`` (tuning and inference).

:func:`load_image` gives a film as a model sees it: a DICOM decoded to 8 bits (:mod:`rsna_yolo.core.dicom`,
the converter's decoding) and resized as the converter resizes, or a PNG as stored, with its PNG scale.
Inside :func:`decoded_once` a film already read is not read again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import cv2
import numpy as np

from rsna_yolo.core.boxes import NATIVE_SIZE

_DECODED: dict[Path, np.ndarray] | None = None
"""Inside :func:`decoded_once`: each film read so far, as stored (a DICOM's 8-bit source frame, a PNG as
written), by path."""


@contextlib.contextmanager
def decoded_once() -> Iterator[dict[Path, np.ndarray]]:
    """Within the block every film is decoded once: a later :func:`load_image` of the same path (the
    classifier after the detector, the drawing after both) resizes the kept image instead of decoding the
    file again. The caller bounds the films read inside one block (:meth:`Predictor.predict`'s chunks),
    since each stays in memory until the block ends. Not nested; threads share it (dict writes are atomic)."""
    global _DECODED
    _DECODED = {}
    try:
        yield _DECODED
    finally:
        _DECODED = None


def _read_film(path: Path, dicom: bool) -> np.ndarray:
    """A film as stored: a DICOM decoded to 8 bits (source frame), a PNG as written; kept inside
    :func:`decoded_once`."""
    kept = _DECODED
    if kept is not None and path in kept:
        return kept[path]
    if dicom:
        from rsna_yolo.core.dicom import dicom_to_uint8, read_dicom

        img = dicom_to_uint8(read_dicom(path))
    else:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ValueError(f"{path}: unreadable image")
    if kept is not None:
        kept[path] = img
    return img


def load_image(
    path: Path, imgsz: int, png_scales: Mapping[str, float] | None = None
) -> tuple[np.ndarray, float]:
    """``(gray (H, W) uint8, png_scale)``: a PNG as stored with its scale from ``png_scales`` (else ``longer
    side / NATIVE_SIZE``); a DICOM decoded and resized to ``imgsz`` with that resize's PNG scale. Raises on
    failure. Inside :func:`decoded_once` a film read before is not read again."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        from rsna_yolo.core.images import resize_longer_side, resized_shape

        img = _read_film(path, dicom=True)
        # exactly the converter's resize, so test images look like the training PNGs
        return resize_longer_side(img, imgsz), resized_shape(img.shape[0], img.shape[1], imgsz)[2]
    img = _read_film(path, dicom=False)
    png_scale = png_scales.get(path.stem) if png_scales else None
    return img, float(png_scale) if png_scale else max(img.shape) / NATIVE_SIZE
