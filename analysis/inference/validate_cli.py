"""``python -m analysis validate SUBMISSION --images DIR``: check a submission against the test images."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.scoring.submission import validate_submission


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analysis validate``."""
    parser.description = (
        "Check a submission CSV against a folder of test images (.dcm or .png, patientId = file name): exact "
        "header, every patient exactly once and no other, prediction strings of 'conf x y w h' with conf in "
        "[0, 1], non-negative sizes, boxes inside the 1024-px frame. Exit status 2 with the problems if not."
    )
    parser.add_argument("submission", type=Path, help="submission CSV")
    parser.add_argument("--images", type=Path, required=True, help="folder of test DICOMs or PNGs")


def main(args: argparse.Namespace) -> int:
    """Validate and print a one-line summary."""
    sub = validate_submission(args.submission, args.images)
    n_ids, n_boxes = len(sub.ids), len(sub.boxes)
    print(f"{args.submission}: valid, {n_ids} patients, {sub.n_with_boxes} with boxes, {n_boxes} boxes")
    return 0
