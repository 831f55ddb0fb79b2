"""A converted dataset's contract: what ``python -m convert rsna`` writes and every other command reads.

The writer (``convert.rsna``), the checker (``convert.check``), the scorer and the predictor
(``analysis``) and training (``train``) all take the layout from here, so none of them imports another:

```
D/images/{train,val,test}/<patientId>.png   8-bit grayscale, longer side = imgsz
D/labels/{train,val}/<patientId>.txt        YOLO lines "0 cx cy w h" (cxcywh_norm); empty = background
D/data.yaml                                 path: <absolute D>, train/val(/test): images/<split>, names
D/folds/fold<k>.yaml + fold<k>_{train,val}.txt   image lists of fold k (--folds K)
D/manifest.csv                              one row per image, MANIFEST_COLUMNS
D/boxes.csv                                 the ground truth, BOXES_COLUMNS in source pixels (xywh_px)
D/report.json                               converted/skipped counts, each skip with file/row + reason
D/classify/{train,val}/{lung_opacity,not_normal,normal}/<patientId>.png   links to the PNGs above
D/classify/fold<k>/{train,val}/<class>/<patientId>.png                    the same per fold (--folds)
D/classify_binary/...                       the same with opacity / no_opacity (--binary)
```
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rsna_yolo.core.boxes import rsna_boxes_to_yolo
from rsna_yolo.core.cli import UserError

SPLITS = ("train", "val", "test")
LABEL_SPLITS = ("train", "val")
"""The splits with labels (test images have none)."""

LUNG_OPACITY, NOT_NORMAL, NORMAL = "Lung Opacity", "No Lung Opacity / Not Normal", "Normal"
CLASSES = (LUNG_OPACITY, NOT_NORMAL, NORMAL)
"""The three image classes of ``stage_2_detailed_class_info.csv``; the split is stratified on them.
Lung Opacity (Target 1) has boxes; the other two (Target 0) have none."""
POSITIVE_CLASS = LUNG_OPACITY
NEGATIVE_CLASSES = (NORMAL, NOT_NORMAL)
"""Target-0 classes: any box on such an image costs the image its whole score."""

CLASS_DIRS = {LUNG_OPACITY: "lung_opacity", NOT_NORMAL: "not_normal", NORMAL: "normal"}
"""Folder names of the three classes in a classification view (``D/classify/<split>/<folder>/``)."""
BINARY_DIRS = {LUNG_OPACITY: "opacity", NOT_NORMAL: "no_opacity", NORMAL: "no_opacity"}
"""Folder names of the binary view (``D/classify_binary/``): Lung Opacity against the other two."""
OPACITY_DIRS = ("lung_opacity", "opacity")
"""The folder (= Ultralytics class name) whose probability is P(Lung Opacity), in either view."""

YOLO_NAMES = {0: "opacity"}
"""The single class of the detection labels (``names`` of ``data.yaml``)."""

MANIFEST_COLUMNS = (
    "patientId", "split", "fold", "class", "Target", "n_boxes", "PatientAge", "PatientSex",
    "ViewPosition", "rows", "cols", "png", "scale",
)  # fmt: skip
"""``manifest.csv`` columns, in this order (docs/ARCHITECTURE.md). ``scale`` is the PNG scale: PNG pixels
per source pixel (``png_scale`` in code)."""
BOX_COLUMNS = ("x", "y", "width", "height")
BOXES_COLUMNS = ("patientId", *BOX_COLUMNS)
"""``boxes.csv``: the ground truth, one row per valid box, in source pixels (xywh_px, unclipped)."""
PRED_COLUMNS = ["patientId", "conf", *BOX_COLUMNS]
"""``predictions_<split>.csv`` of a run: one row per predicted box, source pixels (xywh_px), unscaled."""

# The files and folders of a converted dataset: the only place their names are spelled.
IMAGES_DIR = "images"
"""A dataset's PNG folder (``images/<split>/``), as Ultralytics expects it."""
LABELS_DIR = "labels"
"""A dataset's YOLO label folder (``labels/<split>/``): Ultralytics finds it by replacing ``images``."""
MANIFEST_CSV = "manifest.csv"
BOXES_CSV = "boxes.csv"
REPORT_JSON = "report.json"
DATA_YAML = "data.yaml"
FOLDS_DIR = "folds"
"""``D/folds/``: ``fold<k>.yaml`` (:func:`fold_yaml_name`) and ``fold<k>_<split>.txt`` image lists."""
VIEW_DIRS = {False: "classify", True: "classify_binary"}
"""The classification view's folder: three classes (``D/classify``), or binary (``D/classify_binary``)."""
CLASSIFY_VIEW = VIEW_DIRS[False]


def fold_name(k: int) -> str:
    """``fold<k>``: fold ``k``'s name, as a fold YAML's stem, a view's subfolder and a fold run's folder."""
    return f"fold{int(k)}"


def fold_yaml_name(k: int) -> str:
    """``fold<k>.yaml`` in ``D/folds/``."""
    return f"{fold_name(k)}.yaml"


