"""Exploratory data analysis of the RSNA data: numbers, checks, figures and computed observations.

Two inputs, one analysis:

- a Kaggle-layout folder (``stage_2_train_labels.csv``, ``stage_2_detailed_class_info.csv`` and, when
  present, ``stage_2_train_images/*.dcm``): :func:`load_kaggle`;
- a converted dataset (``manifest.csv`` + ``boxes.csv``, see docs/ARCHITECTURE.md): :func:`load_converted`.

Both give an :class:`EdaData`: one row per patient (``patients``) and one row per box (``boxes``, source
pixels, ``xywh_px``). The statistics are pure functions of those frames; :func:`build_report` turns them
into a :class:`analysis.report.Report`, and :func:`run_eda` is the whole command. On the complete real
labels (30,227 rows) without images it takes about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm import tqdm

from analysis.report import Report
from core.boxes import NATIVE_SIZE
from core.cli import UserError
from core.dicom import DicomError, dicom_to_uint8, header_metadata, read_dicom
from core.labels import CLASS_FILES, LABEL_FILES, Skip, find_csv, read_labels

LABELS_CSV = "stage_2_train_labels.csv"
CLASS_CSV = "stage_2_detailed_class_info.csv"
TRAIN_DICOM_DIR = "stage_2_train_images"
TEST_DICOM_DIR = "stage_2_test_images"
BOX_COLUMNS = ["x", "y", "width", "height"]
CLASSES = ("Lung Opacity", "No Lung Opacity / Not Normal", "Normal")
CLASS_COLOURS = {"Lung Opacity": "#d62728", "No Lung Opacity / Not Normal": "#ff7f0e", "Normal": "#2ca02c"}
SHORT_CLASS = {
    "Lung Opacity": "Lung Opacity",
    "No Lung Opacity / Not Normal": "No LO / Not Normal",
    "Normal": "Normal",
}
AGE_OUTLIER = 100
"""Ages above this many years are flagged as implausible (the labels hold a few of 148-155)."""
HEATMAP_CELL = 4
"""Coverage heatmap cell size in source pixels: a 256 x 256 grid over the 1024-px frame."""


@dataclass
class EdaData:
    """Everything the report is computed from.

    ``patients``: one row per image: ``patientId, class, Target, n_boxes`` and, when known,
    ``PatientAge, PatientSex, ViewPosition, rows, cols, image`` (path of a DICOM/PNG or ``""``),
    ``scale`` (image pixels per source pixel) and ``split`` (converted datasets).
    ``boxes``: one row per box, ``patientId, x, y, width, height`` in source pixels.
    """

    kind: str
    source: Path
    patients: pd.DataFrame
    boxes: pd.DataFrame
    files: pd.DataFrame
    missing: pd.DataFrame
    checks: pd.DataFrame
    extra_tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def has_headers(self) -> bool:
        """True when at least one image's DICOM header values are known."""
        cols = ["PatientAge", "PatientSex", "ViewPosition"]
        return all(c in self.patients for c in cols) and self.patients[cols].notna().any().any()

    @property
    def has_images(self) -> bool:
        """True when at least one patient has a readable image file."""
        return "image" in self.patients and (self.patients["image"].fillna("") != "").any()


