"""Box geometry: pure functions on arrays, coordinates named in every name.

Conventions (docs/ARCHITECTURE.md; every box maths of the project is done here):

- ``xywh_px``: top-left corner x, y and width, height in pixels (the Kaggle CSV and submission format);
- ``xyxy_px``: top-left and bottom-right corners in pixels;
- ``cxcywh_norm``: centre x, y and width, height as fractions of the image width/height (YOLO labels).

Every array of boxes has shape ``(N, 4)`` and dtype float64; an empty set of boxes is ``(0, 4)``.
"""

from __future__ import annotations

import numpy as np

NATIVE_SIZE = 1024
"""Width and height in pixels of every RSNA challenge image (the frame of Kaggle boxes)."""

LABEL_DECIMALS = 6
"""Decimals written to YOLO label files: 1e-6 of 1024 px is 0.001 px, far under the 0.5 px budget."""


def as_boxes(boxes) -> np.ndarray:
    """Return ``boxes`` as a float64 ``(N, 4)`` array (an empty input gives ``(0, 4)``)."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    return arr.reshape(-1, 4)


def xywh_to_xyxy(boxes_xywh_px) -> np.ndarray:
    """``(N, 4)`` top-left/size boxes -> ``(N, 4)`` corner boxes.

    >>> xywh_to_xyxy([[10, 20, 30, 40]]).tolist()
    [[10.0, 20.0, 40.0, 60.0]]
    """
    b = as_boxes(boxes_xywh_px)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(boxes_xyxy_px) -> np.ndarray:
    """``(N, 4)`` corner boxes -> ``(N, 4)`` top-left/size boxes.

    >>> xyxy_to_xywh([[10, 20, 40, 60]]).tolist()
    [[10.0, 20.0, 30.0, 40.0]]
    """
    b = as_boxes(boxes_xyxy_px)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def clip_xywh(boxes_xywh_px, width: float, height: float) -> np.ndarray:
    """Clip ``(N, 4)`` boxes to the image ``[0, width] x [0, height]``; sizes may become 0.

    >>> clip_xywh([[-10, 1000, 50, 50]], 1024, 1024).tolist()
    [[0.0, 1000.0, 40.0, 24.0]]
    """
    xyxy = xywh_to_xyxy(boxes_xywh_px)
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
    return xyxy_to_xywh(xyxy)


def xywh_px_to_cxcywh_norm(boxes_xywh_px, width: float, height: float) -> np.ndarray:
    """Pixel top-left/size boxes -> YOLO normalised centre/size, in an image of ``width x height``.

    >>> xywh_px_to_cxcywh_norm([[0, 0, 512, 256]], 1024, 1024).tolist()
    [[0.25, 0.125, 0.5, 0.25]]
    """
    b = as_boxes(boxes_xywh_px)
    frame = np.array([width, height, width, height], dtype=np.float64)
    return np.concatenate([b[:, :2] + b[:, 2:] / 2, b[:, 2:]], axis=1) / frame


def cxcywh_norm_to_xywh_px(boxes_cxcywh_norm, width: float, height: float) -> np.ndarray:
    """YOLO normalised centre/size -> pixel top-left/size boxes (inverse of the above).

    >>> cxcywh_norm_to_xywh_px([[0.25, 0.125, 0.5, 0.25]], 1024, 1024).tolist()
    [[0.0, 0.0, 512.0, 256.0]]
    """
    b = as_boxes(boxes_cxcywh_norm)
    frame = np.array([width, height, width, height], dtype=np.float64)
    px = b * frame
    return np.concatenate([px[:, :2] - px[:, 2:] / 2, px[:, 2:]], axis=1)


def scale_about_centre(boxes_xywh_px, box_scale: float) -> np.ndarray:
    """Shrink (``box_scale < 1``) or grow each box about its centre; the centre does not move (the "box
    scale" tuned by rescoring; not the PNG scale of ``manifest.csv``).

    >>> scale_about_centre([[100, 100, 100, 50]], 0.8).tolist()
    [[110.0, 105.0, 80.0, 40.0]]
    """
    b = as_boxes(boxes_xywh_px)
    centre = b[:, :2] + b[:, 2:] / 2
    size = b[:, 2:] * box_scale
    return np.concatenate([centre - size / 2, size], axis=1)


def rsna_boxes_to_yolo(boxes_xywh_px, width: float, height: float, cls: int = 0) -> list[str]:
    """Kaggle boxes in an image of ``width x height`` source pixels -> YOLO label lines.

    Boxes are clipped to the image first; a box with no area left inside it is dropped (it could not
    be trained on). Coordinates carry ``LABEL_DECIMALS`` decimals.

    >>> rsna_boxes_to_yolo([[264, 152, 213, 379]], 1024, 1024)
    ['0 0.361816 0.333496 0.208008 0.370117']
    """
    clipped = clip_xywh(boxes_xywh_px, width, height)
    keep = (clipped[:, 2] > 0) & (clipped[:, 3] > 0)
    norm = xywh_px_to_cxcywh_norm(clipped[keep], width, height)
    fmt = f"{{:.{LABEL_DECIMALS}f}}"
    return [" ".join([str(cls), *(fmt.format(v) for v in row)]) for row in norm]
