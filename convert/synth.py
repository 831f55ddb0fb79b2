"""Realistic synthetic RSNA data: DICOMs and CSVs in the exact Kaggle layout (``python -m convert synth``).

Four modules, each usable alone:

- :mod:`convert.synth_dicom`: :func:`~convert.synth_dicom.write_dicom`, one DICOM like the real files;
- :mod:`convert.synth_sample`: the real data's statistics and :func:`~convert.synth_sample.sample_patients`;
- :mod:`convert.synth_render`: :func:`~convert.synth_render.render_radiograph`, a film from a spec;
- this module: the Kaggle CSVs and :func:`generate`, which writes the whole download.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from convert.synth_dicom import write_dicom
from convert.synth_hard import render_hard_radiograph
from convert.synth_hard_sample import harden_spec
from convert.synth_render import render_radiograph
from convert.synth_sample import PatientSpec, load_box_sets, sample_patients
from rsna_yolo.core.boxes import NATIVE_SIZE
from rsna_yolo.core.download import CLASS_FILES, LABEL_FILES, SUBMISSION_FILES, TEST_DIRS, TRAIN_DIRS
from rsna_yolo.core.io import write_atomic
from rsna_yolo.core.layout import CLASSES
from rsna_yolo.core.workers import die_with_parent

TRAIN_IMAGES, TEST_IMAGES = TRAIN_DIRS[0], TEST_DIRS[0]
LABELS_CSV, CLASS_CSV, SUBMISSION_CSV = LABEL_FILES[0], CLASS_FILES[0], SUBMISSION_FILES[0]
"""The stage-2 names, as the real download has them."""
SAMPLE_PREDICTION = "0.5 0 0 100 100"
"""The placeholder PredictionString of every row of Kaggle's sample submission."""


def format_coord(value: float) -> str:
    """A box coordinate as the real labels file writes it: ``264.0``, or ``53.25`` when scaled."""
    return repr(float(value))


def labels_csv_text(specs: list[PatientSpec], imgsz: int = NATIVE_SIZE) -> tuple[str, str]:
    """The texts of ``stage_2_train_labels.csv`` and ``stage_2_detailed_class_info.csv``.

    Like the real files: sorted by patientId, one row per box (one empty-box row per negative patient),
    the two files row-aligned; boxes scaled from the 1024-px frame to ``imgsz``.
    """
    labels = ["patientId,x,y,width,height,Target"]
    classes = ["patientId,class"]
    png_scale = imgsz / NATIVE_SIZE
    for spec in sorted(specs, key=lambda s: s.patient_id):
        rows = spec.boxes_xywh_px * png_scale
        if len(rows) == 0:
            labels.append(f"{spec.patient_id},,,,,0")
            classes.append(f"{spec.patient_id},{spec.cls}")
        for box in rows:
            labels.append(",".join([spec.patient_id, *(format_coord(v) for v in box), "1"]))
            classes.append(f"{spec.patient_id},{spec.cls}")
    return "\n".join(labels) + "\n", "\n".join(classes) + "\n"


def submission_csv_text(specs: list[PatientSpec]) -> str:
    """The text of ``stage_2_sample_submission.csv``: every test patient with the placeholder prediction."""
    rows = [f"{s.patient_id},{SAMPLE_PREDICTION}" for s in sorted(specs, key=lambda s: s.patient_id)]
    return "\n".join(["patientId,PredictionString", *rows]) + "\n"


DIFFICULTIES = {"easy": render_radiograph, "hard": render_hard_radiograph}
"""``--difficulty`` -> renderer. ``easy`` (the default, the demo's): one framing and exposure, crisp
anatomy, bright opacities, distractors outside the lung fields. ``hard``: varied framing, rotation,
exposure and contrast, soft-tissue and bowel-gas overlap, faint patchy opacities, and Not Normal findings
that mimic opacity inside the lung fields (:mod:`convert.synth_hard`; docs/synth_vs_real/)."""


def write_patient(spec: PatientSpec, folder: Path, imgsz: int, difficulty: str = "easy") -> Path:
    """Render ``spec`` at ``difficulty`` and write ``folder/<patientId>.dcm`` (JPEG Baseline, like the real
    files)."""
    path = folder / f"{spec.patient_id}.dcm"
    write_dicom(
        path,
        DIFFICULTIES[difficulty](spec, imgsz),
        patient_id=spec.patient_id,
        age=spec.age,
        sex=spec.sex,
        view=spec.view,
        pixel_spacing=(spec.pixel_spacing * NATIVE_SIZE / imgsz,) * 2,
    )
    return path


def _write_job(job: tuple[PatientSpec, Path, int, str]) -> str:
    return str(write_patient(*job))


