"""Film resizing and PNG headers: the one place the converter and the predictor size an image."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def resized_shape(rows: int, cols: int, imgsz: int) -> tuple[int, int, float]:
    """``(height, width, png_scale)`` of an image of ``rows x cols`` resized so its longer side is ``imgsz``.

    ``png_scale`` is PNG pixels per source pixel (the ``scale`` column of ``manifest.csv``).

    >>> resized_shape(1024, 1024, 640), resized_shape(600, 800, 400)
    ((640, 640, 0.625), (300, 400, 0.5))
    """
    png_scale = imgsz / max(rows, cols)
    height = max(1, math.floor(rows * png_scale + 0.5))
    width = max(1, math.floor(cols * png_scale + 0.5))
    return height, width, png_scale


def resize_longer_side(image: np.ndarray, imgsz: int) -> np.ndarray:
    """``(H, W)`` uint8 -> ``(h, w)`` uint8 with ``max(h, w) == imgsz``; INTER_AREA when shrinking."""
    height, width, png_scale = resized_shape(image.shape[0], image.shape[1], imgsz)
    if (height, width) == image.shape[:2]:
        return image
    interpolation = cv2.INTER_AREA if png_scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def png_header(path: Path) -> tuple[int, int, int, int] | None:
    """``(width, height, bit_depth, colour_type)`` from a PNG's IHDR chunk, or None if not a PNG."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return None
    if len(head) < 26 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height, head[24], head[25]
