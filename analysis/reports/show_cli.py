"""``python -m analysis show RUN_DIR --split val [--worst N]``: prediction pictures, worst first; or
``python -m analysis show SUBMISSION.csv --images TEST_FOLDER``: a submission's boxes on its films."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsna_yolo.core.cli import UserError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analysis show``."""
    parser.description = (
        "RUN_DIR: draw ground truth beside predictions at the run's tuned threshold and box scale "
        "(kaggle.json), ranked by per-image Kaggle score: the most confident false positives on healthy "
        "lungs and the worst misses. Rescores the run first when kaggle.json/predictions are missing and "
        "weights exist. Writes PNG grids, report.md, report.html and images.csv (every image, its score). "
        "SUBMISSION.csv --images TEST_FOLDER: draw the submission's boxes on its test films, most confident "
        "first, to look at before sending it; writes images/<patientId>.png, report.md, report.html (counts "
        "of images with and without boxes, ids without a film and films without a row) and images.csv."
    )
    parser.add_argument(
        "run",
        type=Path,
        metavar="RUN_DIR|SUBMISSION.csv",
        help="a rescored (or rescorable) run folder, or a submission CSV",
    )
    parser.add_argument("--split", default="val", help="RUN_DIR: dataset split (default val)")
    parser.add_argument("--worst", type=int, default=12, help="RUN_DIR: images per section (default 12)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="RUN_DIR: data YAML (default: the one named in kaggle.json or args.yaml)",
    )
    parser.add_argument(
        "--images",
        type=Path,
        default=None,
        metavar="TEST_FOLDER",
        help="SUBMISSION.csv: the folder of its test films (.dcm, or converted .png with their manifest.csv)",
    )
    parser.add_argument(
        "--top", type=int, default=48, help="SUBMISSION.csv: films drawn, most confident first (default 48)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default RUN_DIR/show_<split>, or show_<name> beside SUBMISSION.csv)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """Draw the pictures and print where they went."""
    if args.run.suffix.lower() == ".csv":
        return _show_submission(args)
    if args.images is not None:
        raise UserError(
            f"--images goes with a submission CSV; {args.run} is a run folder (it knows its data)"
        )
    from analysis.reports.show import run_show

    paths, table = run_show(
        args.run, args.split, worst=args.worst, data=args.data, out=args.out, progress=not args.quiet
    )
    counts = table["kind"].value_counts()
    print(f"{len(table)} images ({', '.join(f'{n} {k}' for k, n in counts.items())}): {paths['html']}")
    return 0


def _show_submission(args: argparse.Namespace) -> int:
    from analysis.reports.show_submission import show_submission

    if args.images is None:
        raise UserError(f"{args.run}: a submission CSV needs --images TEST_FOLDER (the films it predicts)")
    paths, table = show_submission(args.run, args.images, args.out, top=args.top, progress=not args.quiet)
    with_boxes = int((table["n_boxes"] > 0).sum())
    print(
        f"{len(table)} patients ({with_boxes} with boxes, {len(table) - with_boxes} without), "
        f"{int((table['png'] != '').sum())} drawn: {paths['html']}"
    )
    return 0
