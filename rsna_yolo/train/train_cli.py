"""``python -m train key=value ...`` and ``python -m train resume RUN_DIR``: parse, call
:func:`rsna_yolo.train.run.train` / :func:`rsna_yolo.train.run.resume`, print the run folder."""

from __future__ import annotations

import argparse

PROG = "python -m train"


def train_main(argv: list[str]) -> int:
    from rsna_yolo.train.args import parse_key_values
    from rsna_yolo.train.run import train

    args, options = parse_key_values(argv)
    result = train(args, options)
    print(f"run folder: {result.run_dir}")
    return 0


def resume_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} resume",
        description="Continue a killed training run from RUN_DIR/weights/last.pt to its planned epochs, "
        "then rescore it with the Kaggle metric. A finished run cannot be extended: start a new run from "
        "its weights instead (model=RUN_DIR/weights/best.pt).",
    )
    parser.add_argument("run_dir", help="the run folder (holds args.yaml and weights/last.pt)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="settings Ultralytics lets a resume change: device, batch...",
    )
    ns = parser.parse_args(argv)
    from rsna_yolo.train.args import given_options, parse_key_values
    from rsna_yolo.train.run import resume

    args, options = parse_key_values(ns.overrides)
    explicit = {k: getattr(options, k) for k in given_options(ns.overrides)}  # e.g. wandb=False
    result = resume(ns.run_dir, args, options=explicit)
    print(f"run folder: {result.run_dir}")
    return 0
