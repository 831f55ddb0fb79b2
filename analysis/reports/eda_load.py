"""Reading the two inputs of the EDA report into one :class:`EdaData`, with the checks and the
missing-values table each input calls for.

- a Kaggle-layout folder (the label and class CSVs and, when present, the training DICOMs, under the
  names of :mod:`rsna_yolo.core.download`: stage-2 first, stage-1 accepted, exactly as the converter finds
  them):
  :func:`load_kaggle`. Its checks are the relations between the raw CSV rows (:func:`kaggle_checks`);
  the rows the converter leaves out come from :mod:`rsna_yolo.core.labels` itself.
- a converted dataset (``manifest.csv`` + ``boxes.csv``, see :mod:`rsna_yolo.core.layout`):
  :func:`load_converted`.
  It is verified by ``convert check`` (:func:`convert.check.check_dataset`), not by a second set of rules.

:func:`load` picks the loader for a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from convert.check import check_dataset
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.dicom import DicomError, header_metadata, read_dicom
from rsna_yolo.core.download import CLASS_FILES, LABEL_FILES, TEST_DIRS, TRAIN_DIRS, find_csv, find_image_dir
from rsna_yolo.core.labels import Skip, read_labels
from rsna_yolo.core.layout import (
    BOX_COLUMNS,
    BOXES_COLUMNS,
    BOXES_CSV,
    CLASSES,
    LUNG_OPACITY,
    MANIFEST_CSV,
    NEGATIVE_CLASSES,
)

CHECK_COLUMNS = ["check", "rows checked", "violations"]
"""Columns of :attr:`EdaData.checks`: one statement a row, 0 violations = it holds."""
MISSING_COLUMNS = ["file", "field", "empty", "which rows", "why", "what the converter does"]
"""Columns of :attr:`EdaData.missing`."""
CONVERT_CHECK = (
    "`python -m convert check` finds no problem (data.yaml, manifest, PNGs, label files, boxes.csv, "
    "report.json, source CSVs, folds)"
)
"""The statement of :func:`converted_checks` that stands for every check of ``convert check``."""
MAX_LISTED = 20
"""Patients or problems listed by name in a report table; the rest are counted."""


@dataclass
class EdaData:
    """Everything the report is computed from.

    ``patients``: one row per image: ``patientId, class, Target, n_boxes`` and, when known,
    ``PatientAge, PatientSex, ViewPosition, rows, cols, image`` (path of a DICOM/PNG or ``""``),
    ``scale`` (image pixels per source pixel) and ``split`` (converted datasets).
    ``boxes``: one row per box, ``patientId, x, y, width, height`` in source pixels.
    ``files``: the files read (``file, rows, columns, what``); ``missing``: :data:`MISSING_COLUMNS`;
    ``checks``: :data:`CHECK_COLUMNS`; ``extra_tables``: further tables about the files, by caption;
    ``notes``: sentences about what the source lacks.
    """

    kind: str
    source: Path
    patients: pd.DataFrame
    boxes: pd.DataFrame
    files: pd.DataFrame
    missing: pd.DataFrame
    checks: pd.DataFrame
    extra_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def has_headers(self) -> bool:
        """True when at least one image's DICOM header values are known."""
        cols = ["PatientAge", "PatientSex", "ViewPosition"]
        return all(c in self.patients for c in cols) and self.patients[cols].notna().any().any()

    @property
    def has_images(self) -> bool:
        """True when at least one patient has a readable image file."""
        return "image" in self.patients and (self.patients["image"].fillna("") != "").any()


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


# ------------------------------------------------------------------------------------- Kaggle layout


