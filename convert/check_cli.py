"""``python -m convert check DIR``: verify a converted dataset; exit status 1 when it has problems."""

from __future__ import annotations

import argparse

MAX_PRINTED = 50


EPILOG = """\
Checks data.yaml (absolute path, train/val present), manifest.csv (one row per image, known splits),
every PNG (exists in its split, 8-bit grayscale, the size the manifest implies), every train/val label
file (present, 5 fields, class 0, coordinates in [0, 1], equal to boxes.csv), no patient in two splits,
the counts in report.json, the source CSVs (Target, class, boxes; every valid patient converted or
listed as skipped) and the fold lists. Prints one line per problem; exit status 0 = OK, 1 = problems.
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("dir", help="dataset folder written by `python -m convert rsna`")
    parser.add_argument(
        "--src",
        default=None,
        metavar="DIR",
        help="Kaggle folder to compare labels with (default: the one in report.json)",
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
