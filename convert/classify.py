"""A classification view of a converted dataset: the three image classes as folders of links.

``yolo classify train data=D/classify`` (and ``python -m train task=classify``) read
``D/classify/{train,val}/<class>/*.png``; the class folders are :data:`rsna_yolo.core.layout.CLASS_DIRS`
(``lung_opacity``, ``not_normal``, ``normal``) or, with ``binary``, :data:`rsna_yolo.core.layout.BINARY_DIRS`
(``opacity`` against ``no_opacity``, in ``D/classify_binary``). Each file is a relative symbolic link to
the detection PNG (``../../../images/<split>/<patientId>.png``): nothing is decoded or copied, and the
dataset folder can move. With folds (``D/folds/fold<k>_{train,val}.txt``) each fold gets
``D/classify[_binary]/fold<k>/{train,val}/<class>/`` too.

The view is built in a temporary folder beside it and swapped in whole, so an interrupted run leaves the
previous view (or none), never half of one; a rerun rebuilds it from ``manifest.csv``.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import stale_temps, temp_path
from rsna_yolo.core.layout import (
    BINARY_DIRS,
    CLASS_DIRS,
    FOLDS_DIR,
    LABEL_SPLITS,
    MANIFEST_CSV,
    VIEW_DIRS,
    fold_name,
    read_dataset,
)


def _link(folder: Path, target: Path) -> None:
    """A relative symbolic link ``folder/<target name>`` -> ``target``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / target.name).symlink_to(os.path.relpath(target, folder))


def _fold_lists(root: Path) -> dict[int, dict[str, list[str]]]:
    """``{k: {"train": [patientId...], "val": [...]}}`` from ``D/folds/fold<k>_{train,val}.txt``."""
    folds: dict[int, dict[str, list[str]]] = {}
    for path in sorted((root / FOLDS_DIR).glob("fold*_*.txt")):
        stem, _, split = path.stem.rpartition("_")
        if split in LABEL_SPLITS and stem.removeprefix("fold").isdigit():
            lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
            folds.setdefault(int(stem.removeprefix("fold")), {})[split] = [Path(ln).stem for ln in lines]
    return {k: v for k, v in folds.items() if set(v) == set(LABEL_SPLITS)}


def write_classify_view(dataset: str | Path, *, binary: bool = False, folds: bool = True) -> dict:
    """Write ``D/classify`` (or ``D/classify_binary``) for the converted dataset ``D`` (its folder or
    ``data.yaml``); returns ``{"view", "counts": {split: {folder: n}}, "folds": [k...]}``.

    Every labelled image of ``manifest.csv`` is linked once per split, into the folder of its class.
    Raises :class:`UserError` for a dataset without a manifest or with a class outside the three.
    """
    root, manifest = read_dataset(dataset)
    dirs = BINARY_DIRS if binary else CLASS_DIRS
    labelled = manifest[manifest["split"].isin(LABEL_SPLITS)]
    unknown = sorted(set(labelled["class"].dropna()) - set(dirs)) + (
        ["(empty)"] if labelled["class"].isna().any() else []
    )
    if unknown:
        raise UserError(f"{root / MANIFEST_CSV}: class(es) {unknown} are not the three RSNA classes")
    png = {str(p): root / str(f) for p, f in zip(labelled["patientId"], labelled["png"], strict=True)}
    missing = [str(path) for path in png.values() if not path.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: missing ({len(missing)} PNG(s) of the manifest); rerun convert rsna")
    folder_of = {str(p): dirs[c] for p, c in zip(labelled["patientId"], labelled["class"], strict=True)}

    view = root / VIEW_DIRS[binary]
    tmp = temp_path(view)
    for stale in stale_temps(view):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    ids_of = labelled.groupby("split")["patientId"].apply(lambda ids: ids.astype(str).tolist())
    splits = {"": {s: ids_of.get(s, []) for s in LABEL_SPLITS}}
    fold_ids = _fold_lists(root) if folds else {}
    for k, lists in fold_ids.items():
        unknown_ids = [i for ids in lists.values() for i in ids if i not in png]
        if unknown_ids:
            raise UserError(f"{root / FOLDS_DIR}: fold {k} names {unknown_ids[0]}, not a labelled image here")
        splits[fold_name(k)] = lists
    counts: dict[str, Counter] = {}
    for prefix, lists in splits.items():
        for split, ids in lists.items():
            key = f"{prefix}/{split}" if prefix else split
            counts[key] = Counter()
            for pid in ids:
                _link(tmp / prefix / split / folder_of[pid], png[pid])
                counts[key][folder_of[pid]] += 1
    tmp.mkdir(exist_ok=True)  # an empty dataset still gets its (empty) view
    old = temp_path(view, "old")
    if view.exists():
        view.rename(old)
    tmp.rename(view)
    shutil.rmtree(old, ignore_errors=True)
    return {
        "view": str(view),
        "counts": {k: dict(sorted(c.items())) for k, c in counts.items()},
        "folds": sorted(fold_ids),
    }


def view_counts_frame(summary: dict) -> pd.DataFrame:
    """The counts of :func:`write_classify_view` as a table: one row per split, one column per class."""
    return pd.DataFrame(summary["counts"]).T.fillna(0).astype(int)