# ----------------------------------------------------------------------------------------- loading


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    """Read a CSV as text-safe columns (patientId as str); one-line error naming a missing column."""
    if not path.exists():
        raise UserError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, dtype={"patientId": str, "class": str})
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def kaggle_checks(labels: pd.DataFrame, classes: pd.DataFrame) -> pd.DataFrame:
    """Check the relations between the raw label rows ``labels`` and class rows ``classes``.

    Returns one row per statement: ``check``, ``rows checked``, ``violations`` (0 when it holds).
    """
    has_box = labels[BOX_COLUMNS].notna().all(axis=1)
    no_box = labels[BOX_COLUMNS].isna().all(axis=1)
    aligned = (
        len(labels) == len(classes) and (labels["patientId"].values == classes["patientId"].values).all()
    )
    merged = labels.assign(**{"class": classes["class"].values}) if aligned else None
    rows = [
        (
            "the class file is row-aligned with the labels file (same patientId on every row)",
            len(labels),
            0 if aligned else int(max(len(labels), len(classes))),
        ),
        (
            "every Target=1 row has all four box fields",
            int((labels["Target"] == 1).sum()),
            int(((labels["Target"] == 1) & ~has_box).sum()),
        ),
        (
            "every Target=0 row has all four box fields empty",
            int((labels["Target"] == 0).sum()),
            int(((labels["Target"] == 0) & ~no_box).sum()),
        ),
        ("Target is 0 or 1", len(labels), int((~labels["Target"].isin([0, 1])).sum())),
        (
            "one Target per patient",
            labels["patientId"].nunique(),
            int((labels.groupby("patientId")["Target"].nunique() > 1).sum()),
        ),
    ]
    if merged is not None:
        lo = merged["class"] == "Lung Opacity"
        rows += [
            ("every Lung Opacity row has Target=1", int(lo.sum()), int((lo & (merged["Target"] != 1)).sum())),
            (
                "every Target=1 row is Lung Opacity",
                int((merged["Target"] == 1).sum()),
                int(((merged["Target"] == 1) & ~lo).sum()),
            ),
            (
                "every Normal and No Lung Opacity / Not Normal row has Target=0",
                int((~lo).sum()),
                int((~lo & (merged["Target"] != 0)).sum()),
            ),
            ("only the three known classes occur", len(merged), int((~merged["class"].isin(CLASSES)).sum())),
            (
                "one class per patient",
                merged["patientId"].nunique(),
                int((merged.groupby("patientId")["class"].nunique() > 1).sum()),
            ),
            (
                "patients with several rows are all Lung Opacity with one box per row",
                int((merged.groupby("patientId").size() > 1).sum()),
                int(
                    (
                        (merged.groupby("patientId").size() > 1)
                        & (
                            (merged.groupby("patientId")["class"].first() != "Lung Opacity")
                            | ~has_box.groupby(merged["patientId"]).all()
                        )
                    ).sum()
                ),
            ),
        ]
    return pd.DataFrame(rows, columns=["check", "rows checked", "violations"])


def kaggle_missing(
    labels: pd.DataFrame,
    classes: pd.DataFrame,
    patients: pd.DataFrame,
    dicom_dir: Path | None,
    label_file: str = LABELS_CSV,
    class_file: str = CLASS_CSV,
) -> pd.DataFrame:
    """The missing-values table of a Kaggle-layout folder: which fields are empty, in which rows, why, and
    what the converter does (its rules are in ``convert/labels.py``). Counts are computed from the files."""
    rows = []
    target0 = labels["Target"] == 0
    for col in BOX_COLUMNS:
        empty = labels[col].isna()
        n0, n1 = int((empty & target0).sum()), int((empty & ~target0).sum())
        rows.append(
            (
                label_file,
                col,
                int(empty.sum()),
                f"{n0:,} Target=0 rows, {n1:,} Target=1 rows",
                "negatives (Target=0) have no box",
                "Target=0: an empty YOLO label file (background image). Target=1 without a box: the row is "
                "skipped, and the patient too when no valid box is left",
            )
        )
    rows.append(
        (
            label_file,
            "patientId",
            int(labels["patientId"].isna().sum()),
            _rows_text(labels["patientId"].isna()),
            "never empty in the challenge file",
            "not a plain identifier: the row is skipped and reported",
        )
    )
    rows.append(
        (
            label_file,
            "Target",
            int(labels["Target"].isna().sum()),
            _rows_text(labels["Target"].isna()),
            "never empty in the challenge file",
            "a Target other than 0/1: the row is skipped and reported",
        )
    )
    for col in ("patientId", "class"):
        rows.append(
            (
                class_file,
                col,
                int(classes[col].isna().sum()),
                _rows_text(classes[col].isna()),
                "never empty in the challenge file",
                "unknown class: the patient's class rows are skipped; a patient without a class is left out",
            )
        )
    if dicom_dir is not None:
        n_missing = int((patients["image"] == "").sum())
        rows.append(
            (
                f"{dicom_dir.name}/",
                "<patientId>.dcm",
                n_missing,
                f"{n_missing:,} of {len(patients):,} labelled patients",
                "the folder holds only part of the images (the full set is on Kaggle)",
                "a labelled patient without a DICOM is not converted and is listed in report.json",
            )
        )
        have = patients[patients["image"] != ""]
        for col in ("PatientAge", "PatientSex", "ViewPosition"):
            n = int(have[col].isna().sum()) if col in have else 0
            rows.append(
                (
                    "DICOM header",
                    col,
                    n,
                    f"{n:,} of {len(have):,} images read",
                    "tag absent, blank or unparsable",
                    "an empty manifest cell (never guessed)",
                )
            )
    return pd.DataFrame(
        rows, columns=["file", "field", "empty", "which rows", "why", "what the converter does"]
    )


