"""``python -m analysis ablation RUN --data D/data.yaml --out DIR``: what each step of the recipe is worth."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.reports.ablation import __doc__ as ABLATION_DOC


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        ABLATION_DOC.split("\n\n")[0]
        + " Rows: default conf -> tuned threshold -> box scale -> flip TTA -> WBF ensemble -> "
        "classifier gate."
    )
    parser.add_argument("run", type=Path, help="the detector: a run folder, weights, or a fold set's folder")
    parser.add_argument("--data", type=Path, required=True, help="the dataset's data.yaml (or a fold YAML)")
    parser.add_argument(
        "--out", type=Path, required=True, help="report folder (report.md, report.html, ablation.csv)"
    )
    parser.add_argument("--split", default="val", help="the labelled split to score (default val)")
    parser.add_argument(
        "--ensemble", type=Path, action="append", default=[], metavar="W",
        help="more weights (or a fold set) fused with the detector for the WBF row; repeatable",
    )  # fmt: skip
    parser.add_argument("--classifier", type=Path, help="a classifier run (task=classify) for the gate row")
    parser.add_argument("--batch", type=int, default=16, help="images per inference batch")
    parser.add_argument("--device", help="cpu, 0, ... (default: Ultralytics' choice)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    from analysis.reports.ablation import run_ablation

    paths, table = run_ablation(
        args.run, args.data, args.out, split=args.split, ensemble=args.ensemble, classifier=args.classifier,
        batch=args.batch, device=args.device, progress=not args.quiet,
    )  # fmt: skip
    for row in table.itertuples():
        score = "not computed" if row[2] != row[2] else f"{row[2]:.4f}"
        print(f"{row.step:32s} {score}")
    print(f"report: {paths['markdown']}, {paths['html']}")
    return 0
