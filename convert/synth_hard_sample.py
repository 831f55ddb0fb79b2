"""Sampling for the hard synthetic level: which boxless findings a patient carries (the class mix and
boxes stay those of :mod:`convert.synth_sample`). :mod:`convert.synth_hard` draws them."""

from __future__ import annotations

import dataclasses

import numpy as np

from convert.synth_sample import LUNG_OPACITY, NOT_NORMAL, PatientSpec, sample_patients

MIMICS = ("atelectasis", "edema", "effusion", "interstitial", "mass", "scarring")
"""Boxless findings that look like opacity inside the lung fields (where detectors put false boxes)."""
MIMIC_WEIGHTS = (0.15, 0.45, 0.1, 0.1, 0.1, 0.1)
"""How often each mimic is picked; ``edema``, drawn as opacities (:func:`mimic_boxes`), is the commonest."""
DEVICES = ("lines", "pacemaker", "ecg_leads")
HARD_FINDINGS = (*MIMICS, "nodule", "cardiomegaly", *DEVICES)
"""Every finding name :func:`render_hard_radiograph` draws (the default renderer's names included)."""

MIMIC_RATE = 0.75
"""P(a Not Normal patient carries at least one opacity mimic)."""

MAX_ROTATION_DEG = 7.0


def sample_hard_findings(rng: np.random.Generator, cls: str) -> tuple[str, ...]:
    """Boxless findings for hard mode, sorted names from :data:`HARD_FINDINGS`.

    Not Normal: an opacity mimic with probability :data:`MIMIC_RATE` (two in a quarter of those, picked
    with :data:`MIMIC_WEIGHTS`), plus cardiomegaly (most films with ``edema``, a few others), an effusion
    (some with ``edema``), a device or a nodule now and then; never empty. Lung Opacity: devices on some,
    and a small effusion on some (pneumonia often has one), so neither tells the classes apart. Normal:
    none.
    """
    found: set[str] = set()
    if cls == NOT_NORMAL:
        if rng.random() < MIMIC_RATE:
            k = 1 if rng.random() < 0.75 else 2
            picked = rng.choice(len(MIMICS), size=k, replace=False, p=list(MIMIC_WEIGHTS))
            found.update(MIMICS[i] for i in picked)
        if rng.random() < (0.7 if "edema" in found else 0.2):
            found.add("cardiomegaly")
        if "edema" in found and rng.random() < 0.4:
            found.add("effusion")
        if rng.random() < 0.4:
            found.add(DEVICES[int(rng.integers(len(DEVICES)))])
        if rng.random() < 0.1:
            found.add("nodule")
        if not found:
            found.add("cardiomegaly")
    elif cls == LUNG_OPACITY:
        if rng.random() < 0.35:
            found.add("lines" if rng.random() < 0.5 else "ecg_leads")
        if rng.random() < 0.15:
            found.add("effusion")
    return tuple(sorted(found))


def harden_spec(spec: PatientSpec) -> PatientSpec:
    """``spec`` with its findings redrawn by :func:`sample_hard_findings` (stream ``[render_seed, 3]``);
    class, boxes, header values and render seed unchanged."""
    rng = np.random.default_rng([spec.render_seed, 3])
    return dataclasses.replace(spec, findings=sample_hard_findings(rng, spec.cls))


def sample_hard_patients(rng: np.random.Generator, n: int, box_sets: list[np.ndarray]) -> list[PatientSpec]:
    """:func:`convert.synth.sample_patients` with hard-mode findings: the same seed gives the same
    patients, classes and boxes as the default level."""
    return [harden_spec(s) for s in sample_patients(rng, n, box_sets)]
