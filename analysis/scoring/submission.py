"""Kaggle submission CSVs: strict reading, writing from prediction frames, and validation.

Format: header ``patientId,PredictionString``; one row per patient; the prediction string is
``conf x y w h`` repeated (``xywh_px`` in the 1024-px source frame), empty when no box. Pure parsing
(:func:`parse_prediction_string`, :func:`parse_submission_rows`) is separate from file reading; every
problem a user can fix is one :class:`~rsna_yolo.core.cli.UserError` naming the file and spreadsheet row
(header = row 1).

A prediction frame (``predictions_<split>.csv`` and :func:`analysis.inference.predict.predict_images`) has
columns
:data:`PRED_COLUMNS`, one row per box, in source pixels.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rsna_yolo.core.boxes import NATIVE_SIZE, clip_xywh, scale_about_centre
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_csv_atomic
from rsna_yolo.core.layout import BOX_COLUMNS, PRED_COLUMNS

HEADER = ("patientId", "PredictionString")
_BOX = list(BOX_COLUMNS)  # pandas selects columns with a list
EDGE_TOLERANCE_PX = 1.0
"""How far (source pixels) a box may reach past the image edge before ``validate`` calls it out of range."""


@dataclass(frozen=True)
class Submission:
    """A parsed submission: every patient in file order, and one row per box.

    ``ids``: patientIds in file order (each once). ``rows``: the spreadsheet row of each id.
    ``boxes``: frame with :data:`PRED_COLUMNS` (float64 values), one row per box, file order.
    """

    ids: list[str]
    rows: list[int]
    boxes: pd.DataFrame

    def row_of(self, patient_id: str) -> int:
        return self.rows[self.ids.index(patient_id)]

    @property
    def n_with_boxes(self) -> int:
        """Patients with at least one box."""
        return int(self.boxes["patientId"].nunique())


def parse_prediction_string(text: str) -> np.ndarray:
    """``"conf x y w h ..."`` -> ``(P, 5)`` float64 ``[conf, x, y, w, h]``; ``ValueError`` says what's wrong.

    >>> parse_prediction_string("0.9 10 20 30 40 0.5 0 0 5 5").tolist()
    [[0.9, 10.0, 20.0, 30.0, 40.0], [0.5, 0.0, 0.0, 5.0, 5.0]]
    >>> parse_prediction_string("").shape
    (0, 5)
    """
    tokens = text.split()
    if len(tokens) % 5:
        raise ValueError(f"prediction string has {len(tokens)} values, not a multiple of 5 (conf x y w h)")
    values = []
    for k, tok in enumerate(tokens):
        try:
            v = float(tok)
        except ValueError:
            raise ValueError(f"non-numeric value {tok!r} (value {k + 1})") from None
        if not math.isfinite(v):
            raise ValueError(f"non-finite value {tok!r} (value {k + 1})")
        values.append(v)
    arr = np.array(values, dtype=np.float64).reshape(-1, 5)
    for j, (c, _, _, w, h) in enumerate(arr):
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"box {j + 1}: confidence {c:g} outside [0, 1]")
        if w < 0 or h < 0:
            raise ValueError(f"box {j + 1}: negative size {w:g} x {h:g}")
    return arr


def format_prediction_string(conf: np.ndarray, boxes_xywh_px: np.ndarray) -> str:
    """``(P,)`` confidences and ``(P, 4)`` boxes -> ``"conf x y w h ..."``, most confident first.

    >>> format_prediction_string(np.array([0.5, 0.91234]), np.array([[1, 2, 3, 4], [10.04, 20, 30, 40]]))
    '0.9123 10.0 20.0 30.0 40.0 0.5000 1.0 2.0 3.0 4.0'
    """
    order = np.argsort(-np.asarray(conf), kind="stable")
    parts = [
        f"{conf[j]:.4f} {boxes_xywh_px[j, 0]:.1f} {boxes_xywh_px[j, 1]:.1f} "
        f"{boxes_xywh_px[j, 2]:.1f} {boxes_xywh_px[j, 3]:.1f}"
        for j in order
    ]
    return " ".join(parts)


def parse_submission_rows(rows: Iterable[list[str]], name: str = "submission") -> Submission:
    """Parse CSV rows (header first) into a :class:`Submission`; :class:`UserError` naming ``name:row``.

    Checks: the exact header, two fields a row, a non-empty patientId, each prediction string
    (:func:`parse_prediction_string`), and duplicate patientIds. Blank lines are ignored.
    """
    it = iter(rows)
    header = next(it, None)
    if header is None or [h.strip().lstrip("\ufeff") for h in header] != list(HEADER):
        raise UserError(f"{name}:1: header must be exactly {','.join(HEADER)} (found {header!r})")
    ids: list[str] = []
    rows_of: dict[str, int] = {}
    line_rows: list[int] = []
    records: list[tuple[str, np.ndarray]] = []
    for row_no, row in enumerate(it, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != 2:
            found = len(row)
            raise UserError(f"{name}:{row_no}: expected 2 fields (patientId,PredictionString), found {found}")
        pid, text = row[0].strip(), row[1]
        if not pid:
            raise UserError(f"{name}:{row_no}: empty patientId")
        if pid in rows_of:
            raise UserError(f"{name}:{row_no} ({pid}): duplicate patientId (first on row {rows_of[pid]})")
        try:
            arr = parse_prediction_string(text)
        except ValueError as exc:
            raise UserError(f"{name}:{row_no} ({pid}): {exc}") from None
        rows_of[pid] = row_no
        ids.append(pid)
        line_rows.append(row_no)
        records.append((pid, arr))
    counts = [len(a) for _, a in records]
    values = np.concatenate([a for _, a in records]) if records else np.zeros((0, 5))
    boxes = pd.DataFrame(values, columns=PRED_COLUMNS[1:])
    boxes.insert(0, "patientId", np.repeat([p for p, _ in records], counts) if records else [])
    return Submission(ids=ids, rows=line_rows, boxes=boxes)


def read_submission(path: str | Path) -> Submission:
    """Read and parse a submission CSV (see :func:`parse_submission_rows`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read submission ({exc})") from exc
    try:
        return parse_submission_rows(csv.reader(io.StringIO(text, newline="")), name=str(path))
    except csv.Error as exc:
        raise UserError(f"{path}: malformed CSV ({exc})") from exc


def submission_preds(sub: Submission) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The ``preds`` mapping of :mod:`analysis.scoring.metric` (patients with an empty string are omitted)."""
    from analysis.scoring.metric import frame_to_preds

    return frame_to_preds(sub.boxes)


def select_boxes(preds: pd.DataFrame, *, conf: float = 0.0, box_scale: float = 1.0) -> pd.DataFrame:
    """Keep boxes with ``conf >= conf`` and scale them about their centre by ``box_scale`` (1 leaves them as
    they are)."""
    kept = preds[preds["conf"] >= conf].copy()
    if box_scale != 1.0 and len(kept):
        kept[_BOX] = scale_about_centre(kept[_BOX].to_numpy(np.float64), box_scale)
    return kept


def submission_frame(
    ids: Iterable[str], preds: pd.DataFrame, *, conf: float = 0.0, box_scale: float = 1.0
) -> pd.DataFrame:
    """``patientId,PredictionString`` with one row per id (in order), from a prediction frame.

    Boxes are clipped to the ``NATIVE_SIZE`` frame that :func:`check_against_ids` requires: predictions
    lie inside their image, but a box grown about its centre (``box_scale > 1``) may not.
    """
    kept = select_boxes(preds, conf=conf, box_scale=box_scale)
    if len(kept):
        xywh = kept[_BOX].to_numpy(np.float64)
        kept[_BOX] = clip_xywh(xywh, NATIVE_SIZE, NATIVE_SIZE)
    strings: dict[str, str] = {}
    for pid, group in kept.groupby("patientId", sort=False):
        strings[str(pid)] = format_prediction_string(
            group["conf"].to_numpy(np.float64), group[_BOX].to_numpy(np.float64)
        )
    ids = list(ids)
    return pd.DataFrame({"patientId": ids, "PredictionString": [strings.get(i, "") for i in ids]})


def write_submission(
    path: str | Path, ids: Iterable[str], preds: pd.DataFrame, *, conf: float = 0.0, box_scale: float = 1.0
) -> Path:
    """Write the submission of ``preds`` (one row per id) to ``path``."""
    return write_csv_atomic(submission_frame(ids, preds, conf=conf, box_scale=box_scale), path)


def image_ids(folder: str | Path) -> dict[str, Path]:
    """patientId (file stem) -> path of every ``*.dcm`` / ``*.png`` under ``folder`` (recursively);
    :class:`UserError` when there is none or one stem appears twice."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in {".dcm", ".png"} and p.is_file():
            if p.stem in found:
                raise UserError(f"{p}: patientId {p.stem} also at {found[p.stem]}")
            found[p.stem] = p
    if not found:
        raise UserError(f"{folder}: no .dcm or .png images found")
    return found


def check_against_ids(sub: Submission, expected: Iterable[str], name: str = "submission") -> list[str]:
    """Problems of a parsed submission against the expected patients: missing/extra patients and boxes out
    of the ``NATIVE_SIZE`` frame (by more than :data:`EDGE_TOLERANCE_PX`). Empty list = valid."""
    expected = set(expected)
    problems = []
    extra = [(r, p) for p, r in zip(sub.ids, sub.rows, strict=True) if p not in expected]
    problems += [f"{name}:{r} ({p}): patient not in the image folder" for r, p in extra[:5]]
    if len(extra) > 5:
        problems.append(f"... and {len(extra) - 5} more patients not in the image folder")
    missing = sorted(expected - set(sub.ids))
    if missing:
        problems.append(f"{name}: {len(missing)} patient(s) of the image folder missing, e.g. {missing[0]}")
    b = sub.boxes
    lo, hi = -EDGE_TOLERANCE_PX, NATIVE_SIZE + EDGE_TOLERANCE_PX
    out = (b["x"] < lo) | (b["y"] < lo) | (b["x"] + b["width"] > hi) | (b["y"] + b["height"] > hi)
    if out.any():
        pid = str(b.loc[out.idxmax(), "patientId"])
        problems.append(
            f"{name}:{sub.row_of(pid)} ({pid}): {int(out.sum())} box(es) outside the {NATIVE_SIZE}-px image"
        )
    return problems


def validate_submission(path: str | Path, images: str | Path | Mapping[str, Path]) -> Submission:
    """Read ``path`` and check it against the images (a folder, or patientId -> path): every patient exactly
    once, the format, the ranges. Raises one :class:`UserError` listing the problems; returns the parsed
    submission when valid."""
    sub = read_submission(path)
    ids = image_ids(images) if not isinstance(images, Mapping) else images
    problems = check_against_ids(sub, ids, name=str(path))
    if problems:
        raise UserError("; ".join(problems))
    return sub
