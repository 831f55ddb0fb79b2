"""``python -m analysis show RUN_DIR --split val [--worst N]``: prediction pictures, worst first."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.reports.show import run_show


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analysis show``."""
    parser.description = (
        "Draw ground truth beside predictions at the run's tuned threshold and box scale (kaggle.json), "
        "ranked by per-image Kaggle score: the most confident false positives on healthy lungs and the "
        "worst misses. Rescores the run first when kaggle.json/predictions are missing and weights exist. "
        "Writes PNG grids, report.md, report.html and images.csv (every image with its score)."
    )
    parser.add_argument("run", type=Path, metavar="RUN_DIR", help="a rescored (or rescorable) run folder")
    parser.add_argument("--split", default="val", help="dataset split (default val)")
    parser.add_argument("--worst", type=int, default=12, help="images per section (default 12)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data YAML (default: the one named in kaggle.json or args.yaml)",
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/show_<split>)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """Draw the pictures and print where they went."""
    paths, table = run_show(
        args.run, args.split, worst=args.worst, data=args.data, out=args.out, progress=not args.quiet
    )
    counts = table["kind"].value_counts()
    print(f"{len(table)} images ({', '.join(f'{n} {k}' for k, n in counts.items())}): {paths['html']}")
    return 0
