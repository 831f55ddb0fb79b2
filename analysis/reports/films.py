"""Films with their boxes drawn, for a person to look at: ``analysis predict`` and ``analysis show`` of a
submission.

- :func:`load_film` -> a DICOM or PNG as an 8-bit image whose longer side is ``size`` px, and its PNG scale
  (pixels of that image per source pixel), so that a box in source pixels lands at ``box * png_scale``;
- :func:`annotate` draws boxes on it with OpenCV, pixel-exact (no resampling after drawing): kept boxes
  solid red with their confidence, boxes the gate removed dashed grey, a title strip along the top;
- :func:`add_card` adds an annotated PNG written beside a :class:`~analysis.reports.report.Report` as one
  card (a ``<figure>`` of the self-contained HTML page) with its caption.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from rsna_yolo.core.images import resize_longer_side
from rsna_yolo.core.io import write_atomic

DRAW_SIZE = 640
"""Longer side (px) of an annotated film: boxes and confidences readable, a page of dozens still light."""
KEPT_BGR = (0, 0, 255)
"""Kept boxes: pure red, a colour a grey film never has, so a drawn box is found by its colour."""
REMOVED_BGR = (160, 160, 160)
"""Boxes the gate removed: grey, dashed."""
TITLE_HEIGHT = 22
"""Height (px) of the title strip drawn over the top of the film (its coordinates stay the film's)."""


def load_film(
    path: str | Path, size: int = DRAW_SIZE, png_scales: Mapping[str, float] | None = None
) -> tuple[np.ndarray, float]:
    """``(gray (h, w) uint8 with max(h, w) == size, png_scale)`` of a DICOM (decoded like the converter,
    :func:`rsna_yolo.core.films.load_image`) or a PNG (its source frame from ``png_scales``, the
    manifest's PNG scale, else ``NATIVE_SIZE`` px on its longer side). Raises when it cannot be read."""
    from rsna_yolo.core.films import load_image

    img, png_scale = load_image(Path(path), size, png_scales)  # a DICOM comes resized to ``size`` already
    if Path(path).suffix.lower() == ".dcm":
        return img, png_scale
    return resize_longer_side(img, size), png_scale * size / max(img.shape)


def _corners(box_xywh: np.ndarray, png_scale: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """Top-left and bottom-right pixel of a source-pixel ``x, y, w, h`` box on the film."""
    x, y, w, h = (float(v) * png_scale for v in box_xywh)
    return (round(x), round(y)), (round(x + w), round(y + h))


def _dashed_rectangle(img: np.ndarray, p1, p2, colour, dash: int = 6) -> None:
    (x1, y1), (x2, y2) = p1, p2
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for start in range(0, max(length, 1), 2 * dash):
            end = min(start + dash, length)
            t0, t1 = start / max(length, 1), end / max(length, 1)
            q0 = (round(a[0] + (b[0] - a[0]) * t0), round(a[1] + (b[1] - a[1]) * t0))
            q1 = (round(a[0] + (b[0] - a[0]) * t1), round(a[1] + (b[1] - a[1]) * t1))
            cv2.line(img, q0, q1, colour, 1, cv2.LINE_4)


def annotate(
    gray: np.ndarray,
    png_scale: float,
    boxes_xywh_px: np.ndarray,
    confs: Sequence[float],
    removed_xywh_px: np.ndarray | None = None,
    title: str = "",
) -> np.ndarray:
    """The film ``gray (h, w)`` as BGR ``(h, w, 3)`` uint8 with ``boxes_xywh_px (N, 4)`` (source pixels,
    drawn at ``box * png_scale``) as 2-px red rectangles labelled with their confidence, ``removed_xywh_px
    (M, 4)`` as dashed grey ones, and ``title`` on a dark strip along the top. Kept boxes are drawn last, so
    their edges are red wherever they are."""
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if title:
        strip = img[:TITLE_HEIGHT]
        strip[:] = (strip * 0.35).astype(np.uint8)  # darkened, the film still shows through
        cv2.putText(img, title, (4, TITLE_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                    cv2.LINE_AA)  # fmt: skip
    for box in np.asarray(removed_xywh_px if removed_xywh_px is not None else [], float).reshape(-1, 4):
        _dashed_rectangle(img, *_corners(box, png_scale), REMOVED_BGR)
    boxes = np.asarray(boxes_xywh_px, float).reshape(-1, 4)
    corners = [_corners(b, png_scale) for b in boxes]
    for (p1, _), conf in zip(corners, confs, strict=True):  # labels first: none hides a box edge
        label = f"{float(conf):.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = p1[1] - th - base - 2 if p1[1] - th - base - 2 >= 0 else p1[1] + 2
        cv2.rectangle(img, (p1[0], top), (p1[0] + tw + 2, top + th + base + 1), KEPT_BGR, -1)
        cv2.putText(img, label, (p1[0] + 1, top + th), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)  # fmt: skip
    for p1, p2 in corners:
        cv2.rectangle(img, p1, p2, KEPT_BGR, 2, cv2.LINE_4)
    return img


def write_png(path: str | Path, picture: np.ndarray) -> Path:
    """Write an annotated film (BGR uint8) as a lossless PNG, atomically
    (:func:`rsna_yolo.core.io.write_atomic`)."""
    ok, buf = cv2.imencode(".png", picture)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the picture as PNG")
    return write_atomic(path, buf.tobytes())


def add_card(report, png: Path, caption: str) -> None:
    """Add the PNG ``png`` (written inside ``report.out_dir``) to ``report`` as one card: a figure block
    (the same block :meth:`Report.figure` adds for a matplotlib figure; embedded in the HTML page, linked
    from the markdown by its path relative to ``out_dir``)."""
    name = Path(png).resolve().relative_to(Path(report.out_dir).resolve()).as_posix()
    report.figures.append(Path(png))
    report.blocks.append(("figure", (name, caption)))