def _rows_text(mask: pd.Series, limit: int = 5) -> str:
    """Spreadsheet row numbers (header = row 1) where ``mask`` holds, the first ``limit`` of them."""
    idx = np.flatnonzero(mask.to_numpy()) + 2
    if not len(idx):
        return "none"
    head = ", ".join(str(i) for i in idx[:limit])
    return f"{len(idx):,} rows: {head}" + (", ..." if len(idx) > limit else "")


def load_kaggle(src: Path, *, progress: bool = True) -> EdaData:
    """Read a Kaggle-layout folder; DICOM headers are read (headers only) for every image present."""
    src = Path(src)
    label_csv, class_csv = find_csv(src, LABEL_FILES), find_csv(src, CLASS_FILES)
    # The raw view (what is empty, what relates to what) ...
    labels = _read_csv(label_csv, ["patientId", *BOX_COLUMNS, "Target"])
    classes = _read_csv(class_csv, ["patientId", "class"])
    checks = kaggle_checks(labels, classes)
    # ... and the validated one the converter uses, for every statistic (skipped rows left out).
    valid = read_labels(label_csv, class_csv)
    patients = valid.patients.reset_index()[["patientId", "class", "Target", "n_boxes"]]
    patients["n_rows"] = labels.groupby("patientId").size().reindex(patients["patientId"]).to_numpy()
    boxes = valid.boxes[["patientId", *BOX_COLUMNS]].reset_index(drop=True)

    dicom_dir = src / TRAIN_DICOM_DIR
    files = [
        _file_row(label_csv, labels, "one row per box; Target=0 rows have no box"),
        _file_row(class_csv, classes, "one row per label row: the patient's class"),
    ]
    paths: dict[str, Path] = {}
    if dicom_dir.is_dir():
        paths = {p.stem: p for p in dicom_dir.glob("*.dcm")}
        files.append(
            {
                "file": f"{TRAIN_DICOM_DIR}/",
                "rows": len(paths),
                "columns": "DICOM files <patientId>.dcm",
                "what": "training images",
            }
        )
    if (src / TEST_DICOM_DIR).is_dir():
        n_test = sum(1 for _ in (src / TEST_DICOM_DIR).glob("*.dcm"))
        files.append(
            {
                "file": f"{TEST_DICOM_DIR}/",
                "rows": n_test,
                "columns": "DICOM files <patientId>.dcm",
                "what": "test images (no labels)",
            }
        )
    patients["image"] = [str(paths[p]) if p in paths else "" for p in patients["patientId"]]
    patients["scale"] = 1.0
    patients = _add_headers(patients, progress=progress)

    missing = kaggle_missing(
        labels, classes, patients, dicom_dir if dicom_dir.is_dir() else None, label_csv.name, class_csv.name
    )
    extra = {"Rows and patients the converter leaves out (core.labels), by reason": skip_table(valid.skips)}
    unlabelled = sorted(set(paths) - set(patients["patientId"]))
    if unlabelled:
        extra["DICOMs without a label row"] = pd.DataFrame({"patientId": unlabelled[:20]})
    return EdaData("kaggle", src, patients, boxes, pd.DataFrame(files), missing, checks, extra)


