"""The numbers of the EDA report: pure functions of the :class:`~analysis.reports.eda_load.EdaData` frames,
plus the
pixel statistics that read a sample of images.

- box geometry (:func:`box_geometry`, :func:`boxes_in_native_frame`, :func:`coverage_heatmap`);
- counts per class (:func:`class_target_table`, :func:`boxes_per_image`, :func:`share_table`) and
  implausible header ages (:func:`age_outliers`);
- a confidence interval for a difference of two shares (:func:`proportion_difference_ci`);
- grey levels per class from up to N images each (:func:`intensity_histograms`, reading through
  :func:`load_gray`, drawing with :func:`pick_per_class`).

Frames: ``patients`` one row per image (``patientId, class, Target, n_boxes`` and, when known, the header
values and ``image``), ``boxes`` one row per box (``patientId, x, y, width, height``, source pixels).
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from rsna_yolo.core.boxes import NATIVE_SIZE
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.dicom import DicomError, dicom_to_uint8, read_dicom
from rsna_yolo.core.layout import BOX_COLUMNS, CLASSES, POSITIVE_CLASS

AGE_OUTLIER = 100
"""Ages above this many years are flagged as implausible (the labels hold a few of 148-155)."""
HEATMAP_CELL = 4
"""Coverage heatmap cell size in source pixels: a 256 x 256 grid over the 1024-px frame."""
SHARE_COLUMN = f"{POSITIVE_CLASS} %"
"""The column of :func:`share_table` holding the share of Lung Opacity images (%)."""


def box_geometry(boxes: pd.DataFrame, patients: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per box: ``width, height, area`` (px, px²), ``aspect`` (height / width), centre ``cx, cy``, the
    image's ``frame_w, frame_h`` (its header ``cols, rows`` when ``patients`` knows them, else 1024) and
    ``side`` ("image left" when ``cx < frame_w / 2``: the patient's right lung on a chest radiograph)."""
    b = boxes[list(BOX_COLUMNS)].astype(float)
    frame_w = np.full(len(b), float(NATIVE_SIZE))
    frame_h = np.full(len(b), float(NATIVE_SIZE))
    if patients is not None and {"rows", "cols"} <= set(patients.columns):
        dims = patients.set_index("patientId")[["cols", "rows"]].apply(pd.to_numeric, errors="coerce")
        dims = dims.reindex(boxes["patientId"]).to_numpy(float)
        frame_w = np.where(np.isnan(dims[:, 0]), frame_w, dims[:, 0])
        frame_h = np.where(np.isnan(dims[:, 1]), frame_h, dims[:, 1])
    cx = (b["x"] + b["width"] / 2).to_numpy()
    return pd.DataFrame(
        {
            "patientId": boxes["patientId"].values,
            "x": b["x"].values,
            "y": b["y"].values,
            "width": b["width"].values,
            "height": b["height"].values,
            "area": (b["width"] * b["height"]).values,
            "aspect": (b["height"] / b["width"]).values,
            "cx": cx,
            "cy": (b["y"] + b["height"] / 2).values,
            "frame_w": frame_w,
            "frame_h": frame_h,
            "side": np.where(cx < frame_w / 2, "image left", "image right"),
        }
    )


def boxes_in_native_frame(geom: pd.DataFrame) -> np.ndarray:
    """``(N, 4)`` xywh boxes of :func:`box_geometry` rescaled into the 1024-px frame (a no-op for RSNA)."""
    f = np.stack([NATIVE_SIZE / geom["frame_w"], NATIVE_SIZE / geom["frame_h"]] * 2, axis=1)
    return geom[list(BOX_COLUMNS)].to_numpy(float) * f


def coverage_heatmap(
    boxes_xywh_px: np.ndarray, size: int = NATIVE_SIZE, cell: int = HEATMAP_CELL
) -> np.ndarray:
    """Count of boxes covering each ``cell x cell`` pixel cell of a ``size``-px frame: ``(size//cell,)*2``.

    A cell counts when its centre lies inside the box (boxes are clipped to the frame). Uses a 2-D
    difference array, so the cost does not grow with box area.

    >>> coverage_heatmap(np.array([[0, 0, 8, 4], [4, 0, 4, 4]]), size=16, cell=4)[:2, :3].tolist()
    [[1, 2, 0], [0, 0, 0]]
    """
    n = size // cell
    diff = np.zeros((n + 1, n + 1), dtype=np.int64)
    b = np.asarray(boxes_xywh_px, dtype=np.float64).reshape(-1, 4)
    # Cell i has centre (i + 0.5) * cell, inside [x0, x1) exactly when
    # ceil(x0 / cell - 0.5) <= i < ceil(x1 / cell - 0.5).
    x0 = np.clip(np.ceil(b[:, 0] / cell - 0.5), 0, n).astype(int)
    y0 = np.clip(np.ceil(b[:, 1] / cell - 0.5), 0, n).astype(int)
    x1 = np.clip(np.ceil((b[:, 0] + b[:, 2]) / cell - 0.5), 0, n).astype(int)
    y1 = np.clip(np.ceil((b[:, 1] + b[:, 3]) / cell - 0.5), 0, n).astype(int)
    np.add.at(diff, (y0, x0), 1)
    np.add.at(diff, (y0, x1), -1)
    np.add.at(diff, (y1, x0), -1)
    np.add.at(diff, (y1, x1), 1)
    return diff.cumsum(axis=0).cumsum(axis=1)[:n, :n]


