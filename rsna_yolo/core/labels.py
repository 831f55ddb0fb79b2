"""Reading and validating the Kaggle label CSVs: per-patient Target and class, valid boxes, and skips.

Two files (stage-2 names, or the stage-1 ones):

- ``stage_2_train_labels.csv``: ``patientId,x,y,width,height,Target``, one row per box of a positive
  patient (``Target=1``) and one row with empty box fields per negative patient (``Target=0``);
- ``stage_2_detailed_class_info.csv``: ``patientId,class``, row-aligned with the labels file (so a patient
  with two boxes has two identical class rows, which is not an error).

:func:`parse_labels` is pure (frames of strings in, a :class:`Labels` out); :func:`read_labels` adds the
file reading. A row is never silently dropped: every row or patient left out becomes a :class:`Skip` with
the file, the row number as a spreadsheet shows it (header = row 1), the patientId and the reason.

Rules (each one a skip):

- a ``patientId`` that is not a plain identifier (see :func:`is_safe_id`): the row;
- an exact duplicate of an earlier labels row: the duplicate only;
- a ``Target`` other than 0 or 1, or a non-numeric box value: the row;
- a patient whose rows disagree on ``Target``: the whole patient;
- a ``Target=1`` row whose box is missing, NaN, infinite, negative or of zero width/height: the row; a
  positive patient left with no valid box at all: the patient (an empty label would teach "background");
- a ``Target=0`` row carrying box values: the row (it contradicts itself);
- a class not among :data:`CLASSES`, or two different classes for one patient: the patient's class rows;
- a patient with no class row, or a class disagreeing with ``Target`` (``Lung Opacity`` iff 1): the
  patient; a class row for a patient absent from the labels file: recorded too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.download import CLASS_COLUMNS, CLASS_FILES, LABEL_COLUMNS, LABEL_FILES, find_csv
from rsna_yolo.core.layout import BOX_COLUMNS, CLASSES, POSITIVE_CLASS

_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")
_FIRST_DATA_ROW = 2  # spreadsheet row of the first data line: the header is row 1


@dataclass(frozen=True)
class Skip:
    """One thing left out of the dataset, and why.

    ``file`` is a file name (CSV) or a path relative to the source folder (DICOM); ``row`` the 1-based
    spreadsheet row (header = 1) for CSV rows, else None.
    """

    file: str
    row: int | None
    patientId: str
    reason: str

    def line(self) -> str:
        """One human-readable line: ``file:row (patientId): reason``."""
        where = f"{self.file}:{self.row}" if self.row is not None else self.file
        who = f" ({self.patientId})" if self.patientId else ""
        return f"{where}{who}: {self.reason}"

    def as_dict(self) -> dict:
        return {"file": self.file, "row": self.row, "patientId": self.patientId, "reason": self.reason}


@dataclass(frozen=True)
class Labels:
    """Validated labels.

    ``patients``: index ``patientId`` (sorted), columns ``Target`` (int 0/1), ``class`` (one of
    :data:`CLASSES`), ``n_boxes`` (int), ``row`` (its first labels row).
    ``boxes``: columns ``patientId, x, y, width, height`` (float64, xywh_px as in the CSV, unclipped)
    and ``row`` (spreadsheet row), sorted by patientId then row.
    ``skips``: everything left out, sorted by file and row.
    """

    patients: pd.DataFrame
    boxes: pd.DataFrame
    skips: list[Skip]
    label_file: str
    class_file: str

    def boxes_of(self, patient_id: str) -> np.ndarray:
        """``(N, 4)`` xywh_px boxes of one patient (``(0, 4)`` for none)."""
        sel = self.boxes[self.boxes["patientId"] == patient_id]
        return sel[list(BOX_COLUMNS)].to_numpy(dtype=np.float64).reshape(-1, 4)


def is_safe_id(patient_id: str) -> bool:
    """True for a plain identifier usable as a file name: ``[A-Za-z0-9._-]``, 1-200 chars, not ``.``/``..``.

    >>> [is_safe_id(p) for p in ("0004cfab-14fd", "../x", "a/b", "..", "", "a b")]
    [True, False, False, False, False, False]
    """
    return bool(_SAFE_ID.fullmatch(patient_id)) and patient_id not in {".", ".."}


def read_csv_strings(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """``path`` as a frame of stripped strings (empty cell = ``""``) plus ``row``; :class:`UserError`
    naming the file and column when a required column is missing."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read CSV ({exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in required:
        if column not in frame.columns:
            found = ", ".join(frame.columns)
            raise UserError(f"{path}: required column {column!r} missing (columns: {found})")
    frame = frame[list(required)].apply(lambda col: col.str.strip())
    frame.insert(0, "row", np.arange(_FIRST_DATA_ROW, _FIRST_DATA_ROW + len(frame)))
    return frame


