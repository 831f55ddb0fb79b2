"""Convert a Kaggle-layout RSNA folder (DICOMs + CSVs) to a verified Ultralytics YOLO dataset.

One image's journey lives in :func:`convert.jobs.convert_one`: read the DICOM, map it to 8-bit
(:func:`rsna_yolo.core.dicom.dicom_to_uint8`), resize so the longer side is ``imgsz``, write the PNG, write
the YOLO label (:func:`rsna_yolo.core.boxes.rsna_boxes_to_yolo`). :func:`convert_rsna` plans those jobs
(which images, which split, which folds), runs them across processes (:func:`convert.jobs.run_jobs`) and
writes ``data.yaml``, ``folds/``, ``manifest.csv``, ``boxes.csv`` and
``report.json`` (layout and columns: docs/ARCHITECTURE.md), then runs :func:`convert.check.check_dataset`.

Guarantees:

- bad input never stops the run: every DICOM, CSV row or patient left out becomes one skip line in the
  printed summary and in ``report.json``;
- nothing is written outside ``out``: every output folder is resolved and checked to lie inside it, and
  the files in it are named by patientIds that passed :func:`rsna_yolo.core.labels.is_safe_id`;
- interrupt-safe and resumable: each file is written to a temporary file in its folder and renamed into
  place, so a file that exists is complete (after a killed process; there is no fsync against power
  loss); a rerun reuses every image whose PNG (right size) and label
  (right content) are already there, and ends with the same bytes as an uninterrupted run. The files
  hold no timestamps; ``data.yaml`` and the fold lists hold the absolute dataset path (Ultralytics needs
  it), ``report.json`` the absolute source path. Timings are printed, never written;
- files from an earlier run with other settings that no longer belong (other split, other folds, temp
  files of a killed run) are removed from the folders this converter owns.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections import Counter
from pathlib import Path

import numpy as np

from convert.jobs import Job, outside_boxes, run_jobs, space_warning
from convert.split import split_patients
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.download import Source, find_source
from rsna_yolo.core.io import TMP_SUFFIX, write_atomic
from rsna_yolo.core.labels import Labels, Skip, is_safe_id, read_labels
from rsna_yolo.core.layout import (
    BOX_COLUMNS,
    BOXES_COLUMNS,
    BOXES_CSV,
    DATA_YAML,
    FOLDS_DIR,
    IMAGES_DIR,
    LABELS_DIR,
    MANIFEST_COLUMNS,
    MANIFEST_CSV,
    REPORT_JSON,
    SPLITS,
    data_yaml_text,
    fold_list_name,
    fold_yaml_name,
)
from rsna_yolo.core.workers import available_cpus

MAX_PRINTED_SKIPS = 5
"""Examples printed per kind of skip (report.json lists them all)."""
MAX_PRINTED_PROBLEMS = 20


def inside(out: Path, relative: str | Path) -> Path:
    """``out / relative`` resolved, refusing anything that would land outside ``out`` (already resolved)."""
    path = (out / relative).resolve()
    if not path.is_relative_to(out):
        raise UserError(f"refusing to write outside --out {out}: {relative} resolves to {path}")
    return path


def in_folder(folder: Path, name: str) -> Path:
    """``folder / name`` for a plain file name; ``folder`` was checked with :func:`inside` already.

    A name without separators that is not ``.``/``..`` cannot leave ``folder``, and files are replaced
    by rename, which replaces a symlink itself rather than writing through it.
    """
    if "/" in name or "\\" in name or name in {".", ".."}:
        raise ValueError(f"not a plain file name: {name!r}")
    return folder / name


def _dicoms(folder: Path) -> list[Path]:
    """``*.dcm`` files directly in ``folder`` (any case of the suffix), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".dcm" and p.is_file())


