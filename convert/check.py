"""Verify a converted dataset loudly before anything trains on it (``python -m convert check DIR``).

:func:`check_dataset` reads only the dataset (and, when it can find it, the source CSVs) and lists every
problem it finds; it never changes a file. Checked:

- ``data.yaml``: parses, ``path`` is absolute, exists and is this folder; its ``train``/``val`` exist;
- ``manifest.csv``: the documented columns in order, one row per patient, known splits;
- every image: the PNG named in the manifest exists where its split says, is 8-bit grayscale and has the
  size the manifest's ``rows``, ``cols`` and ``scale`` imply; no image file outside the manifest; no
  patient in two splits;
- every train/val image has a label file; each line has 5 fields, class 0, coordinates in [0, 1],
  width and height > 0; the lines are exactly what ``boxes.csv`` gives for that patient, ``n_boxes``
  equals its rows there, and ``Target``/``class`` agree with ``n_boxes``;
- ``boxes.csv`` names only train/val patients of the manifest;
- ``report.json`` (or the report passed in): its counts of converted images per split and of boxes equal
  the manifest's;
- with the source folder (argument, or ``source.src`` of ``report.json``): each patient's Target, class
  and boxes equal the source CSVs, and every valid patient of the source CSVs is in the manifest or,
  with a report, among its skips (no patient silently lost);
- ``folds/fold<k>.yaml``: its lists exist, name every train/val image once, and fold k's ``val`` list is
  exactly the manifest's fold k.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from rsna_yolo.core.images import png_header
from rsna_yolo.core.labels import Labels, find_labels
from rsna_yolo.core.layout import (
    BOX_COLUMNS,
    BOXES_COLUMNS,
    BOXES_CSV,
    DATA_YAML,
    FOLDS_DIR,
    IMAGES_DIR,
    LABEL_SPLITS,
    LABELS_DIR,
    MANIFEST_COLUMNS,
    MANIFEST_CSV,
    POSITIVE_CLASS,
    REPORT_JSON,
    SPLITS,
    label_text,
)

_EPS = 1e-6  # label files carry 6 decimals


@dataclass
class CheckResult:
    """``problems``: one line each (empty = the dataset is sound); ``counts``: images per split etc."""

    problems: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def check_label_lines(text: str) -> list[str]:
    """Problems in one YOLO label file's ``text`` (empty list = fine; empty text = background).

    >>> check_label_lines("0 0.5 0.5 0.2 0.2\\n"), check_label_lines("0 0.5 1.2 0.2\\n")
    ([], ['line 1: 4 fields, expected 5'])
    """
    problems = []
    for i, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if len(fields) != 5:
            problems.append(f"line {i}: {len(fields)} fields, expected 5")
            continue
        if fields[0] != "0":
            problems.append(f"line {i}: class {fields[0]!r}, expected 0")
        try:
            cx, cy, w, h = map(float, fields[1:])
        except ValueError:
            problems.append(f"line {i}: non-numeric coordinate")
            continue
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
            problems.append(f"line {i}: coordinate outside [0, 1]")
        elif w <= 0 or h <= 0:
            problems.append(f"line {i}: zero width or height")
        elif cx - w / 2 < -_EPS or cy - h / 2 < -_EPS or cx + w / 2 > 1 + _EPS or cy + h / 2 > 1 + _EPS:
            problems.append(f"line {i}: box reaches past the image edge")
    return problems


def _check_data_yaml(out: Path, problems: list[str]) -> None:
    path = out / DATA_YAML
    if not path.is_file():
        problems.append(f"{path}: missing")
        return
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        problems.append(f"{path}: not valid YAML ({exc})")
        return
    root = Path(str(data.get("path", "")))
    if not root.is_absolute():
        problems.append(
            f"{path}: path {str(root)!r} is not absolute (Ultralytics would resolve it elsewhere)"
        )
    elif not root.is_dir():
        problems.append(f"{path}: path {root} does not exist")
    elif root.resolve() != out:
        problems.append(f"{path}: path {root} is not this dataset ({out}); was the folder moved?")
    for key in ("train", "val"):
        if key not in data or not (root / str(data[key])).exists():
            problems.append(f"{path}: {key} {data.get(key)!r} missing or not found")
    if data.get("names") not in ({0: "opacity"}, ["opacity"]):
        problems.append(f"{path}: names {data.get('names')!r}, expected {{0: opacity}}")


def check_dataset(
    out: str | Path,
    src: str | Path | None = None,
    *,
    labels: Labels | None = None,
    report: dict | None = None,
) -> CheckResult:
    """Verify the converted dataset in ``out`` (see the module docstring); never modifies anything.

    ``src``: the Kaggle folder it came from, to compare labels with the source CSVs; by default taken
    from ``report.json`` when that folder still exists. ``labels``: that folder's CSVs already parsed
    (:func:`rsna_yolo.core.labels.find_labels`), to save reading them again. ``report``: the conversion report
    (``counts`` and ``skips``) to compare counts with; by default ``out/report.json`` when present.
    """
    out = Path(out).expanduser().resolve()
    result = CheckResult()
    problems = result.problems
    if not out.is_dir():
        problems.append(f"{out}: not a folder")
        return result
    _check_data_yaml(out, problems)

    manifest_path = out / MANIFEST_CSV
    if not manifest_path.is_file():
        problems.append(f"{manifest_path}: missing")
        return result
    columns, manifest = _read_csv(manifest_path)
    if tuple(columns) != MANIFEST_COLUMNS:
        problems.append(f"{manifest_path}: columns {columns}, expected {list(MANIFEST_COLUMNS)}")
        return result
    boxes_path = out / BOXES_CSV
    boxes: dict[str, list[list[float]]] = defaultdict(list)
    if not boxes_path.is_file():
        problems.append(f"{boxes_path}: missing")
    else:
        box_columns, box_rows = _read_csv(boxes_path)
        if tuple(box_columns) != BOXES_COLUMNS:
            problems.append(
                f"{boxes_path}: columns {box_columns}, expected patientId,{','.join(BOX_COLUMNS)}"
            )
        else:
            for r in box_rows:
                boxes[r["patientId"]].append([float(r[c]) for c in BOX_COLUMNS])

    seen: dict[str, str] = {}
    for n, row in enumerate(manifest, start=2):
        pid, split = row["patientId"], row["split"]
        where = f"manifest.csv:{n} ({pid})"
        if pid in seen:
            problems.append(f"{where}: patient listed twice (splits {seen[pid]} and {split})")
            continue
        seen[pid] = split
        if split not in SPLITS:
            problems.append(f"{where}: unknown split {split!r}")
            continue
        _check_image(out, row, where, problems)
        if split == "test":
            if (out / LABELS_DIR / "test" / f"{pid}.txt").exists():
                problems.append(f"{where}: test image has a label file")
            continue
        _check_label(out, row, boxes.get(pid, []), where, problems)
    labelled = {pid for pid, split in seen.items() if split != "test"}
    for pid in sorted(set(boxes) - labelled):
        problems.append(f"boxes.csv: patient {pid} is not a train/val image of the manifest")
    _check_files_on_disk(out, seen, problems)
    if report is None:
        report = _read_report(out)
    if report is not None:
        _check_report_counts(report, seen, boxes, problems)
    _check_source(out, src, manifest, boxes, problems, labels, report)
    _check_folds(out, manifest, problems)

    result.counts = {split: sum(1 for s in seen.values() if s == split) for split in SPLITS}
    for split in LABEL_SPLITS:
        if not result.counts[split]:
            problems.append(f"{manifest_path}: no {split} images (Ultralytics needs both train and val)")
    result.counts["boxes"] = sum(len(boxes.get(pid, [])) for pid in labelled)
    return result


def _check_image(out: Path, row: dict, where: str, problems: list[str]) -> None:
    pid, split = row["patientId"], row["split"]
    expected_rel = f"images/{split}/{pid}.png"
    if row["png"] != expected_rel:
        problems.append(f"{where}: png {row['png']!r}, expected {expected_rel!r}")
    png = out / expected_rel
    header = png_header(png)
    if header is None:
        problems.append(f"{where}: {expected_rel} missing or not a PNG")
        return
    try:
        rows, cols, png_scale = int(row["rows"]), int(row["cols"]), float(row["scale"])
    except ValueError:
        problems.append(f"{where}: rows/cols/scale not numbers")
        return
    size = (int(np.floor(cols * png_scale + 0.5)), int(np.floor(rows * png_scale + 0.5)))
    if header[:2] != size or header[2:] != (8, 0):
        problems.append(f"{where}: {expected_rel} is {header[0]}x{header[1]}, depth {header[2]}, colour type "
                        f"{header[3]}; expected {size[0]}x{size[1]} 8-bit grayscale")  # fmt: skip


def _check_label(out: Path, row: dict, boxes: list, where: str, problems: list[str]) -> None:
    pid, split = row["patientId"], row["split"]
    label = out / LABELS_DIR / split / f"{pid}.txt"
    if not label.is_file():
        problems.append(f"{where}: label file labels/{split}/{pid}.txt missing")
        return
    text = label.read_text()
    problems.extend(f"{where}: labels/{split}/{pid}.txt {p}" for p in check_label_lines(text))
    n_boxes = int(row["n_boxes"]) if row["n_boxes"].isdigit() else -1
    if n_boxes != len(boxes):
        problems.append(f"{where}: n_boxes {row['n_boxes']!r} but boxes.csv has {len(boxes)}")
    positive = row["Target"] == "1"
    if positive != (n_boxes > 0) or positive != (row["class"] == POSITIVE_CLASS):
        problems.append(
            f"{where}: Target {row['Target']!r}, class {row['class']!r}, n_boxes {n_boxes} disagree"
        )
    try:
        expected = label_text(boxes, int(row["rows"]), int(row["cols"]))
    except ValueError:
        return
    if text != expected:
        problems.append(f"{where}: labels/{split}/{pid}.txt does not match its boxes.csv rows")


def _check_files_on_disk(out: Path, seen: dict[str, str], problems: list[str]) -> None:
    found: dict[str, list[str]] = defaultdict(list)
    for split in SPLITS:
        for png in sorted((out / IMAGES_DIR / split).glob("*.png")):
            found[png.stem].append(split)
            if seen.get(png.stem) != split:
                problems.append(f"images/{split}/{png.name}: not in manifest.csv as a {split} image")
        if split == "test":
            continue
        for txt in sorted((out / LABELS_DIR / split).glob("*.txt")):
            if seen.get(txt.stem) != split:
                problems.append(f"labels/{split}/{txt.name}: no {split} image in manifest.csv")
    for pid, splits in sorted(found.items()):
        if len(splits) > 1:
            problems.append(f"patient {pid} has images in several splits: {', '.join(splits)}")


def _read_report(out: Path) -> dict | None:
    """``out/report.json`` as a dict, or None when it is missing or unreadable."""
    try:
        report = json.loads((out / REPORT_JSON).read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _check_report_counts(report: dict, seen: dict[str, str], boxes: dict, problems: list[str]) -> None:
    """The report's image counts per split and box count against the manifest and ``boxes.csv``."""
    counts = report.get("counts")
    if not isinstance(counts, dict):
        problems.append("report.json: no counts")
        return
    mine = {split: sum(1 for s in seen.values() if s == split) for split in SPLITS}
    mine["converted"] = len(seen)
    mine["boxes"] = sum(len(boxes.get(pid, [])) for pid, split in seen.items() if split != "test")
    for key, value in mine.items():
        if counts.get(key) != value:
            problems.append(f"report.json: {key} {counts.get(key)!r}, but the dataset has {value}")


