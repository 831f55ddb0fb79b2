"""The ground truth to score against: a converted dataset's ``boxes.csv`` or the Kaggle labels CSV.

- :func:`dataset_truth` -> the truth of a split of a converted dataset (``boxes.csv`` + ``manifest.csv``,
  docs/ARCHITECTURE.md);
- :func:`kaggle_truth` -> the truth of the Kaggle labels CSV, validated as the converter validates it;
- :func:`read_truth` -> either, from whatever path the user gives (for ``analysis score``).

Each returns a :class:`TruthSet`: every image's ``(G, 4)`` xywh_px boxes (source pixels), its class when
known (for :func:`analysis.scoring.breakdown.breakdown`), and notes worth telling the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.scoring.metric import frame_to_truth
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import (
    BOXES_CSV,
    DATA_YAML,
    MANIFEST_CSV,
    NORMAL,
    POSITIVE_CLASS,
    dataset_split,
    read_dataset,
    read_manifest,
)


@dataclass
class TruthSet:
    """Ground truth of the images to score: ``truth`` (every image, ``(G, 4)`` xywh_px, ``(0, 4)`` for
    negatives), ``classes`` (patientId -> class, empty when unknown), and lines worth telling the user."""

    truth: dict[str, np.ndarray]
    classes: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)
    """Patients dropped from the truth (invalid label rows): a submission naming them is not an error."""


def dataset_truth(root: Path, manifest: pd.DataFrame, split: str | None = None) -> TruthSet:
    """Ground truth of the labelled images of ``split`` (all labelled splits when None) from ``boxes.csv``."""
    boxes_path = Path(root) / BOXES_CSV
    if not boxes_path.is_file():
        raise UserError(f"{boxes_path}: missing (the dataset's ground truth in source pixels)")
    boxes = pd.read_csv(boxes_path, dtype={"patientId": str})
    rows = manifest[manifest["split"] != "test"] if split is None else manifest[manifest["split"] == split]
    if rows.empty:
        raise UserError(f"{root / MANIFEST_CSV}: no labelled images in split {split!r}")
    if "Target" in rows.columns and rows["Target"].isna().all():
        raise UserError(f"{root / MANIFEST_CSV}: split {split!r} has no labels (test images have none)")
    ids = rows["patientId"].astype(str).tolist()
    classes = {}
    if "class" in rows.columns:
        pairs = zip(rows["patientId"], rows["class"], strict=True)
        classes = {str(p): c for p, c in pairs if isinstance(c, str)}
    return TruthSet(frame_to_truth(boxes, ids), classes)


def kaggle_truth(label_csv: Path) -> TruthSet:
    """Ground truth from the Kaggle labels CSV, validated by :mod:`rsna_yolo.core.labels`; the class CSV is
    used
    when it sits beside it (for the per-class breakdown)."""
    from rsna_yolo.core.download import CLASS_COLUMNS, CLASS_FILES, LABEL_COLUMNS
    from rsna_yolo.core.labels import parse_labels, read_csv_strings

    label_csv = Path(label_csv)
    labels = read_csv_strings(label_csv, LABEL_COLUMNS)
    class_csv = next((label_csv.parent / n for n in CLASS_FILES if (label_csv.parent / n).is_file()), None)
    if class_csv is not None:
        classes = read_csv_strings(class_csv, CLASS_COLUMNS)
    else:  # no class file: derive a consistent one so that only the labels are judged
        classes = labels[["row", "patientId"]].assign(
            **{"class": np.where(labels["Target"] == "1", POSITIVE_CLASS, NORMAL)}
        )
    class_name = class_csv.name if class_csv is not None else ""
    parsed = parse_labels(labels, classes, label_file=label_csv.name, class_file=class_name)
    notes = []
    label_skips = [s for s in parsed.skips if s.file == label_csv.name]
    if label_skips:
        first = label_skips[0].line()
        notes.append(f"{len(label_skips)} truth row(s) skipped, their patients not scored; first: {first}")
    ids = parsed.patients.index.astype(str).tolist()
    truth = frame_to_truth(parsed.boxes, ids)
    cls = {str(p): str(c) for p, c in parsed.patients["class"].items()} if class_csv is not None else {}
    excluded = {s.patientId for s in parsed.skips} - set(ids)
    return TruthSet(truth, cls, notes, excluded)


def read_truth(path: str | Path, *, split: str | None = None) -> TruthSet:
    """Ground truth from the Kaggle labels CSV, a Kaggle folder, a dataset's ``boxes.csv``, its folder or
    its data YAML (``split`` restricts a dataset to one split)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: not found")
    if path.is_dir() and not (path / MANIFEST_CSV).is_file():
        from rsna_yolo.core.download import LABEL_FILES, find_csv

        return kaggle_truth(find_csv(path, LABEL_FILES))
    if path.is_dir() or path.suffix in {".yaml", ".yml"}:
        yaml_path = path / DATA_YAML if (path / DATA_YAML).is_file() else path
        return dataset_truth(*(dataset_split(yaml_path, split) if split else read_dataset(yaml_path)), split)
    if path.name == BOXES_CSV and (path.parent / MANIFEST_CSV).is_file():
        return dataset_truth(path.parent, read_manifest(path.parent / MANIFEST_CSV), split)
    return kaggle_truth(path)
