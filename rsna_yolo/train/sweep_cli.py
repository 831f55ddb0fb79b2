"""``python -m train sweep SWEEP.yaml [key=value ...]``: parse the command line, call
:func:`rsna_yolo.train.sweep.run_sweep`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsna_yolo.train.sweep import DEFAULT_GRACE
from rsna_yolo.train.sweep import __doc__ as SWEEP_DOC

PROG = "python -m train sweep"


def main(argv: list[str], prog: str = PROG) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=SWEEP_DOC.split("\n\n")[0] + " Extra key=value arguments apply to every trial.",
        epilog="Online instead: `wandb sweep SWEEP.yaml`, then on each machine "
        "`RSNA_YOLO_DATA=/abs/data.yaml wandb agent ENTITY/PROJECT/ID`.",
    )
    parser.add_argument("sweep_file", type=Path, help="a W&B sweep YAML, e.g. yolo_configs/sweeps/bayes.yaml")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="fixed for every trial, e.g. epochs=5"
    )
    parser.add_argument(
        "--count", type=int, help="total finished trials wanted (default: grid size / run_cap / 10)"
    )
    parser.add_argument("--data", help="dataset YAML for every trial (default: data= or $RSNA_YOLO_DATA)")
    parser.add_argument(
        "--study-name", help="Optuna study name = W&B group = folder name (default: file name)"
    )
    parser.add_argument(
        "--storage",
        help="Optuna RDB URL shared by several workers or machines, e.g. "
        "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (default: sqlite in the sweep folder)",
    )
    parser.add_argument("--out", type=Path, help="sweep folder (default: runs/sweeps/<study name>)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    parser.add_argument(
        "--heartbeat-grace",
        type=int,
        default=DEFAULT_GRACE,
        metavar="S",
        help=f"seconds without a heartbeat before a running trial counts as dead and is run again by "
        f"another worker (default {DEFAULT_GRACE})",
    )
    ns = parser.parse_intermixed_args(argv)  # key=value words may come before or after the options
    from rsna_yolo.train.args import key_value_pairs
    from rsna_yolo.train.sweep import run_sweep

    run_sweep(
        ns.sweep_file,
        count=ns.count,
        data=ns.data,
        overrides=key_value_pairs(ns.overrides),
        study_name=ns.study_name,
        storage=ns.storage,
        heartbeat_grace=ns.heartbeat_grace,
        out_dir=ns.out,
        seed=ns.seed,
    )
    return 0
