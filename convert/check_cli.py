"""``python -m convert check DIR``: verify a converted dataset; exit status 1 when it has problems."""

from __future__ import annotations

import argparse

MAX_PRINTED = 50


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="dataset folder written by `python -m convert rsna`")
    parser.add_argument(
        "--src", default=None, help="Kaggle folder to compare labels with (default: the one in report.json)"
    )


def main(args: argparse.Namespace) -> int:
    from convert.check import check_dataset

    result = check_dataset(args.dir, src=args.src)
    for problem in result.problems[:MAX_PRINTED]:
        print(problem)
    if len(result.problems) > MAX_PRINTED:
        print(f"... and {len(result.problems) - MAX_PRINTED} more")
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    if result.ok:
        print(f"OK: {args.dir} ({counts})")
        return 0
    print(f"{len(result.problems)} problem(s) in {args.dir}")
    return 1
