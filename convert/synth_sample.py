"""Who the synthetic patients are: the real data's statistics and sampling from them (pure functions of a
NumPy generator).

Each patient's class follows the real class mix, a Lung Opacity patient gets the whole box set of a real
patient (shipped in ``convert/data/real_box_sets.csv``), and age, sex, view, pixel spacing and the boxless
findings of Not Normal images follow the real headers; the result is a :class:`PatientSpec`, from which
rendering (:mod:`convert.synth_render`) is a pure function.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsna_yolo.core.layout import CLASSES, LUNG_OPACITY, NORMAL, NOT_NORMAL

CLASS_FRACTIONS = {LUNG_OPACITY: 6012 / 26684, NOT_NORMAL: 11821 / 26684, NORMAL: 8851 / 26684}
"""Patients per class in the real stage-2 training set (``stage_2_detailed_class_info.csv``)."""

AP_FRACTION = {LUNG_OPACITY: 0.75, NOT_NORMAL: 0.45, NORMAL: 0.29}
"""P(ViewPosition = AP | class): pneumonia patients are mostly imaged supine at the bedside (AP); overall
about 46% AP as in the real headers."""

MALE_FRACTION = 0.57
PIXEL_SPACINGS = (0.139, 0.143, 0.168, 0.171, 0.194311)
"""PixelSpacing values seen in the real headers (mm)."""
BOGUS_AGES = ("148", "150", "151", "153", "155")
"""The real headers hold a handful of impossible ages; a converter must not choke on them."""
BOGUS_AGE_RATE = 5 / 26684

FINDINGS = ("nodule", "lines", "pacemaker", "cardiomegaly", "ecg_leads")
"""Visible abnormalities without a box, drawn on Not Normal images (and lines/leads on some others)."""

BOX_SETS_FILE = Path(__file__).with_name("data") / "real_box_sets.csv"
"""Every real positive patient's box set from the stage-2 ``stage_2_train_labels.csv`` (6,012 patients,
9,555 boxes), anonymised: ``set,x,y,width,height`` (``xywh_px``, 1024-px frame, whole pixels), sets
numbered in the patientId order of the real file. Shipped so that the generator's output depends only on
its arguments and the repository (``--labels-csv`` reads another labels file explicitly)."""


@dataclass(frozen=True, eq=False)
class PatientSpec:
    """Everything about one synthetic patient; rendering it is a pure function of this record.

    ``boxes_xywh_px`` has shape ``(k, 4)`` in the 1024-px frame (``k = 0`` unless Lung Opacity).
    """

    patient_id: str
    cls: str
    boxes_xywh_px: np.ndarray
    age: str
    sex: str
    view: str
    pixel_spacing: float
    findings: tuple[str, ...]
    render_seed: int


def load_box_sets(labels_csv: str | Path | None = None) -> list[np.ndarray]:
    """Real box sets, one ``(k, 4)`` float64 ``xywh_px`` array per positive patient.

    Without ``labels_csv``: the sets shipped in :data:`BOX_SETS_FILE`. With it: the Target=1 rows of that
    Kaggle labels file (``patientId,x,y,width,height,Target``), one set per patient in patientId order, so
    the real stage-2 file gives exactly the shipped sets.
    """
    import pandas as pd

    if labels_csv is None:
        frame = pd.read_csv(BOX_SETS_FILE)
        boxes = frame[["x", "y", "width", "height"]].to_numpy(np.float64)
        _, starts = np.unique(frame["set"].to_numpy(), return_index=True)
        return np.split(boxes, starts[1:])
    path = Path(labels_csv)
    frame = pd.read_csv(path)
    missing = {"patientId", "x", "y", "width", "height", "Target"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    pos = frame[(frame["Target"] == 1)].dropna(subset=["x", "y", "width", "height"])
    pos = pos[(pos["width"] > 0) & (pos["height"] > 0)]
    if pos.empty:
        raise ValueError(f"{path}: no Target=1 row with a box")
    pos = pos.sort_values("patientId", kind="stable")
    boxes = pos[["x", "y", "width", "height"]].to_numpy(np.float64)
    # np.split at the first row of each patient: far faster than a pandas groupby over 6,000 groups.
    _, starts = np.unique(pos["patientId"].to_numpy(), return_index=True)
    return np.split(boxes, starts[1:])


def new_patient_id(rng: np.random.Generator) -> str:
    """A UUID4 string drawn from ``rng`` (reproducible, unlike :func:`uuid.uuid4`)."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def sample_classes(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` classes drawn with the real class fractions."""
    p = np.array([CLASS_FRACTIONS[c] for c in CLASSES])
    return [CLASSES[i] for i in rng.choice(len(CLASSES), size=n, p=p / p.sum())]


def sample_age(rng: np.random.Generator) -> str:
    """A PatientAge string: mostly adults (mean about 48), some children, rarely a bogus value like 150."""
    if rng.random() < BOGUS_AGE_RATE:
        return str(rng.choice(BOGUS_AGES))
    if rng.random() < 0.04:
        return str(int(rng.integers(1, 18)))
    return str(int(np.clip(round(rng.normal(50, 16)), 18, 92)))


def sample_findings(rng: np.random.Generator, cls: str) -> tuple[str, ...]:
    """Abnormalities without a box: one or two on Not Normal images, ICU lines on some Lung Opacity ones."""
    if cls == NOT_NORMAL:
        k = 1 if rng.random() < 0.7 else 2
        picked = rng.choice(len(FINDINGS), size=k, replace=False, p=[0.3, 0.25, 0.1, 0.2, 0.15])
        return tuple(FINDINGS[i] for i in sorted(picked))
    if cls == LUNG_OPACITY and rng.random() < 0.3:
        # Sick patients carry lines and leads too, so a detector cannot learn "tubes mean no opacity".
        return ("lines",) if rng.random() < 0.5 else ("ecg_leads",)
    return ()


def sample_patient(rng: np.random.Generator, cls: str, box_sets: list[np.ndarray]) -> PatientSpec:
    """One patient of class ``cls``; a Lung Opacity patient gets the whole box set of a random real one
    (so box counts, sizes, positions and left/right pairings follow the real data, never overlapping)."""
    patient_id = new_patient_id(rng)
    boxes = box_sets[rng.integers(len(box_sets))].copy() if cls == LUNG_OPACITY else np.zeros((0, 4))
    view = "AP" if rng.random() < AP_FRACTION[cls] else "PA"
    return PatientSpec(
        patient_id=patient_id,
        cls=cls,
        boxes_xywh_px=boxes,
        age=sample_age(rng),
        sex="M" if rng.random() < MALE_FRACTION else "F",
        view=view,
        pixel_spacing=float(rng.choice(PIXEL_SPACINGS)),
        findings=sample_findings(rng, cls),
        render_seed=int(rng.integers(2**63)),
    )


def sample_patients(rng: np.random.Generator, n: int, box_sets: list[np.ndarray]) -> list[PatientSpec]:
    """``n`` patients with the real class mix (see :func:`sample_patient`)."""
    return [sample_patient(rng, cls, box_sets) for cls in sample_classes(rng, n)]