def fold_list_name(k: int, split: str) -> str:
    """``fold<k>_<split>.txt`` in ``D/folds/``: the image list of one split of fold ``k``."""
    return f"{fold_name(k)}_{split}.txt"


def label_text(boxes_xywh_px, rows: int, cols: int) -> str:
    """The YOLO label file content for Kaggle boxes ``(N, 4)`` in a ``rows x cols`` source image."""
    lines = rsna_boxes_to_yolo(boxes_xywh_px, width=cols, height=rows)
    return "".join(line + "\n" for line in lines)


def data_yaml_text(root: Path, train: str, val: str, test: str | None) -> str:
    """The ``data.yaml`` of a dataset at ``root`` (absolute: Ultralytics resolves a relative ``path:``
    against its own datasets folder, not the YAML's)."""
    data = {"path": str(root), "train": train, "val": val}
    if test:
        data["test"] = test
    data["names"] = dict(YOLO_NAMES)
    return yaml.safe_dump(data, sort_keys=False)


def read_manifest(path: Path) -> pd.DataFrame:
    """A dataset's ``manifest.csv`` with patientId/class/split as strings."""
    return pd.read_csv(path, dtype={"patientId": str, "class": str, "split": str})


def read_data_yaml(data_yaml: str | Path) -> tuple[Path, dict, Path]:
    """``(yaml file, its content, dataset root)``; a folder stands for its ``data.yaml``; the root is the
    YAML's ``path:`` (relative to the YAML's folder), else the YAML's folder."""
    data_yaml = Path(data_yaml)
    if data_yaml.is_dir():
        data_yaml = data_yaml / DATA_YAML
    try:
        cfg = yaml.safe_load(data_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{data_yaml}: cannot read the data YAML ({exc})") from exc
    root = Path(cfg.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = (data_yaml.parent / root).resolve()
    return data_yaml, cfg, root


def read_dataset(data_yaml: str | Path) -> tuple[Path, pd.DataFrame]:
    """Dataset root (the YAML's ``path:``, else its folder) and its ``manifest.csv``."""
    _, _, root = read_data_yaml(data_yaml)
    manifest_path = root / MANIFEST_CSV
    if not manifest_path.is_file():
        raise UserError(f"{manifest_path}: missing (was the dataset made by `python -m convert rsna`?)")
    manifest = read_manifest(manifest_path)
    for col in ("patientId", "split", "png", "scale"):
        if col not in manifest.columns:
            raise UserError(f"{manifest_path}: required column {col!r} missing")
    return root, manifest


def yaml_split_ids(
    data_yaml: str | Path, split: str, manifest: pd.DataFrame | None = None
) -> list[str] | None:
    """patientIds of the images the data YAML's ``split`` entry names, read as Ultralytics reads it (a
    folder of images or a ``.txt`` list of image paths, relative to the YAML's ``path:``); None when the
    YAML has no such entry. A fold YAML (``folds/fold<k>.yaml``) names its own val list this way. A folder
    inside the dataset stands for the ``manifest`` rows whose PNG is in it (so a PNG gone missing is
    still reported by the reader of the images, not silently skipped)."""
    data_yaml, cfg, root = read_data_yaml(data_yaml)
    entries = cfg.get(split)
    if not entries:
        return None
    ids: list[str] = []
    for entry in [entries] if isinstance(entries, str) else list(entries):
        where = Path(entry) if Path(entry).is_absolute() else root / entry
        inside = manifest is not None and where.resolve().is_relative_to(root.resolve())
        if inside and where.is_dir():
            rel = where.resolve().relative_to(root.resolve())
            in_dir = [Path(png).parent.is_relative_to(rel) for png in manifest["png"]]
            ids += manifest.loc[in_dir, "patientId"].astype(str).tolist()
        elif where.is_dir():
            ids += sorted(q.stem for q in where.rglob("*") if q.suffix.lower() in {".png", ".jpg", ".jpeg"})
        elif where.suffix == ".txt" and where.is_file():
            lines = [ln.strip() for ln in where.read_text().splitlines()]
            ids += [Path(ln).stem for ln in lines if ln]
        else:
            raise UserError(f"{data_yaml}: {split}: {entry} is neither a folder nor a .txt image list")
    return ids


def dataset_split(data_yaml: str | Path, split: str) -> tuple[Path, pd.DataFrame]:
    """:func:`read_dataset` with the manifest's ``split`` column rewritten to the images that the data YAML's
    ``split`` entry names (so a fold YAML scores its own val images, not the manifest's fold 0)."""
    root, manifest = read_dataset(data_yaml)
    ids = yaml_split_ids(data_yaml, split, manifest)
    if ids is None:
        return root, manifest
    known = set(manifest["patientId"].astype(str))
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UserError(
            f"{data_yaml}: {split}: {len(unknown)} image(s) not in {root / MANIFEST_CSV}, e.g. {unknown[0]}"
        )
    chosen = manifest["patientId"].astype(str).isin(set(ids))
    other = np.where(manifest["split"] == split, "", manifest["split"])  # the manifest's own split: not it
    return root, manifest.assign(split=np.where(chosen, split, other))