def _check_source(
    out: Path,
    src,
    manifest: list[dict],
    boxes: dict,
    problems: list[str],
    labels: Labels | None,
    report: dict | None = None,
) -> None:
    """Compare Target, class and boxes of every train/val patient with the source CSVs, and account for
    every valid source patient (in the manifest or among the report's skips)."""
    if labels is None:
        labels = _source_labels(out, src, problems)
        if labels is None:
            return
    _compare_with_source(labels, src, manifest, boxes, problems)
    if report is None:  # without the skips, a patient with no DICOM cannot be told from a lost one
        return
    in_manifest = {row["patientId"] for row in manifest}
    skipped = {s.get("patientId") for s in report.get("skips", []) if isinstance(s, dict)}
    lost = [pid for pid in labels.patients.index if pid not in in_manifest and pid not in skipped]
    if lost:
        problems.append(
            f"{len(lost)} valid patient(s) of the source CSVs neither in manifest.csv nor among "
            f"report.json's skips, e.g. {lost[0]}"
        )


def _source_labels(out: Path, src, problems: list[str]) -> Labels | None:
    """The source CSVs of ``src`` (default: ``source.src`` of ``report.json``), or None."""
    if src is None:
        try:
            src = json.loads((out / REPORT_JSON).read_text())["source"]["src"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not Path(src).is_dir():
            return None
    try:
        return find_labels(src)
    except Exception as exc:  # the check reports, it does not crash
        problems.append(f"source {src}: cannot read its CSVs ({exc})")
        return None


def _compare_with_source(labels: Labels, src, manifest: list[dict], boxes: dict, problems: list[str]) -> None:
    """Target, class and boxes of each train/val patient of the manifest against ``labels``."""
    wanted = {row["patientId"] for row in manifest if row["split"] != "test"}
    truth = labels.boxes[labels.boxes["patientId"].isin(wanted)]
    truth_boxes = {
        pid: g[list(BOX_COLUMNS)].to_numpy(dtype=np.float64) for pid, g in truth.groupby("patientId")
    }
    for row in manifest:
        pid = row["patientId"]
        if row["split"] == "test":
            continue
        if pid not in labels.patients.index:
            problems.append(f"manifest.csv ({pid}): not a valid patient of the source CSVs in {src}")
            continue
        rec = labels.patients.loc[pid]
        if row["Target"] != str(rec["Target"]) or row["class"] != rec["class"]:
            problems.append(f"manifest.csv ({pid}): Target/class differ from the source CSVs")
        mine = np.array(boxes.get(pid, []), dtype=np.float64).reshape(-1, 4)
        theirs = truth_boxes.get(pid, np.zeros((0, 4)))
        if mine.shape != theirs.shape or not np.array_equal(mine, theirs):
            problems.append(f"boxes.csv ({pid}): boxes differ from the source CSVs")


def _check_folds(out: Path, manifest: list[dict], problems: list[str]) -> None:
    folder = out / FOLDS_DIR
    yamls = sorted(folder.glob("fold*.yaml")) if folder.is_dir() else []
    labelled = {str(out / r["png"]) for r in manifest if r["split"] != "test"}
    for path in yamls:
        k = path.stem.removeprefix("fold")
        try:
            data = yaml.safe_load(path.read_text())
            lists = {name: Path(data["path"]) / data[name] for name in ("train", "val")}
            paths = {name: p.read_text().splitlines() for name, p in lists.items()}
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
            problems.append(f"{path}: unreadable ({exc})")
            continue
        listed = paths["train"] + paths["val"]
        if len(listed) != len(set(listed)) or set(listed) != labelled:
            problems.append(f"{path}: train + val lists do not name every train/val image exactly once")
        fold_val = {str(out / r["png"]) for r in manifest if r["split"] != "test" and r["fold"] == k}
        if set(paths["val"]) != fold_val:
            problems.append(f"{path}: val list differs from the manifest's fold {k}")
        missing = [p for p in listed if not Path(p).is_file()]
        if missing:
            problems.append(f"{path}: {len(missing)} listed images missing, e.g. {missing[0]}")
