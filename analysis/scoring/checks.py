"""The two settings every score and submission is taken at, checked once: a confidence threshold in [0, 1]
and a positive box scale (one line naming the option otherwise)."""

from __future__ import annotations

from rsna_yolo.core.cli import UserError


def check_settings(conf: float, box_scale: float, *, hint: bool = True) -> None:
    """A threshold in [0, 1] and a positive box scale, else one clear error naming ``--conf`` / ``--scale``
    (``hint``: say what a box scale below 1 does)."""
    if not 0.0 <= conf <= 1.0:
        raise UserError(f"--conf {conf:g}: a confidence threshold is between 0 and 1")
    if not box_scale > 0.0:
        example = " (0.8 shrinks boxes by 20%)" if hint else ""
        raise UserError(f"--scale {box_scale:g}: the box scale must be positive{example}")