def skip_table(skips: list[Skip]) -> pd.DataFrame:
    """Counts of skipped rows per file and reason (one row saying "none" when nothing is skipped)."""
    if not skips:
        return pd.DataFrame({"file": ["(all files)"], "reason": ["none: every row is used"], "rows": [0]})
    frame = pd.DataFrame([s.as_dict() for s in skips])
    return frame.groupby(["file", "reason"]).size().rename("rows").reset_index()


def _file_row(path: Path, df: pd.DataFrame, what: str) -> dict:
    return {"file": path.name, "rows": len(df), "columns": ", ".join(df.columns), "what": what}


def _add_headers(patients: pd.DataFrame, *, progress: bool) -> pd.DataFrame:
    """Add PatientAge/PatientSex/ViewPosition/rows/cols from each DICOM header (``None`` when unreadable)."""
    meta = []
    todo = patients["image"].tolist()
    for path in tqdm(
        todo, desc="DICOM headers", unit="file", disable=not progress or sum(map(bool, todo)) < 500
    ):
        if not path:
            meta.append({})
            continue
        try:
            meta.append(header_metadata(read_dicom(path, headers_only=True)))
        except DicomError:
            meta.append({})
    header = pd.DataFrame(
        meta, index=patients.index, columns=["PatientAge", "PatientSex", "ViewPosition", "rows", "cols"]
    )
    header["PatientAge"] = pd.to_numeric(header["PatientAge"], errors="coerce").astype("Int64")
    return pd.concat([patients, header], axis=1)


def load_converted(src: Path) -> EdaData:
    """Read a converted dataset folder (``manifest.csv`` + ``boxes.csv``; ``src`` may be its data.yaml)."""
    src = Path(src)
    if src.is_file():
        src = src.parent
    manifest = _read_csv(
        src / "manifest.csv", ["patientId", "split", "class", "Target", "n_boxes", "png", "scale"]
    )
    boxes = (
        _read_csv(src / "boxes.csv", ["patientId", *BOX_COLUMNS])
        if (src / "boxes.csv").exists()
        else (pd.DataFrame(columns=["patientId", *BOX_COLUMNS]))
    )
    patients = manifest.copy()
    patients["image"] = [str(src / p) if isinstance(p, str) and p else "" for p in patients["png"]]
    for col in ("PatientAge", "PatientSex", "ViewPosition", "rows", "cols"):
        if col not in patients:
            patients[col] = np.nan
    patients["PatientAge"] = pd.to_numeric(patients["PatientAge"], errors="coerce").astype("Int64")
    labelled = patients["class"].notna()
    n_box_rows = boxes.groupby("patientId").size().reindex(patients["patientId"]).fillna(0).astype(int).values
    checks = pd.DataFrame(
        [
            (
                "every Lung Opacity image has Target=1",
                int((patients["class"] == "Lung Opacity").sum()),
                int(((patients["class"] == "Lung Opacity") & (patients["Target"] != 1)).sum()),
            ),
            (
                "every Target=1 image is Lung Opacity",
                int((patients["Target"] == 1).sum()),
                int(((patients["Target"] == 1) & (patients["class"] != "Lung Opacity")).sum()),
            ),
            (
                "n_boxes in the manifest equals the rows of boxes.csv",
                int(labelled.sum()),
                int((patients.loc[labelled, "n_boxes"].values != n_box_rows[labelled.values]).sum()),
            ),
            (
                "test images carry no class or Target",
                int((patients["split"] == "test").sum()),
                int(
                    (
                        (patients["split"] == "test")
                        & (patients["class"].notna() | patients["Target"].notna())
                    ).sum()
                ),
            ),
            (
                "boxes.csv names only manifest patients",
                len(boxes),
                int((~boxes["patientId"].isin(patients["patientId"])).sum()),
            ),
        ],
        columns=["check", "rows checked", "violations"],
    )
    why = {
        "fold": ("test images are not in any fold", "empty cell"),
        "n_boxes": ("test images have no labels", "empty cell"),
        "class": ("test images have no labels", "empty cell"),
        "Target": ("test images have no labels", "empty cell"),
        "PatientAge": ("tag absent, blank or not a number in the DICOM", "empty cell (never guessed)"),
        "PatientSex": ("tag absent or blank in the DICOM", "empty cell (never guessed)"),
        "ViewPosition": ("tag absent or blank in the DICOM", "empty cell (never guessed)"),
    }
    rows = []
    for col in manifest.columns:
        empty = manifest[col].isna()
        if empty.any() or col in why:
            by_split = manifest.loc[empty, "split"].value_counts()
            where = ", ".join(f"{n:,} {s}" for s, n in by_split.items()) or "none"
            reason, action = why.get(col, ("unexpected", "check the converter's report.json"))
            rows.append(("manifest.csv", col, int(empty.sum()), where, reason, action))
    missing = pd.DataFrame(
        rows, columns=["file", "field", "empty", "which rows", "why", "what the converter does"]
    )
    files = pd.DataFrame(
        [
            _file_row(src / "manifest.csv", manifest, "one row per image"),
            _file_row(src / "boxes.csv", boxes, "ground truth in source pixels (train/val)"),
        ]
    )
    extra = {
        "Images per split and class": pd.crosstab(
            patients["split"], patients["class"].fillna("(test: no label)"), margins=True, margins_name="all"
        )
    }
    return EdaData(
        "converted",
        src,
        patients[labelled | (patients["split"] == "test")].reset_index(drop=True),
        boxes,
        files,
        missing,
        checks,
        extra,
    )