def _fmt(value) -> str:
    """A manifest/boxes cell: empty for missing, ``repr`` for floats (round-trips exactly)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return repr(float(value))
    return str(value)


def _csv_bytes(header, rows) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_fmt(v) for v in row] for row in rows])
    return buf.getvalue().encode()


def plan(
    source: Source, labels: Labels, out: Path, *, imgsz: int, val_fraction: float, folds: int, seed: int
) -> tuple[list[Job], dict[str, dict], list[Skip]]:
    """Match DICOMs with labels, split, and list the jobs.

    Returns ``(jobs, rows, skips)``: ``rows`` maps patientId to its manifest fields known before
    conversion (split, fold, class, Target, n_boxes); ``skips`` lists DICOMs and CSV patients left out.
    """
    skips: list[Skip] = []
    skipped_ids = {s.patientId for s in labels.skips}
    rel = lambda p: p.relative_to(source.root).as_posix()  # noqa: E731

    train_files: dict[str, Path] = {}
    for path in _dicoms(source.train_dir):
        pid = path.stem
        if not is_safe_id(pid):
            skips.append(Skip(rel(path), None, pid, "file name is not a plain patientId"))
        elif pid in train_files:  # a.dcm and a.DCM: keep the first by name, never overwrite silently
            why = f"second DICOM of this patientId, kept '{rel(train_files[pid])}'"
            skips.append(Skip(rel(path), None, pid, why))
        elif pid not in labels.patients.index:
            why = "its CSV rows were skipped" if pid in skipped_ids else f"no row in {labels.label_file}"
            skips.append(Skip(rel(path), None, pid, why))
        else:
            train_files[pid] = path
    no_dicom = f"no DICOM in {rel(source.train_dir)}/"
    for pid, row in labels.patients["row"].items():
        if pid not in train_files:
            skips.append(Skip(labels.label_file, int(row), pid, no_dicom))

    test_files: dict[str, Path] = {}
    if source.test_dir is not None:
        for path in _dicoms(source.test_dir):
            pid = path.stem
            if not is_safe_id(pid):
                skips.append(Skip(rel(path), None, pid, "file name is not a plain patientId"))
            elif pid in train_files:
                skips.append(
                    Skip(rel(path), None, pid, "also a training patientId (no patient in two splits)")
                )
            elif pid in test_files:
                why = f"second DICOM of this patientId, kept '{rel(test_files[pid])}'"
                skips.append(Skip(rel(path), None, pid, why))
            else:
                test_files[pid] = path

    patients = labels.patients.loc[sorted(train_files)]
    assignment = split_patients(patients["class"], val_fraction=val_fraction, folds=folds, seed=seed)
    boxes_by_id = {
        pid: tuple(map(tuple, grp[list(BOX_COLUMNS)].to_numpy(dtype=np.float64).tolist()))
        for pid, grp in labels.boxes[labels.boxes["patientId"].isin(train_files)].groupby("patientId")
    }
    folders = {
        (kind, split): inside(out, f"{kind}/{split}")
        for kind in (IMAGES_DIR, LABELS_DIR)
        for split in SPLITS
        if (kind, split) != (LABELS_DIR, "test")
    }
    jobs: list[Job] = []
    rows: dict[str, dict] = {}
    for pid, rec in patients.iterrows():
        split = assignment.at[pid, "split"]
        rows[pid] = {
            "split": split,
            "fold": int(assignment.at[pid, "fold"]),
            "class": rec["class"],
            "Target": int(rec["Target"]),
            "n_boxes": int(rec["n_boxes"]),
        }
        jobs.append(
            Job(
                pid,
                train_files[pid],
                in_folder(folders[IMAGES_DIR, split], f"{pid}.png"),
                in_folder(folders[LABELS_DIR, split], f"{pid}.txt"),
                boxes_by_id.get(pid, ()),
                imgsz,
            )
        )
    for pid in sorted(test_files):
        rows[pid] = {"split": "test", "fold": None, "class": None, "Target": None, "n_boxes": None}
        png = in_folder(folders[IMAGES_DIR, "test"], f"{pid}.png")
        jobs.append(Job(pid, test_files[pid], png, None, (), imgsz))
    return jobs, rows, skips


def write_outputs(out: Path, manifest: list[dict], labels: Labels, folds: int) -> list[Path]:
    """Write ``manifest.csv``, ``boxes.csv``, ``data.yaml`` and the fold files; return every path written."""
    written: list[Path] = []

    def put(relative: str, data: bytes) -> None:
        path = inside(out, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        written.append(path)

    put(MANIFEST_CSV, _csv_bytes(MANIFEST_COLUMNS, [[r[c] for c in MANIFEST_COLUMNS] for r in manifest]))
    labelled = {r["patientId"] for r in manifest if r["split"] != "test"}
    truth = labels.boxes[labels.boxes["patientId"].isin(labelled)]
    put(BOXES_CSV, _csv_bytes(BOXES_COLUMNS, truth[list(BOXES_COLUMNS)].to_numpy()))
    has_test = any(r["split"] == "test" for r in manifest)
    test = "images/test" if has_test else None
    put(DATA_YAML, data_yaml_text(out, "images/train", "images/val", test).encode())
    for k in range(folds):
        lists = {"train": [], "val": []}
        for r in manifest:
            if r["split"] != "test":
                lists["val" if r["fold"] == k else "train"].append(str(out / r["png"]))
        for name, paths in lists.items():
            put(f"{FOLDS_DIR}/{fold_list_name(k, name)}", "".join(p + "\n" for p in paths).encode())
        lists = [f"{FOLDS_DIR}/{fold_list_name(k, s)}" for s in ("train", "val")]
        fold_yaml = data_yaml_text(out, *lists, test)
        put(f"{FOLDS_DIR}/{fold_yaml_name(k)}", fold_yaml.encode())
    return written


def remove_stale(out: Path, keep: set[Path]) -> int:
    """Delete files this converter owns that are not in ``keep`` (earlier settings, killed-run temps).

    Only ``*.png`` / ``*.txt`` / ``*.yaml`` / temp files inside ``images/``, ``labels/`` and ``folds/``
    are considered; anything else in ``out`` is left alone. Returns the number removed.
    """
    removed = 0
    for sub in (IMAGES_DIR, LABELS_DIR, FOLDS_DIR):
        folder = out / sub
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            owned = path.suffix in {".png", ".txt", ".yaml"} or path.name.endswith(TMP_SUFFIX)
            # rglob yields paths under the resolved ``out``, spelled as the kept ones are.
            if path.is_file() and owned and path not in keep:
                path.unlink()
                removed += 1
    for path in out.glob(f".*{TMP_SUFFIX}"):
        path.unlink()
        removed += 1
    return removed


def summary_lines(report: dict, examples: int = MAX_PRINTED_SKIPS) -> list[str]:
    """A short human summary of a conversion report: counts, then each kind of skip with a few examples."""
    c = report["counts"]
    lines = [
        f"converted {c['converted']} images: train {c['train']}, val {c['val']}, test {c['test']} "
        f"({c['train_positive'] + c['val_positive']} with opacity, {c['boxes']} boxes); "
        f"skipped {c['skipped']}",
    ]
    by_kind: dict[str, list[Skip]] = {}
    for d in report["skips"]:
        skip = Skip(**d)
        by_kind.setdefault(_reason_kind(skip.reason), []).append(skip)
    for kind, group in sorted(by_kind.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"  skipped {len(group)} x {kind}:")
        lines.extend(f"    {skip.line()}" for skip in group[:examples])
        if len(group) > examples:
            lines.append(f"    ... and {len(group) - examples} more, all listed in report.json")
    return lines


def _reason_kind(reason: str) -> str:
    """Group skip reasons for the summary: drop the parts that differ per row (quoted values, row lists)."""
    kind = reason.split(" (rows ")[0].split(" of row ")[0]
    return kind.split(" '")[0] if "'" in kind else kind


def refuse_resplit(out: Path, **split) -> None:
    """:class:`UserError` when ``out`` holds a dataset split otherwise (its ``report.json`` settings: fold
    count, seed, val fraction): converting into it would re-split its images under the runs trained on it.

    >>> import tempfile
    >>> settings = '{"settings": {"folds": 5, "seed": 0, "val_fraction": null}}'
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / REPORT_JSON).write_text(settings)
    ...     refuse_resplit(Path(d), folds=5, seed=0, val_fraction=None)
    ...     try:
    ...         refuse_resplit(Path(d), folds=3, seed=0, val_fraction=None)
    ...     except UserError as exc:
    ...         print(str(exc).split(": ")[1].split(";")[0])
    split with --folds 5 --seed 0, not --folds 3 --seed 0
    """
    try:
        settings = json.loads((out / REPORT_JSON).read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # a new folder, or one without a finished conversion: nothing to protect
    before = {key: settings.get(key) for key in split}
    if before == split:
        return

    def words(values: dict) -> str:
        names = {"folds": "--folds", "seed": "--seed", "val_fraction": "--val-fraction"}
        return " ".join(f"{names[k]} {v}" for k, v in values.items() if v is not None)

    raise UserError(
        f"--out {out}: split with {words(before)}, not {words(split)}; converting would re-split its images "
        "(and the runs trained on them): choose another folder, or the same split settings"
    )


def convert_rsna(
    src: str | Path,
    out: str | Path,
    *,
    imgsz: int = 1024,
    val_fraction: float = 0.2,
    folds: int = 0,
    seed: int = 0,
    workers: int | None = None,
    classify: bool = False,
    binary: bool = False,
    progress: bool = True,
    echo=print,
) -> dict:
    """Convert the Kaggle-layout folder ``src`` into a YOLO dataset in ``out``; return the report.

    ``imgsz``: longer side of the written PNGs (1024 = native for RSNA). ``val_fraction``: share of each
    class in ``val`` (ignored with ``folds``, where fold 0 is ``val``). ``folds``: K >= 2 writes
    ``folds/fold<k>.yaml`` for K-fold cross-validation over the same images. ``workers``: processes
    (default all cores). ``classify``: also write the classification view (``binary``: opacity /
    no_opacity) with :func:`convert.classify.write_classify_view`, its summary in the returned report's
    ``classify``. ``echo``: where the summary lines go (``print``; a no-op to silence).

    The report (also ``out/report.json``) holds ``source``, ``settings``, ``counts``,
    ``skipped_by_reason``, ``skips`` (each ``{file, row, patientId, reason}``) and ``check``
    (``{ok, problems}`` from :func:`convert.check.check_dataset`). Bad input is skipped and reported, never
    raised; a ``src`` without the Kaggle files raises :class:`UserError`.
    """
    from convert.check import check_dataset

    if imgsz < 1:
        raise UserError(f"--imgsz must be positive, got {imgsz}")
    if folds < 0 or folds == 1:
        raise UserError(f"--folds must be 0 (no cross-validation) or at least 2, got {folds}")
    if not folds and not 0.0 < val_fraction < 1.0:
        raise UserError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if binary and not classify:
        raise UserError("--binary is an option of --classify (the classification view); add --classify")
    started = time.perf_counter()
    source = find_source(src)
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    # Stale-file clean-up works in out/{images,labels,folds}: the source must not live there.
    if out == source.root or any(
        source.root.is_relative_to(out / d) for d in (IMAGES_DIR, LABELS_DIR, FOLDS_DIR)
    ):
        raise UserError(f"--out {out} must not be --src or hold it in images/, labels/ or folds/")
    refuse_resplit(out, folds=folds, seed=seed, val_fraction=None if folds else val_fraction)
    labels = read_labels(source.label_csv, source.class_csv)
    jobs, rows, skips = plan(
        source, labels, out, imgsz=imgsz, val_fraction=val_fraction, folds=folds, seed=seed
    )
    for split in SPLITS:
        inside(out, f"images/{split}").mkdir(parents=True, exist_ok=True)
        if split != "test":
            inside(out, f"labels/{split}").mkdir(parents=True, exist_ok=True)

    warning = space_warning(out, jobs, imgsz)
    if warning:
        echo(warning)
    workers = max(1, workers or available_cpus())
    results = run_jobs(jobs, workers, progress=progress)

    manifest: list[dict] = []
    keep: set[Path] = set()
    reused = 0
    for job, result in zip(jobs, results, strict=True):
        if not result["ok"]:
            skips.append(
                Skip(job.dicom.relative_to(source.root).as_posix(), None, job.patient_id, result["reason"])
            )
            continue
        reused += result["reused"]
        meta = result["meta"]
        outside = outside_boxes(job.boxes, meta["rows"], meta["cols"])
        if outside.any():  # rare: a box beyond a small image; say so rather than drop it silently
            csv_rows = labels.boxes.loc[labels.boxes["patientId"] == job.patient_id, "row"].to_numpy()
            why = "box lies wholly outside the image: left out of the label file (kept in boxes.csv)"
            skips.extend(Skip(labels.label_file, int(r), job.patient_id, why) for r in csv_rows[outside])
        keep.add(job.png)
        if job.label is not None:
            keep.add(job.label)
        manifest.append(
            {
                "patientId": job.patient_id,
                **rows[job.patient_id],
                "PatientAge": meta["PatientAge"],
                "PatientSex": meta["PatientSex"],
                "ViewPosition": meta["ViewPosition"],
                "rows": meta["rows"],
                "cols": meta["cols"],
                "png": job.png.relative_to(out).as_posix(),
                "scale": result["png_scale"],  # the manifest column keeps its name
            }
        )
    manifest.sort(key=lambda r: r["patientId"])
    keep.update(write_outputs(out, manifest, labels, folds))
    removed = remove_stale(out, keep)

    all_skips = sorted(
        [*labels.skips, *skips],
        key=lambda s: (s.file, s.row if s.row is not None else -1, s.patientId, s.reason),
    )
    split_counts = Counter(r["split"] for r in manifest)
    positives = Counter(r["split"] for r in manifest if r["Target"] == 1)
    report = {
        "source": {
            "src": str(source.root),
            "labels": source.label_csv.name,
            "classes": source.class_csv.name,
            "train_images": source.train_dir.name,
            "test_images": source.test_dir.name if source.test_dir else None,
        },
        "settings": {
            "imgsz": imgsz,
            "val_fraction": None if folds else val_fraction,
            "folds": folds,
            "seed": seed,
        },
        "counts": {
            "converted": len(manifest),
            **{split: split_counts[split] for split in SPLITS},
            "train_positive": positives["train"],
            "val_positive": positives["val"],
            "boxes": sum(r["n_boxes"] or 0 for r in manifest),
            "skipped": len(all_skips),
        },
        "skipped_by_reason": dict(sorted(Counter(_reason_kind(s.reason) for s in all_skips).items())),
        "skips": [s.as_dict() for s in all_skips],
    }
    result = check_dataset(out, src=source.root, labels=labels, report=report)
    report["check"] = {"ok": result.ok, "problems": result.problems}
    write_atomic(inside(out, REPORT_JSON), (json.dumps(report, indent=1) + "\n").encode())

    for line in summary_lines(report):
        echo(line)
    elapsed = time.perf_counter() - started
    done = len(manifest) - reused
    echo(
        f"{done} images converted and {reused} reused from an earlier run in {elapsed:.1f} s "
        f"on {workers} worker(s); removed {removed} stale files"
    )
    if result.ok:
        echo(f"check: OK. Dataset: {out / DATA_YAML}")
    else:
        for problem in result.problems[:MAX_PRINTED_PROBLEMS]:
            echo(f"check: {problem}")
        echo(f"check: {len(result.problems)} problem(s) in {out}")
    if classify:
        from convert.classify import write_classify_view

        return {**report, "classify": write_classify_view(out, binary=binary)}
    return report
