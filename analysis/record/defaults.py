"""The one table of tuning grids and defaults (``defaults.yaml`` beside this file), read once.

Every function that tunes or predicts takes its defaults from :data:`DEFAULTS` instead of spelling them:
the threshold grid, the box scales, the gates and gate modes, the WBF grid and defaults, the prediction
floor, the default confidence, the inference batch and the classifier's cut-off.

>>> DEFAULTS.prediction_floor, DEFAULTS.default_conf
(0.01, 0.25)
>>> DEFAULTS.thresholds[:5], DEFAULTS.thresholds[-1], DEFAULTS.box_scales[0], DEFAULTS.gates[:2]
((0.01, 0.02, 0.03, 0.04, 0.05), 0.95, 1.0, (0.0, 0.05))
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

DEFAULTS_YAML = Path(__file__).with_name("defaults.yaml")


@dataclass(frozen=True)
class TuningDefaults:
    """The grids and defaults of ``defaults.yaml`` (see its comments for what each one is)."""

    prediction_floor: float
    default_conf: float
    thresholds: tuple[float, ...]
    box_scales: tuple[float, ...]
    gates: tuple[float, ...]
    gate_modes: tuple[str, ...]
    wbf_grid: MappingProxyType
    wbf_iou: float
    wbf_conf_type: str
    oof_fusion: MappingProxyType
    batch: int
    classifier_cutoff: float


def load_defaults(path: Path = DEFAULTS_YAML) -> TuningDefaults:
    """``defaults.yaml`` as a :class:`TuningDefaults`; an unknown or missing key is an error (a typo in the
    table must not be silently ignored)."""
    raw: dict[str, Any] = yaml.safe_load(Path(path).read_text())
    names = {f.name for f in fields(TuningDefaults)}
    if set(raw) != names:
        raise ValueError(
            f"{path}: unknown keys {sorted(set(raw) - names)}, missing {sorted(names - set(raw))}"
        )
    grid = {k: tuple(v) for k, v in raw["wbf_grid"].items()}
    return TuningDefaults(
        prediction_floor=float(raw["prediction_floor"]),
        default_conf=float(raw["default_conf"]),
        thresholds=tuple(float(x) for x in raw["thresholds"]),
        box_scales=tuple(float(x) for x in raw["box_scales"]),
        gates=tuple(float(x) for x in raw["gates"]),
        gate_modes=tuple(str(x) for x in raw["gate_modes"]),
        wbf_grid=MappingProxyType(grid),
        wbf_iou=float(raw["wbf_iou"]),
        wbf_conf_type=str(raw["wbf_conf_type"]),
        oof_fusion=MappingProxyType(dict(raw["oof_fusion"])),
        batch=int(raw["batch"]),
        classifier_cutoff=float(raw["classifier_cutoff"]),
    )


DEFAULTS = load_defaults()
