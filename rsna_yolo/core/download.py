"""The Kaggle download of the RSNA Pneumonia Detection Challenge: its file and folder names, and finding
them in a folder. The converter, the EDA report and the synthetic generator all take the names from here.

Stage-2 names come first; the stage-1 names of the original release are accepted wherever the stage-2
ones are. Both CSVs are ``patientId``-keyed: the labels file ``patientId,x,y,width,height,Target`` (one row
per box, one empty-box row per negative patient), the class file ``patientId,class`` row-aligned with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rsna_yolo.core.cli import UserError

LABEL_FILES = ("stage_2_train_labels.csv", "stage_1_train_labels.csv")
CLASS_FILES = ("stage_2_detailed_class_info.csv", "stage_1_detailed_class_info.csv")
SUBMISSION_FILES = ("stage_2_sample_submission.csv", "stage_1_sample_submission.csv")
TRAIN_DIRS = ("stage_2_train_images", "stage_1_train_images")
TEST_DIRS = ("stage_2_test_images", "stage_1_test_images")
LABEL_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")
CLASS_COLUMNS = ("patientId", "class")


@dataclass(frozen=True)
class Source:
    """Where the Kaggle files are inside a download folder (``test_dir`` is optional)."""

    root: Path
    label_csv: Path
    class_csv: Path
    train_dir: Path
    test_dir: Path | None


def find_csv(src: Path, names: tuple[str, ...]) -> Path:
    """The first of ``names`` present in ``src``; :class:`UserError` naming them all when none is."""
    for name in names:
        if (src / name).is_file():
            return src / name
    raise UserError(f"{src}: none of {', '.join(names)} found (is --src a Kaggle RSNA download folder?)")


def find_image_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first folder of ``names`` (e.g. :data:`TRAIN_DIRS`) in ``root``, or None."""
    return next((root / d for d in names if (root / d).is_dir()), None)


def find_source(src: str | Path) -> Source:
    """Locate the label CSVs and image folders (stage-2 names first, stage-1 accepted).

    Raises :class:`UserError` (one line) when ``src`` is not a folder or lacks a labels CSV, the class
    CSV or the training-image folder. The test-image folder is optional.
    """
    root = Path(src).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"--src {src}: not a folder")
    label_csv = find_csv(root, LABEL_FILES)
    class_csv = find_csv(root, CLASS_FILES)
    train = find_image_dir(root, TRAIN_DIRS)
    if train is None:
        raise UserError(f"{root}: no training-image folder ({' or '.join(TRAIN_DIRS)})")
    return Source(root, label_csv, class_csv, train, find_image_dir(root, TEST_DIRS))
