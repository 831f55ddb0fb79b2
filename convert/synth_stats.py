"""Comparing films: the grey-level distribution and texture of an 8-bit film, to compare synthetic and
real films (``scripts/synth_vs_real.py``, ``docs/synth_vs_real/``)."""

from __future__ import annotations

import cv2
import numpy as np

STAT_PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def intensity_stats(img: np.ndarray) -> dict[str, float]:
    """Summary of an 8-bit film ``(H, W)``: ``mean``, ``std``, ``p1`` .. ``p99`` (grey levels),
    ``frac_lt20`` / ``frac_gt235`` (fraction of near-black / near-white pixels), ``lap`` (mean absolute
    3x3 Laplacian at the film's own size: fine grain and edges) and ``lap256`` (the same after an area
    downsize to 256 px: structure such as ribs, vessels and edges, comparable across sizes).
    """
    img = np.asarray(img)
    if img.ndim != 2 or img.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 image, got {img.dtype} {img.shape}")
    f = img.astype(np.float32)
    small = cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)
    stats = {"mean": float(f.mean()), "std": float(f.std())}
    for q, value in zip(STAT_PERCENTILES, np.percentile(img, STAT_PERCENTILES), strict=True):
        stats[f"p{q}"] = float(value)
    stats["frac_lt20"] = float((img < 20).mean())
    stats["frac_gt235"] = float((img > 235).mean())
    stats["lap"] = float(np.abs(cv2.Laplacian(f, cv2.CV_32F)).mean())
    stats["lap256"] = float(np.abs(cv2.Laplacian(small, cv2.CV_32F)).mean())
    return stats
