"""``python -m convert classify D``: add the classification view to a converted dataset."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write D/classify/{train,val}/{lung_opacity,not_normal,normal}/<patientId>.png (and per fold, "
        "D/classify/fold<k>/...) as links to the detection PNGs of a converted dataset, for "
        "`yolo classify train data=D/classify` or `python -m train task=classify data=D/classify`. "
        "Nothing is decoded or copied; a dataset converted before this view existed gets it without "
        "reconverting. `python -m convert rsna --classify` does the same at the end of a conversion."
    )
    parser.add_argument("dataset", type=Path, metavar="D", help="converted dataset folder (or its data.yaml)")
    parser.add_argument(
        "--binary",
        action="store_true",
        help="Lung Opacity against the rest: D/classify_binary/{train,val}/{opacity,no_opacity}/",
    )
    parser.add_argument("--no-folds", action="store_true", help="no per-fold views even if D/folds exists")


def print_view(summary: dict) -> None:
    from convert.classify import view_counts_frame

    print(f"classification view: {summary['view']} (links to the detection PNGs)")
    print(view_counts_frame(summary).to_string())
    print(f"train with: yolo classify train data={summary['view']}  (or python -m train task=classify ...)")


def main(args: argparse.Namespace) -> int:
    from convert.classify import write_classify_view

    print_view(write_classify_view(args.dataset, binary=args.binary, folds=not args.no_folds))
    return 0
