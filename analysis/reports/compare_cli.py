"""``python -m analysis compare RUN_DIR... --out DIR``: compare trained runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.reports.compare import run_compare
from rsna_yolo.core.cli import UserError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analysis compare``."""
    parser.description = (
        "Compare Ultralytics run folders (from yolo train, python -m train or a sweep): a table of model, "
        "differing hyperparameters, epochs, early stopping, resume, train time, mAP and Kaggle mAP (with the "
        "tuned threshold and the checkpoint scored); metric and loss curves; score against each varying "
        "hyperparameter; observations. A folder holding run folders at any depth (runs/, runs/detect, a "
        "sweep folder) is expanded. Runs without kaggle.json are rescored when they have weights and their "
        "data YAML exists (use --no-rescore to skip). Writes report.md, report.html, runs.csv and PNG "
        "figures into --out."
    )
    parser.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders or folders of runs"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data YAML for rescoring (default: each run's own args.yaml data)",
    )
    parser.add_argument("--split", default="val", help="split to rescore on when kaggle.json is missing")
    parser.add_argument("--no-rescore", action="store_true", help="never compute a missing kaggle.json")
    parser.add_argument(
        "--storage",
        help="the sweep's Optuna database URL when its study is not the sweep folder's optuna.db "
        "(e.g. postgresql+psycopg://...)",
    )
    parser.add_argument(
        "--importance",
        choices=("fanova", "ped-anova"),
        default="fanova",
        help="how a sweep's parameter importances are computed (Optuna's evaluators; default fanova)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """Run the comparison and print the table's size and where the report went."""
    paths, table = run_compare(
        args.runs,
        args.out,
        data=args.data,
        split=args.split,
        rescore=not args.no_rescore,
        storage=args.storage,
        importance=args.importance,
        progress=not args.quiet,
    )
    if table.empty:
        raise UserError(f"no readable run among {', '.join(map(str, args.runs))} (see {paths['markdown']})")
    print(f"compared {len(table)} run(s): {paths['markdown']}, {paths['html']}")
    return 0
