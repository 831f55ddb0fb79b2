"""``python -m analysis eda --src DIR --out DIR``: exploratory report of a dataset."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from analysis.reports.eda import run_eda


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analysis eda``."""
    parser.description = (
        "Exploratory analysis of a Kaggle-layout folder (labels + class CSVs, DICOMs when present) or a "
        "converted dataset (manifest.csv + boxes.csv). Writes report.md, PNG figures and a self-contained "
        "report.html into --out."
    )
    parser.add_argument(
        "--src",
        type=Path,
        required=True,
        help="Kaggle-layout folder, or a converted dataset folder (or its data.yaml)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--samples-per-class", type=int, default=4, help="sample images per class in the grid"
    )
    parser.add_argument(
        "--max-pixel-images",
        type=int,
        default=150,
        help="images per class decoded for the intensity statistics",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """Run the EDA and print where the report went."""
    start = time.perf_counter()
    paths = run_eda(
        args.src,
        args.out,
        samples_per_class=args.samples_per_class,
        max_pixel_images=args.max_pixel_images,
        progress=not args.quiet,
    )
    print(
        f"EDA of {args.src} in {time.perf_counter() - start:.1f} s: {paths['markdown']}, {paths['html']} "
        f"and {len(paths) - 2} figures"
    )
    return 0
