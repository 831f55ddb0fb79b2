"""The figures of the EDA report: one function per figure, each taking frames (and arrays) computed by
:mod:`analysis.reports.eda_stats` and returning a matplotlib :class:`~matplotlib.figure.Figure` (not drawn on
pyplot's global state, so reports can be built in threads and tests).

Also the report's class colours (:data:`CLASS_COLOURS`) and short class names (:data:`SHORT_CLASS`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.reports.eda_stats import AGE_OUTLIER, SHARE_COLUMN, load_gray, pick_per_class, share_table
from rsna_yolo.core.boxes import NATIVE_SIZE
from rsna_yolo.core.layout import BOX_COLUMNS, CLASSES, LUNG_OPACITY, NORMAL, NOT_NORMAL

CLASS_COLOURS = {LUNG_OPACITY: "#d62728", NOT_NORMAL: "#ff7f0e", NORMAL: "#2ca02c"}
SHORT_CLASS = {LUNG_OPACITY: "Lung Opacity", NOT_NORMAL: "No LO / Not Normal", NORMAL: "Normal"}
"""Class names short enough for an axis label."""


def _bar_labels(ax, bars, fmt: Callable[[float], str] = lambda v: f"{v:,.0f}") -> None:
    for bar in bars:
        ax.annotate(
            fmt(bar.get_height()),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )


def fig_classes(patients: pd.DataFrame) -> Figure:
    """Patients per class (coloured by Target) and boxes per positive image."""
    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.2, 1])
    p = patients[patients["class"].notna()]
    counts = p["class"].value_counts().reindex(CLASSES).fillna(0)
    bars = ax1.bar(
        [SHORT_CLASS[c] for c in CLASSES], counts.values, color=[CLASS_COLOURS[c] for c in CLASSES]
    )
    _bar_labels(ax1, bars)
    for bar, cls in zip(bars, CLASSES, strict=True):
        t = p.loc[p["class"] == cls, "Target"]
        if len(t):
            ax1.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height() / 2,
                f"Target={int(t.mode()[0])}",
                ha="center",
                color="white",
                fontsize=9,
                fontweight="bold",
            )
    ax1.set_title("Patients per class")
    ax1.set_ylabel("patients")
    pos = p[p["Target"] == 1]["n_boxes"].astype(int).value_counts().sort_index()
    bars = ax2.bar(pos.index.astype(str), pos.values, color=CLASS_COLOURS[LUNG_OPACITY])
    _bar_labels(ax2, bars)
    ax2.set_title("Boxes per Lung Opacity image")
    ax2.set_xlabel("boxes in the image")
    ax2.set_ylabel("patients")
    for ax in (ax1, ax2):
        ax.margins(y=0.12)
    return fig


def fig_box_geometry(geom: pd.DataFrame) -> Figure:
    """Histograms of box width, height, area and aspect ratio (source pixels)."""
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    specs = [
        ("width", "box width (px)", 40, False),
        ("height", "box height (px)", 40, False),
        (
            "area",
            "box area (px², log scale)",
            np.geomspace(max(geom["area"].min(), 1), geom["area"].max(), 40),
            True,
        ),
        ("aspect", "aspect ratio height / width", 40, False),
    ]
    for ax, (col, label, bins, logx) in zip(axes, specs, strict=True):
        values = geom[col].to_numpy()
        ax.hist(values, bins=bins, color="#1f77b4", edgecolor="white", linewidth=0.4)
        med = float(np.median(values))
        ax.axvline(med, color="black", linestyle="--", linewidth=1)
        ax.text(
            med,
            ax.get_ylim()[1] * 0.92,
            f" median {med:,.0f}" if med >= 100 else f" median {med:.3g}",
            fontsize=8,
        )
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("boxes")
    sizes = sorted({f"{int(w)} x {int(h)}" for w, h in zip(geom["frame_w"], geom["frame_h"], strict=True)})
    frames = sizes[0] if len(sizes) == 1 else f"{len(sizes)} image sizes"
    fig.suptitle(f"Box geometry ({len(geom):,} boxes in source pixels, images {frames})")
    return fig


def fig_coverage(heat: np.ndarray, geom: pd.DataFrame, n_positive: int) -> Figure:
    """Heatmap of box coverage over the frame, and left/right box counts."""
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.4, 1])
    share = 100 * heat / max(n_positive, 1)
    im = ax1.imshow(share, extent=(0, NATIVE_SIZE, NATIVE_SIZE, 0), cmap="magma")
    ax1.axvline(NATIVE_SIZE / 2, color="white", linestyle=":", linewidth=1)
    ax1.set_title("Box coverage over the 1024-px frame")
    ax1.set_xlabel("x (px)   ← image left = patient's right")
    ax1.set_ylabel("y (px)")
    fig.colorbar(im, ax=ax1, label="boxes covering the spot per 100 positive images")
    sides = geom["side"].value_counts().reindex(["image left", "image right"]).fillna(0)
    bars = ax2.bar(
        ["image left\n(patient's right lung)", "image right\n(patient's left lung)"],
        sides.values,
        color=["#9467bd", "#17becf"],
    )
    _bar_labels(ax2, bars, lambda v: f"{v:,.0f} ({100 * v / max(sides.sum(), 1):.0f}%)")
    ax2.set_title("Boxes by side (centre x < 512 = image left)")
    ax2.set_ylabel("boxes")
    ax2.margins(y=0.12)
    return fig


def fig_headers(patients: pd.DataFrame) -> Figure:
    """Age per class (outliers marked), and Lung Opacity share by sex and by view position."""
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[1.6, 1, 1])
    p = patients[patients["class"].notna()]
    age = p["PatientAge"].astype("Float64")
    bins = np.arange(0, 101, 5)
    for cls in CLASSES:
        a = age[(p["class"] == cls) & age.notna() & (age <= AGE_OUTLIER)].to_numpy(dtype=float)
        if len(a):
            ax1.hist(
                a,
                bins=bins,
                histtype="step",
                linewidth=1.6,
                color=CLASS_COLOURS[cls],
                label=f"{SHORT_CLASS[cls]} (n={len(a):,})",
            )
    n_out = int((age > AGE_OUTLIER).fillna(False).sum())
    hidden = f" ({n_out} outlier{'s' * (n_out != 1)} > {AGE_OUTLIER} y not shown)" if n_out else ""
    ax1.set_title(f"Age by class{hidden}")
    ax1.set_xlabel("PatientAge (years)")
    ax1.set_ylabel("patients")
    ax1.legend(fontsize=8)
    for ax, col in ((ax2, "PatientSex"), (ax3, "ViewPosition")):
        t = share_table(p, col)
        bottoms = np.zeros(len(t))
        for cls in CLASSES:
            if cls in t:
                frac = 100 * t[cls].to_numpy() / t["images"].to_numpy()
                ax.bar(
                    t.index.astype(str),
                    frac,
                    bottom=bottoms,
                    color=CLASS_COLOURS[cls],
                    label=SHORT_CLASS[cls],
                )
                bottoms += frac
        for i, (n, lo) in enumerate(zip(t["images"], t[SHARE_COLUMN], strict=True)):
            ax.text(i, 101, f"n={n:,}\nLO {lo:.0f}%", ha="center", va="bottom", fontsize=8)
        ax.set_ylim(0, 122)
        ax.set_ylabel("% of images")
        ax.set_title(f"Class mix by {col}")
    ax3.legend(fontsize=7, loc="lower right")
    return fig


def fig_intensity(hist: dict[str, np.ndarray], means: pd.DataFrame) -> Figure:
    """Mean grey-level histogram per class and the per-image mean intensity per class."""
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.5, 1])
    for cls in CLASSES:
        if cls in hist:
            n = int((means["class"] == cls).sum())
            ax1.plot(
                np.arange(256), 100 * hist[cls], color=CLASS_COLOURS[cls], label=f"{SHORT_CLASS[cls]} (n={n})"
            )
    ax1.set_xlabel("grey level (0-255)")
    ax1.set_ylabel("% of pixels (log scale)")
    ax1.set_yscale("log")
    ax1.set_title("Pixel intensity distribution per class (mean over images)")
    ax1.legend(fontsize=8)
    present = [c for c in CLASSES if (means["class"] == c).any()]
    data = [means.loc[means["class"] == c, "mean"].to_numpy() for c in present]
    bp = ax2.boxplot(data, patch_artist=True, showfliers=True)
    for patch, cls in zip(bp["boxes"], present, strict=True):
        patch.set_facecolor(CLASS_COLOURS[cls])
        patch.set_alpha(0.6)
    ax2.set_xticks(range(1, len(present) + 1), [SHORT_CLASS[c] for c in present], fontsize=8)
    ax2.set_ylabel("mean grey level of the image")
    ax2.set_title("Image brightness per class")
    return fig


def fig_samples(patients: pd.DataFrame, boxes: pd.DataFrame, per_class: int, *, thumb: int = 320) -> Figure:
    """A grid of sample images, one row per class, with their ground-truth boxes drawn in red."""
    picked = pick_per_class(patients, per_class, seed=1)
    n_cols = max(1, max(len(v) for v in picked.values()))
    fig = Figure(figsize=(2.7 * n_cols, 2.9 * len(CLASSES)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(CLASSES), n_cols, squeeze=False))
    ids = {pid for rows in picked.values() for pid in rows["patientId"]}
    mine = boxes[boxes["patientId"].isin(ids)]  # grouping all 9,555 boxes would take seconds
    by_pid = {pid: g[list(BOX_COLUMNS)].to_numpy(float) for pid, g in mine.groupby("patientId")}
    for r, cls in enumerate(CLASSES):
        rows = list(picked[cls].itertuples())
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(rows):
                ax.axis("off")
                continue
            row = rows[c]
            img = load_gray(row.image, max_side=thumb)
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
            source_w = row.cols if pd.notna(getattr(row, "cols", np.nan)) else NATIVE_SIZE
            f = img.shape[1] / float(source_w)  # thumbnail pixels per source pixel
            for x, y, w, h in by_pid.get(row.patientId, np.zeros((0, 4))):
                ax.add_patch(_rect(x * f, y * f, w * f, h * f))
            info = [
                str(row.ViewPosition) if pd.notna(row.ViewPosition) else "",
                f"{row.PatientAge} y" if pd.notna(row.PatientAge) else "",
                str(row.PatientSex) if pd.notna(row.PatientSex) else "",
            ]
            ax.set_title(f"{row.patientId[:8]}  {' '.join(i for i in info if i)}", fontsize=8)
            if c == 0:
                ax.set_ylabel(SHORT_CLASS[cls], fontsize=10, fontweight="bold")
    fig.suptitle("Sample images per class (ground-truth boxes in red)")
    return fig


def _rect(x, y, w, h, colour="red"):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=1.5)