def kaggle_checks(labels: pd.DataFrame, classes: pd.DataFrame) -> pd.DataFrame:
    """Check the relations between the raw label rows ``labels`` and class rows ``classes``.

    Returns one row per statement: ``check``, ``rows checked``, ``violations`` (0 when it holds).
    """
    has_box = labels[list(BOX_COLUMNS)].notna().all(axis=1)
    no_box = labels[list(BOX_COLUMNS)].isna().all(axis=1)
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
        lo = merged["class"] == LUNG_OPACITY
        rows += [
            (
                f"every {LUNG_OPACITY} row has Target=1",
                int(lo.sum()),
                int((lo & (merged["Target"] != 1)).sum()),
            ),
            (
                f"every Target=1 row is {LUNG_OPACITY}",
                int((merged["Target"] == 1).sum()),
                int(((merged["Target"] == 1) & ~lo).sum()),
            ),
            (
                f"every {' and '.join(NEGATIVE_CLASSES)} row has Target=0",
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
                f"patients with several rows are all {LUNG_OPACITY} with one box per row",
                int((merged.groupby("patientId").size() > 1).sum()),
                int(
                    (
                        (merged.groupby("patientId").size() > 1)
                        & (
                            (merged.groupby("patientId")["class"].first() != LUNG_OPACITY)
                            | ~has_box.groupby(merged["patientId"]).all()
                        )
                    ).sum()
                ),
            ),
        ]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def kaggle_missing(
    labels: pd.DataFrame,
    classes: pd.DataFrame,
    patients: pd.DataFrame,
    dicom_dir: Path | None,
    label_file: str = LABEL_FILES[0],
    class_file: str = CLASS_FILES[0],
) -> pd.DataFrame:
    """The missing-values table of a Kaggle-layout folder: which fields are empty, in which rows, why, and
    what the converter does (its rules are in :mod:`rsna_yolo.core.labels`). Counts are computed from the
    files;
    ``dicom_dir`` is the training-image folder, None when there is none."""
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
    never_empty = [
        (label_file, labels, "patientId", "not a plain identifier: the row is skipped and reported"),
        (label_file, labels, "Target", "a Target other than 0/1: the row is skipped and reported"),
        *(
            (class_file, classes, col, "unknown class: the patient's class rows are skipped; a patient "
             "without a class is left out")
            for col in ("patientId", "class")
        ),
    ]  # fmt: skip
    for file, frame, col, action in never_empty:
        empty = frame[col].isna()
        rows.append(
            (file, col, int(empty.sum()), _rows_text(empty), "never empty in the challenge file", action)
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
    return pd.DataFrame(rows, columns=MISSING_COLUMNS)


def _rows_text(mask: pd.Series, limit: int = 5) -> str:
    """Spreadsheet row numbers (header = row 1) where ``mask`` holds, the first ``limit`` of them."""
    idx = np.flatnonzero(mask.to_numpy()) + 2
    if not len(idx):
        return "none"
    head = ", ".join(str(i) for i in idx[:limit])
    return f"{len(idx):,} rows: {head}" + (", ..." if len(idx) > limit else "")


def load_kaggle(src: Path, *, progress: bool = True) -> EdaData:
    """Read a Kaggle-layout folder; DICOM headers are read (headers only) for every image present.

    The files are found under the names the converter looks for (:mod:`rsna_yolo.core.download`: stage-2
    first,
    stage-1 accepted); without a training-image folder the data says so in :attr:`EdaData.notes`.
    """
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
    boxes = valid.boxes[list(BOXES_COLUMNS)].reset_index(drop=True)

    dicom_dir = find_image_dir(src, TRAIN_DIRS)
    test_dir = find_image_dir(src, TEST_DIRS)
    files = [
        _file_row(label_csv, labels, "one row per box; Target=0 rows have no box"),
        _file_row(class_csv, classes, "one row per label row: the patient's class"),
    ]
    paths: dict[str, Path] = {}
    notes = []
    if dicom_dir is None:
        notes.append(
            f"No training-image folder ({' or '.join(TRAIN_DIRS)}) in {src}: this report covers the label "
            "CSVs only, without the DICOM header and pixel sections."
        )
    else:
        paths = {p.stem: p for p in dicom_dir.glob("*.dcm")}
        files.append(_dicom_dir_row(dicom_dir, len(paths), "training images"))
    if test_dir is not None:
        files.append(
            _dicom_dir_row(test_dir, sum(1 for _ in test_dir.glob("*.dcm")), "test images (no labels)")
        )
    patients["image"] = [str(paths[p]) if p in paths else "" for p in patients["patientId"]]
    patients["scale"] = 1.0
    patients = _add_headers(patients, progress=progress)

    missing = kaggle_missing(labels, classes, patients, dicom_dir, label_csv.name, class_csv.name)
    extra = {
        "Rows and patients the converter leaves out (rsna_yolo.core.labels), by reason": skip_table(
            valid.skips
        )
    }
    unlabelled = sorted(set(paths) - set(patients["patientId"]))
    if unlabelled:
        extra["DICOMs without a label row"] = pd.DataFrame({"patientId": unlabelled[:MAX_LISTED]})
    return EdaData("kaggle", src, patients, boxes, pd.DataFrame(files), missing, checks, extra, notes)


def skip_table(skips: list[Skip]) -> pd.DataFrame:
    """Counts of skipped rows per file and reason (one row saying "none" when nothing is skipped)."""
    if not skips:
        return pd.DataFrame({"file": ["(all files)"], "reason": ["none: every row is used"], "rows": [0]})
    frame = pd.DataFrame([s.as_dict() for s in skips])
    return frame.groupby(["file", "reason"]).size().rename("rows").reset_index()


def _file_row(path: Path, df: pd.DataFrame, what: str) -> dict:
    """A row of :attr:`EdaData.files` for a CSV."""
    return {"file": path.name, "rows": len(df), "columns": ", ".join(df.columns), "what": what}


def _dicom_dir_row(folder: Path, n_files: int, what: str) -> dict:
    """A row of :attr:`EdaData.files` for a folder of DICOMs."""
    return {
        "file": f"{folder.name}/",
        "rows": n_files,
        "columns": "DICOM files <patientId>.dcm",
        "what": what,
    }


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


# --------------------------------------------------------------------------------- converted dataset


def converted_checks(root: Path, patients: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The checks table (:data:`CHECK_COLUMNS`) of the converted dataset in ``root`` with manifest rows
    ``patients``, and the problem lines of ``python -m convert check``.

    Everything a sound dataset must satisfy (class, Target, ``n_boxes``, label files and ``boxes.csv``
    agreeing; images, folds, report and source CSVs) is :func:`convert.check.check_dataset`'s to decide:
    it is one statement here, its problems counted. The one relation it does not look at, test rows
    without class or Target, is checked here.
    """
    problems = check_dataset(root).problems
    test = patients["split"] == "test"
    labelled_test = test & (patients["class"].notna() | patients["Target"].notna())
    rows = [
        (CONVERT_CHECK, len(patients), len(problems)),
        ("test images carry no class or Target", int(test.sum()), int(labelled_test.sum())),
    ]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS), problems


def load_converted(src: Path) -> EdaData:
    """Read a converted dataset folder (``manifest.csv`` + ``boxes.csv``; ``src`` may be its data.yaml),
    verified by :func:`converted_checks`."""
    src = Path(src)
    if src.is_file():
        src = src.parent
    manifest = _read_csv(
        src / MANIFEST_CSV, ["patientId", "split", "class", "Target", "n_boxes", "png", "scale"]
    )
    boxes = (
        _read_csv(src / BOXES_CSV, list(BOXES_COLUMNS))
        if (src / BOXES_CSV).exists()
        else (pd.DataFrame(columns=list(BOXES_COLUMNS)))
    )
    patients = manifest.copy()
    patients["image"] = [str(src / p) if isinstance(p, str) and p else "" for p in patients["png"]]
    for col in ("PatientAge", "PatientSex", "ViewPosition", "rows", "cols"):
        if col not in patients:
            patients[col] = np.nan
    patients["PatientAge"] = pd.to_numeric(patients["PatientAge"], errors="coerce").astype("Int64")
    labelled = patients["class"].notna()
    checks, problems = converted_checks(src, patients)
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
            rows.append((MANIFEST_CSV, col, int(empty.sum()), where, reason, action))
    missing = pd.DataFrame(rows, columns=MISSING_COLUMNS)
    files = pd.DataFrame(
        [
            _file_row(src / MANIFEST_CSV, manifest, "one row per image"),
            _file_row(src / BOXES_CSV, boxes, "ground truth in source pixels (train/val)"),
        ]
    )
    extra = {
        "Images per split and class": pd.crosstab(
            patients["split"], patients["class"].fillna("(test: no label)"), margins=True, margins_name="all"
        )
    }
    if problems:
        caption = (
            f"Problems found by `python -m convert check` ({len(problems):,}, at most {MAX_LISTED} listed)"
        )
        extra[caption] = pd.DataFrame({"problem": problems[:MAX_LISTED]})
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
    if (src / MANIFEST_CSV).exists() or (src.is_file() and (src.parent / MANIFEST_CSV).exists()):
        return load_converted(src)
    raise UserError(
        f"{src}: neither a Kaggle-layout folder ({LABEL_FILES[0]}) nor a converted dataset (manifest.csv)"
    )