def load(src: Path, *, progress: bool = True) -> EdaData:
    """Load ``src`` as whichever of the two layouts it is."""
    src = Path(src)
    if not src.exists():
        raise UserError(f"{src}: no such folder")
    if any((src / name).exists() for name in LABEL_FILES):
        return load_kaggle(src, progress=progress)
    if (src / "manifest.csv").exists() or (src.is_file() and (src.parent / "manifest.csv").exists()):
        return load_converted(src)
    raise UserError(
        f"{src}: neither a Kaggle-layout folder ({LABELS_CSV}) nor a converted dataset (manifest.csv)"
    )


# ------------------------------------------------------------------------------------- statistics


def box_geometry(boxes: pd.DataFrame, patients: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per box: ``width, height, area`` (px, px²), ``aspect`` (height / width), centre ``cx, cy``, the
    image's ``frame_w, frame_h`` (its header ``cols, rows`` when ``patients`` knows them, else 1024) and
    ``side`` ("image left" when ``cx < frame_w / 2``: the patient's right lung on a chest radiograph)."""
    b = boxes[BOX_COLUMNS].astype(float)
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
    return geom[BOX_COLUMNS].to_numpy(float) * f


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
    lo = table.get("Lung Opacity", 0)
    table["Lung Opacity %"] = 100 * lo / table["images"]
    return table


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


# ---------------------------------------------------------------------------------------- figures


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
    bars = ax2.bar(pos.index.astype(str), pos.values, color=CLASS_COLOURS["Lung Opacity"])
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
        for i, (n, lo) in enumerate(zip(t["images"], t["Lung Opacity %"], strict=True)):
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
    by_pid = {pid: g[BOX_COLUMNS].to_numpy(float) for pid, g in mine.groupby("patientId")}
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


# ----------------------------------------------------------------------------------- observations


def proportion_difference_ci(p1: float, n1: int, p2: float, n2: int, z: float = 1.96) -> tuple[float, float]:
    """Normal-approximation confidence interval of ``p1 - p2`` for two proportions from ``n1``, ``n2`` trials.

    >>> [round(v, 3) for v in proportion_difference_ci(0.5, 100, 0.3, 100)]
    [0.067, 0.333]
    """
    se = np.sqrt(p1 * (1 - p1) / max(n1, 1) + p2 * (1 - p2) / max(n2, 1))
    d = p1 - p2
    return float(d - z * se), float(d + z * se)


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
        nlo, normal = counts.get("No Lung Opacity / Not Normal", 0), counts.get("Normal", 0)
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
            ap, pa = view.loc["AP", "Lung Opacity %"] / 100, view.loc["PA", "Lung Opacity %"] / 100
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
                f"{s} {r['Lung Opacity %']:.1f}% (n={int(r['images']):,})" for s, r in sex.iterrows()
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
            f"{'Lung Opacity' if (multi['class'] == 'Lung Opacity').all() else 'of mixed classes'}; "
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