def _skips(frame: pd.DataFrame, mask, file: str, reasons) -> list[Skip]:
    """Skip records for the rows of ``frame`` selected by ``mask``; ``reasons`` a string or a Series."""
    sel = frame[mask]
    if isinstance(reasons, str):
        reasons = pd.Series(reasons, index=sel.index)
    return [
        Skip(file, int(r), pid, str(reason))
        for r, pid, reason in zip(sel["row"], sel["patientId"], reasons[sel.index], strict=True)
    ]


def parse_labels(
    labels: pd.DataFrame,
    classes: pd.DataFrame,
    label_file: str = LABEL_FILES[0],
    class_file: str = CLASS_FILES[0],
) -> Labels:
    """Validate the two CSVs (frames of stripped strings with a ``row`` column, see
    :func:`read_csv_strings`) into a :class:`Labels`. See the module docstring for the rules."""
    skips: list[Skip] = []
    touched: set[str] = set()  # patients with any labels row skipped: not reported again from the class side

    def drop(frame: pd.DataFrame, mask, reasons) -> pd.DataFrame:
        mask = pd.Series(mask, index=frame.index)
        if mask.any():
            new = _skips(frame, mask, label_file, reasons)
            skips.extend(new)
            touched.update(s.patientId for s in new)
        return frame[~mask]

    lab = labels
    lab = drop(lab, ~lab["patientId"].map(is_safe_id), "patientId is not a plain identifier")
    dup = lab.duplicated(list(LABEL_COLUMNS), keep=False)
    if dup.any():
        first_row = lab[dup].groupby(list(LABEL_COLUMNS), sort=False)["row"].transform("min")
        is_repeat = dup & (lab["row"] != first_row.reindex(lab.index))
        first_row = first_row.reindex(lab.index).astype("Int64").astype(str)
        lab = drop(lab, is_repeat, "duplicate of row " + first_row)

    target = pd.to_numeric(lab["Target"], errors="coerce")
    bad_target = ~target.isin([0, 1])
    lab = drop(lab, bad_target, "Target " + lab["Target"].map(repr) + " is not 0 or 1")
    lab = lab.assign(Target=target[~bad_target].astype(int))

    values = lab[list(BOX_COLUMNS)]
    numbers = values.apply(lambda col: pd.to_numeric(col, errors="coerce"))
    missing = values.apply(lambda col: col.str.lower().isin(["", "nan"]))
    non_numeric = numbers.isna() & ~missing
    if non_numeric.to_numpy().any():
        first_bad = non_numeric.idxmax(axis=1)
        reason = pd.Series(
            [f"non-numeric {c} {values.at[i, c]!r}" for i, c in first_bad.items()], index=lab.index
        )
        keep = ~non_numeric.any(axis=1)
        lab = drop(lab, ~keep, reason)
        numbers, missing = numbers[keep], missing[keep]

    # Conflicting Target is judged on every row with a valid Target, before box checks drop any.
    n_targets = lab.groupby("patientId")["Target"].transform("nunique")
    conflict = n_targets > 1
    if conflict.any():
        rows_of = lab[conflict].groupby("patientId")["row"].apply(lambda r: ", ".join(map(str, r)))
        first = lab[conflict].drop_duplicates("patientId")
        for r, pid in zip(first["row"], first["patientId"], strict=True):
            reason = f"conflicting Target for one patient (rows {rows_of[pid]})"
            skips.append(Skip(label_file, int(r), pid, reason))
            touched.add(pid)
        keep = ~conflict
        lab, numbers, missing = lab[keep], numbers[keep], missing[keep]

    positive = lab["Target"] == 1
    finite = np.isfinite(numbers.to_numpy(dtype=np.float64))
    box_reason = pd.Series("", index=lab.index, dtype=object)
    box_reason[positive & missing.any(axis=1)] = "Target=1 row with a missing or NaN box value"
    unset = box_reason == ""
    box_reason[positive & unset & ~finite.all(axis=1)] = "Target=1 row with an infinite box value"
    unset = box_reason == ""
    box_reason[positive & unset & (numbers < 0).any(axis=1)] = "Target=1 row with a negative box value"
    unset = box_reason == ""
    zero = (numbers["width"] == 0) | (numbers["height"] == 0)
    box_reason[positive & unset & zero] = "Target=1 row with a zero-size box"
    box_reason[~positive & ~missing.all(axis=1)] = "Target=0 row with box values"
    bad_box = box_reason != ""
    had_positive = set(lab.loc[positive, "patientId"])
    lab = drop(lab, bad_box, box_reason)
    numbers = numbers[~bad_box]
    lost = had_positive - set(lab.loc[lab["Target"] == 1, "patientId"])
    if lost:  # say on the patient's last bad row that the whole patient is left out
        last = {s.patientId: i for i, s in enumerate(skips) if s.patientId in lost}
        for i in last.values():
            s = skips[i]
            skips[i] = Skip(s.file, s.row, s.patientId, s.reason + "; no valid box left, patient left out")

    # Class file: row-aligned duplicates are expected, so exact repeats are dropped silently.
    cls = classes.drop_duplicates(list(CLASS_COLUMNS))
    # Patients already reported from the labels side are not reported again from the class side.
    fresh = ~cls["patientId"].isin(touched)
    unsafe = ~cls["patientId"].map(is_safe_id)
    skips.extend(_skips(cls, unsafe & fresh, class_file, "patientId is not a plain identifier"))
    cls, fresh = cls[~unsafe], fresh[~unsafe]
    unknown = ~cls["class"].isin(CLASSES)
    skips.extend(_skips(cls, unknown & fresh, class_file, "unknown class " + cls["class"].map(repr)))
    class_problem = set(cls.loc[unknown, "patientId"])
    cls = cls[~unknown]
    n_classes = cls.groupby("patientId")["class"].transform("nunique")
    if (n_classes > 1).any():
        first = cls[(n_classes > 1) & fresh].drop_duplicates("patientId")
        skips.extend(_skips(first, slice(None), class_file, "conflicting classes for one patient"))
        class_problem.update(first["patientId"])
    cls = cls[n_classes == 1].drop_duplicates("patientId").set_index("patientId")

    per_patient = lab.groupby("patientId", sort=True).agg(
        Target=("Target", "first"), row=("row", "min"), n_boxes=("Target", "sum")
    )
    per_patient["class"] = cls["class"].reindex(per_patient.index)
    no_class = per_patient["class"].isna()
    for pid, r in per_patient.loc[no_class & ~per_patient.index.isin(class_problem), "row"].items():
        skips.append(Skip(label_file, int(r), pid, f"no row in {class_file}"))
    per_patient = per_patient[~no_class]
    disagree = (per_patient["class"] == POSITIVE_CLASS) != (per_patient["Target"] == 1)
    for pid, rec in per_patient[disagree].iterrows():
        reason = f"class {rec['class']!r} disagrees with Target={rec['Target']}"
        skips.append(Skip(class_file, int(cls.at[pid, "row"]), pid, reason))
    per_patient = per_patient[~disagree]
    orphan = cls.index.difference(lab["patientId"].unique()).difference(pd.Index(sorted(touched)))
    for pid in orphan:
        skips.append(Skip(class_file, int(cls.at[pid, "row"]), pid, f"no row in {label_file}"))

    patients = per_patient[["Target", "class", "n_boxes", "row"]].astype(
        {"Target": int, "n_boxes": int, "row": int}
    )
    patients.index.name = "patientId"
    keep = (lab["Target"] == 1) & lab["patientId"].isin(patients.index)
    boxes = pd.concat([lab.loc[keep, ["patientId", "row"]], numbers[keep].astype(np.float64)], axis=1)
    boxes = boxes.sort_values(["patientId", "row"]).reset_index(drop=True)[["patientId", *BOX_COLUMNS, "row"]]
    skips.sort(key=lambda s: (s.file, s.row if s.row is not None else 1 << 62, s.patientId, s.reason))
    return Labels(patients=patients, boxes=boxes, skips=skips, label_file=label_file, class_file=class_file)


def read_labels(label_csv: str | Path, class_csv: str | Path) -> Labels:
    """Read and validate the labels and class CSVs (see the module docstring); the real 30,227-row
    files take about 0.1 s."""
    label_csv, class_csv = Path(label_csv), Path(class_csv)
    return parse_labels(
        read_csv_strings(label_csv, LABEL_COLUMNS),
        read_csv_strings(class_csv, CLASS_COLUMNS),
        label_file=label_csv.name,
        class_file=class_csv.name,
    )


def find_labels(src: str | Path) -> Labels:
    """Read the label CSVs of a Kaggle-layout folder (stage-2 names preferred, stage-1 accepted)."""
    src = Path(src)
    return read_labels(find_csv(src, LABEL_FILES), find_csv(src, CLASS_FILES))