def box_source(labels_csv: str | Path | None = None) -> str:
    """Where :func:`load_box_sets` takes its box sets from: the CSV given, or ``"shipped"``."""
    return "shipped" if labels_csv is None else str(labels_csv)


def _readme(seed: int, patients: int, test_patients: int, imgsz: int, summary: dict) -> str:
    difficulty = summary["difficulty"]
    counts = ", ".join(f"{n} {cls}" for cls, n in summary["classes"].items())
    source = summary["box_source"]
    if source == "shipped":
        source = "the 6,012 real box sets shipped in convert/data/real_box_sets.csv"
    return f"""# Synthetic RSNA Pneumonia Detection Challenge data

SYNTHETIC, not patient data: written by `python -m convert synth` of rsna-yolo to exercise the pipeline
without the Kaggle download. Same layout, file names, CSV formats and DICOM tags as the real challenge
files; the images are drawn chest radiographs, and each labelled box holds a drawn opacity.

Arguments: `--patients {patients} --test-patients {test_patients} --seed {seed} --imgsz {imgsz}
--difficulty {difficulty}` (box sets drawn from {source}). Scores measured on these films say nothing
about real X-rays.
The same arguments give byte-identical files.

- `{TRAIN_IMAGES}/`: {patients} DICOMs ({counts}; {summary["train_boxes"]} boxes)
- `{TEST_IMAGES}/`: {test_patients} DICOMs, same class mix, no labels
- `{LABELS_CSV}`, `{CLASS_CSV}`, `{SUBMISSION_CSV}`
"""


def generate(
    out: str | Path,
    patients: int,
    test_patients: int,
    seed: int,
    labels_csv: str | Path | None = None,
    imgsz: int = NATIVE_SIZE,
    *,
    difficulty: str = "easy",
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Write a synthetic challenge download into ``out`` and return a summary.

    Layout: ``stage_2_train_images/<patientId>.dcm``, ``stage_2_test_images/<patientId>.dcm``,
    ``stage_2_train_labels.csv``, ``stage_2_detailed_class_info.csv``, ``stage_2_sample_submission.csv``
    and a ``README.md`` saying it is synthetic. Deterministic: the same arguments give the same bytes
    (``workers`` does not change them). Box sets come from ``labels_csv`` (see :func:`load_box_sets`).
    ``difficulty`` picks the renderer (:data:`DIFFICULTIES`); both levels draw the same patients, classes
    and boxes for a seed (``hard`` redraws only the boxless findings).

    Refuses (``FileExistsError``) to mix with DICOMs already in ``out`` unless ``overwrite``, which
    deletes only the files this function writes.
    """
    out = Path(out)
    if patients < 0 or test_patients < 0:
        raise ValueError("patients and test_patients must be >= 0")
    if imgsz < 64:
        raise ValueError(f"imgsz must be at least 64, got {imgsz}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")
    folders = {"train": out / TRAIN_IMAGES, "test": out / TEST_IMAGES}
    stale = [p for f in folders.values() if f.is_dir() for p in f.glob("*.dcm")]
    if stale and not overwrite:
        raise FileExistsError(
            f"{out} already holds {len(stale)} DICOM(s); choose an empty folder or overwrite"
        )
    for p in stale:
        p.unlink()
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    box_sets = load_box_sets(labels_csv)
    train = sample_patients(rng, patients, box_sets)
    test = sample_patients(rng, test_patients, box_sets)
    if difficulty == "hard":  # the same patients and boxes; findings that mimic opacity
        train, test = [harden_spec(s) for s in train], [harden_spec(s) for s in test]

    labels_text, classes_text = labels_csv_text(train, imgsz)
    for name, text in [
        (LABELS_CSV, labels_text),
        (CLASS_CSV, classes_text),
        (SUBMISSION_CSV, submission_csv_text(test)),
    ]:
        write_atomic(out / name, text)

    jobs = [(s, folders["train"], imgsz, difficulty) for s in train]
    jobs += [(s, folders["test"], imgsz, difficulty) for s in test]
    bar = tqdm(total=len(jobs), desc="synth", unit="img", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            for _ in pool.map(_write_job, jobs, chunksize=8):
                bar.update()
    else:
        for job in jobs:
            _write_job(job)
            bar.update()
    bar.close()

    summary = {
        "out": str(out),
        "seed": seed,
        "imgsz": imgsz,
        "train_patients": len(train),
        "test_patients": len(test),
        "classes": {cls: sum(s.cls == cls for s in train) for cls in CLASSES},
        "train_boxes": int(sum(len(s.boxes_xywh_px) for s in train)),
        "box_source": box_source(labels_csv),
        "difficulty": difficulty,
    }
    write_atomic(out / "README.md", _readme(seed, patients, test_patients, imgsz, summary))
    return summary
