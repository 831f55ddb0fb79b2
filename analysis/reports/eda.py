"""Exploratory data analysis of the RSNA data: the report and its computed observations.

Two inputs, one analysis: a Kaggle-layout folder or a converted dataset, read by
:func:`analysis.reports.eda_load.load` into an :class:`~analysis.reports.eda_load.EdaData` (one row per
patient, one row
per box in source pixels, ``xywh_px``). The numbers come from :mod:`analysis.reports.eda_stats`, the
figures from
:mod:`analysis.reports.eda_figures`; this module puts them in order: :func:`observations` writes the sentences
whose every number is computed, :func:`build_report` assembles the :class:`analysis.reports.report.Report`,
and
:func:`run_eda` is the whole command. On the complete real labels (30,227 rows) without images it takes
about a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.reports.eda_figures import (
    SHORT_CLASS,
    fig_box_geometry,
    fig_classes,
    fig_coverage,
    fig_headers,
    fig_intensity,
    fig_samples,
)
from analysis.reports.eda_load import EdaData, load
from analysis.reports.eda_stats import (
    AGE_OUTLIER,
    SHARE_COLUMN,
    age_outliers,
    box_geometry,
    boxes_in_native_frame,
    boxes_per_image,
    class_target_table,
    coverage_heatmap,
    intensity_histograms,
    proportion_difference_ci,
    share_table,
)
from analysis.reports.report import Report
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import CLASSES, LUNG_OPACITY, NORMAL, NOT_NORMAL


def observations(data: EdaData, geom: pd.DataFrame, means: pd.DataFrame | None) -> list[str]:
    """Sentences whose every number is computed from ``data``; a sentence is left out when its numbers
    cannot be computed (e.g. no headers)."""
    p = data.patients[data.patients["class"].notna()]
    out = []
    n, n_pos = len(p), int((p["Target"] == 1).sum())
    if n:
        counts = p["class"].value_counts()
        out.append(
            f"{n:,} labelled images: {n_pos:,} ({100 * n_pos / n:.1f}%) have pneumonia boxes; "
            + "; ".join(f"{c} {counts.get(c, 0):,} ({100 * counts.get(c, 0) / n:.1f}%)" for c in CLASSES)
            + "."
        )
        nlo, normal = counts.get(NOT_NORMAL, 0), counts.get(NORMAL, 0)
        if normal:
            out.append(
                f"Among negatives, abnormal-but-not-pneumonia images outnumber normal ones "
                f"{nlo / normal:.2f} to 1: the detector must learn to ignore other opacities."
                if nlo > normal
                else f"Among negatives, normal images outnumber abnormal-but-not-pneumonia ones "
                f"{normal / max(nlo, 1):.2f} to 1."
            )
    bad = data.checks[data.checks["violations"] > 0]
    held = data.checks[data.checks["violations"] == 0]
    out.append(
        f"{len(held)} of {len(data.checks)} consistency checks hold on every row"
        + (
            f"; failing: {'; '.join(f'{r.check} ({r.violations:,} rows)' for r in bad.itertuples())}."
            if len(bad)
            else "."
        )
    )
    if n_pos:
        nb = p.loc[p["Target"] == 1, "n_boxes"].astype(int)
        out.append(
            f"Positive images carry {nb.mean():.2f} boxes on average (max {nb.max()}); "
            f"{100 * (nb >= 2).mean():.1f}% have two or more, so missing the second lung costs recall."
        )
    if len(geom):
        w, h, a = geom["width"], geom["height"], geom["area"]
        q5, q95 = np.percentile(a, [5, 95])
        share = 100 * (a / (geom["frame_w"] * geom["frame_h"])).median()
        aspect, tall = geom["aspect"].median(), 100 * (geom["aspect"] > 1).mean()
        out.append(
            f"Median box {w.median():.0f} x {h.median():.0f} px ({share:.1f}% of the image); "
            f"90% of areas lie between {q5:,.0f} and {q95:,.0f} px²; "
            f"median height/width {aspect:.2f} (taller than wide in {tall:.0f}% of boxes)."
        )
        left = (geom["side"] == "image left").mean()
        n_left = int((geom["side"] == "image left").sum())
        out.append(
            f"{100 * left:.1f}% of box centres lie on the image left (patient's right lung), "
            f"{100 * (1 - left):.1f}% on the image right ({n_left:,} : {len(geom) - n_left:,}, "
            f"{n_left / max(len(geom) - n_left, 1):.2f} to 1)."
        )
        g = geom
        outside = int(
            ((g["cx"] < 0) | (g["cx"] > g["frame_w"]) | (g["cy"] < 0) | (g["cy"] > g["frame_h"])).sum()
        )
        past_x = (g["x"] < 0) | (g["x"] + g["width"] > g["frame_w"])
        crossing = int((past_x | (g["y"] < 0) | (g["y"] + g["height"] > g["frame_h"])).sum())
        out.append(
            f"{crossing:,} boxes extend past their image ({outside} with the centre outside); the converter "
            "clips them for YOLO labels and keeps the CSV values as the Kaggle truth."
            if crossing
            else f"All {len(geom):,} boxes lie inside their image, so clipping them for YOLO labels changes "
            "nothing."
        )
    if data.has_headers:
        hp = data.patients[data.patients["PatientAge"].notna()]  # test images have ages too
        if len(hp):
            age = hp["PatientAge"].astype(float)
            outl = age_outliers(data.patients)
            flagged = ", ".join(str(v) for v in sorted(outl["PatientAge"].astype(int)))
            out.append(
                f"Header ages: median {age.median():.0f} years (IQR {age.quantile(0.25):.0f}-"
                f"{age.quantile(0.75):.0f}) over {len(hp):,} images; "
                + (
                    f"{len(outl)} above {AGE_OUTLIER} years ({flagged}), flagged as implausible."
                    if len(outl)
                    else f"none above {AGE_OUTLIER} years."
                )
            )
        view = share_table(p, "ViewPosition") if p["ViewPosition"].notna().any() else None
        if view is not None and {"AP", "PA"} <= set(view.index):
            ap, pa = view.loc["AP", SHARE_COLUMN] / 100, view.loc["PA", SHARE_COLUMN] / 100
            n_ap, n_pa = int(view.loc["AP", "images"]), int(view.loc["PA", "images"])
            lo, hi = proportion_difference_ci(ap, n_ap, pa, n_pa)
            verdict = (
                "a clear difference, so the view is a strong prior "
                "(AP films are taken of patients too ill to stand)"
                if lo > 0 or hi < 0
                else "too few images to call it a difference"
            )
            out.append(
                f"{100 * ap:.1f}% of AP images are Lung Opacity against {100 * pa:.1f}% of PA images "
                f"(n = {n_ap:,} AP, {n_pa:,} PA; difference {100 * (ap - pa):+.1f} points, 95% CI "
                f"{100 * lo:+.1f} to {100 * hi:+.1f}): {verdict}."
            )
        sex = share_table(p, "PatientSex") if p["PatientSex"].notna().any() else None
        if sex is not None and len(sex) >= 2:
            parts = ", ".join(
                f"{s} {r[SHARE_COLUMN]:.1f}% (n={int(r['images']):,})" for s, r in sex.iterrows()
            )
            out.append(f"Lung Opacity share by sex: {parts}.")
    if means is not None and len(means):
        m = means.groupby("class")["mean"].agg(["mean", "count"])
        parts = ", ".join(
            f"{SHORT_CLASS[c]} {m.loc[c, 'mean']:.1f} (n={int(m.loc[c, 'count'])})"
            for c in CLASSES
            if c in m.index
        )
        out.append(f"Mean grey level per class: {parts}.")
    return out


# -------------------------------------------------------------------------------------------- report


def build_report(
    data: EdaData,
    out_dir: Path,
    *,
    samples_per_class: int = 4,
    max_pixel_images: int = 150,
    progress: bool = True,
) -> Report:
    """Compute every table and figure of the EDA into a :class:`Report` (figures saved to ``out_dir``)."""
    p = data.patients
    report = Report(f"RSNA pneumonia data: exploratory analysis ({data.kind} layout)", out_dir)
    report.text(f"Source: {data.source}")

    report.heading("Files and columns")
    report.table(data.files)
    for note in data.notes:
        report.text(note)
    for name, table in data.extra_tables.items():
        report.table(table, caption=name, index=True)

    report.heading("Missing values")
    report.text("Every empty field, where it occurs, why, and how the converter handles it.")
    report.table(data.missing)

    report.heading("Classes and Target")
    report.text(
        "Relations between the class file and the labels, checked on every row (0 violations = holds)."
    )
    report.table(data.checks)
    report.table(class_target_table(p), caption="Images per class and Target", index=True)
    report.table(boxes_per_image(p), caption="Images by number of boxes, per class", index=True)
    if "n_rows" in p:
        multi = p[p["n_rows"] > 1]
        per = ", ".join(f"{k} rows: {v:,}" for k, v in multi["n_rows"].value_counts().sort_index().items())
        report.text(
            f"{len(multi):,} patients have several label rows (one row per box), all "
            f"{LUNG_OPACITY if (multi['class'] == LUNG_OPACITY).all() else 'of mixed classes'}; "
            f"patients by rows: {per}."
        )
    report.figure(
        fig_classes(p), "classes", "Patients per class (with their Target) and boxes per positive image"
    )

    geom = box_geometry(data.boxes, p)
    if len(geom):
        report.heading("Box geometry")
        desc = geom[["width", "height", "area", "aspect"]].describe(percentiles=[0.05, 0.5, 0.95]).T
        report.table(
            desc.drop(columns=["count"]).round(2).rename_axis("measure"),
            caption=f"{len(geom):,} boxes (source pixels)",
            index=True,
        )
        report.figure(
            fig_box_geometry(geom), "box_geometry", "Width, height, area and aspect ratio of the boxes"
        )
        heat = coverage_heatmap(boxes_in_native_frame(geom))
        n_pos = int((p["Target"] == 1).sum())
        report.figure(
            fig_coverage(heat, geom, n_pos),
            "coverage",
            "Where boxes lie in the frame, and left versus right lung",
        )

    means = None
    if data.has_headers:
        report.heading("DICOM header fields against the class")
        hp = p[p["class"].notna()]
        age = hp.groupby("class")["PatientAge"].describe()[["count", "mean", "min", "50%", "max"]]
        report.table(age.round(1), caption="PatientAge (years) per class", index=True)
        outl = age_outliers(p)
        report.table(
            outl if len(outl) else pd.DataFrame({"result": [f"no age above {AGE_OUTLIER}"]}),
            caption=f"Age outliers (> {AGE_OUTLIER} years)",
        )
        for col in ("PatientSex", "ViewPosition"):
            if hp[col].notna().any():
                report.table(share_table(hp, col).round(1), caption=f"{col} against class", index=True)
        report.figure(fig_headers(p), "headers", "Age by class; class mix by sex and by view position")

    if data.has_images:
        report.heading("Pixels")
        hist, means = intensity_histograms(p, max_pixel_images, progress=progress)
        if len(means):
            report.text(
                f"Intensity statistics from {len(means)} images (up to {max_pixel_images} per class)."
            )
            report.figure(fig_intensity(hist, means), "intensity", "Pixel intensity per class")
        report.figure(
            fig_samples(p, data.boxes, samples_per_class),
            "samples",
            "Sample images per class with their boxes",
        )

    report.heading("Observations")
    report.bullets(observations(data, geom, means))
    return report


def run_eda(
    src: Path, out: Path, *, samples_per_class: int = 4, max_pixel_images: int = 150, progress: bool = True
) -> dict[str, Path]:
    """Load ``src``, write ``report.md``, ``report.html`` and PNG figures into ``out``; returns the paths."""
    if samples_per_class < 1 or max_pixel_images < 1:
        raise UserError(
            f"--samples-per-class and --max-pixel-images must be at least 1 "
            f"(got {samples_per_class} and {max_pixel_images})"
        )
    data = load(Path(src), progress=progress)
    report = build_report(
        data,
        Path(out),
        samples_per_class=samples_per_class,
        max_pixel_images=max_pixel_images,
        progress=progress,
    )
    return report.write()