def class_target_table(patients: pd.DataFrame) -> pd.DataFrame:
    """Patients per class and Target (crosstab with totals)."""
    p = patients[patients["class"].notna()]
    return pd.crosstab(p["class"], p["Target"].astype(int).rename("Target"), margins=True, margins_name="all")


def boxes_per_image(patients: pd.DataFrame) -> pd.DataFrame:
    """Patients by number of boxes, per class: rows ``n_boxes`` 0..max, one column per class."""
    p = patients[patients["class"].notna()]
    return pd.crosstab(p["n_boxes"].astype(int), p["class"])


def age_outliers(patients: pd.DataFrame, limit: int = AGE_OUTLIER) -> pd.DataFrame:
    """Patients whose header age exceeds ``limit`` years: ``patientId, PatientAge, class``."""
    if "PatientAge" not in patients:
        return pd.DataFrame(columns=["patientId", "PatientAge", "class"])
    age = patients["PatientAge"].astype("Float64")
    return patients.loc[(age > limit).fillna(False), ["patientId", "PatientAge", "class"]].reset_index(
        drop=True
    )


def share_table(patients: pd.DataFrame, field_name: str) -> pd.DataFrame:
    """For a header field (``PatientSex``, ``ViewPosition``): images per value and class, plus the share
    of Lung Opacity (%) among that value's images."""
    p = patients[patients["class"].notna() & patients[field_name].notna()]
    table = pd.crosstab(p[field_name], p["class"])
    table["images"] = table.sum(axis=1)
    lo = table.get(POSITIVE_CLASS, 0)
    table[SHARE_COLUMN] = 100 * lo / table["images"]
    return table


def proportion_difference_ci(p1: float, n1: int, p2: float, n2: int, z: float = 1.96) -> tuple[float, float]:
    """Normal-approximation confidence interval of ``p1 - p2`` for two proportions from ``n1``, ``n2`` trials.

    >>> [round(v, 3) for v in proportion_difference_ci(0.5, 100, 0.3, 100)]
    [0.067, 0.333]
    """
    se = np.sqrt(p1 * (1 - p1) / max(n1, 1) + p2 * (1 - p2) / max(n2, 1))
    d = p1 - p2
    return float(d - z * se), float(d + z * se)


def load_gray(path: str, max_side: int | None = None) -> np.ndarray:
    """An image file (DICOM or PNG) as ``(H, W)`` uint8, optionally downscaled so its longer side is
    ``max_side`` (area interpolation)."""
    if path.lower().endswith(".dcm"):
        img = dicom_to_uint8(read_dicom(path))
    else:
        img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise UserError(f"{path}: cannot read image")
    if max_side and max(img.shape) > max_side:
        f = max_side / max(img.shape)
        img = cv2.resize(
            img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA
        )
    return img


def pick_per_class(patients: pd.DataFrame, n: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Up to ``n`` patients with an image per class, drawn reproducibly (positives with most boxes first
    would bias the picture; a seeded random draw does not)."""
    have = patients[(patients["image"].fillna("") != "") & patients["class"].notna()]
    out = {}
    for cls in CLASSES:
        rows = have[have["class"] == cls]
        out[cls] = rows.sample(min(n, len(rows)), random_state=seed) if len(rows) else rows
    return out


def intensity_histograms(patients: pd.DataFrame, max_per_class: int, *, progress: bool = True):
    """Pixel-intensity statistics per class from up to ``max_per_class`` images each.

    Returns ``(hist, means)``: ``hist[class]`` is the mean normalised 256-bin histogram ``(256,)``;
    ``means`` has one row per image read: ``patientId, class, mean, std`` (0..255 grey levels).
    """
    picked = pick_per_class(patients, max_per_class)
    todo = [(cls, row) for cls, rows in picked.items() for row in rows.itertuples()]
    hist: dict[str, np.ndarray] = {}
    stats = []
    for cls, row in tqdm(todo, desc="pixels", unit="img", disable=not progress or len(todo) < 50):
        try:
            img = load_gray(row.image, max_side=512)
        except (DicomError, UserError):
            continue
        h = np.bincount(img.ravel(), minlength=256).astype(np.float64)
        hist[cls] = hist.get(cls, np.zeros(256)) + h / h.sum()
        stats.append((row.patientId, cls, float(img.mean()), float(img.std())))
    means = pd.DataFrame(stats, columns=["patientId", "class", "mean", "std"])
    counts = means["class"].value_counts()
    return {c: h / counts[c] for c, h in hist.items()}, means
