"""``python -m train folds D/folds [key=value ...]``: parse, call :func:`rsna_yolo.train.folds.run_folds`."""

from __future__ import annotations

import argparse
from pathlib import Path

from rsna_yolo.train.folds import __doc__ as FOLDS_DOC

PROG = "python -m train folds"


def main(argv: list[str], prog: str = PROG) -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=FOLDS_DOC.split("\n\n")[0]
        + " key=value arguments are python -m train's, for every fold.",
        epilog="where a set goes: <project>/<name>/fold<k>/; without project= and name=, "
        "runs/folds/<dataset name>/ for detectors and runs/folds/<dataset name>_cls/ for classifiers "
        "(task=classify), relative to the current folder, so a dataset's two sets never share a folder. "
        "example: python -m train folds data/rsna640/folds model=yolo11s.yaml imgsz=640 epochs=30 "
        "cfg=yolo_configs/hyp/xray.yaml name=y11s_cv  (then runs/folds/y11s_cv/kaggle_oof.json)",
    )
    parser.add_argument("folds_dir", type=Path, help="the dataset's folds folder (convert rsna --folds K)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="training arguments for every fold")
    parser.add_argument(
        "--classifier",
        type=Path,
        metavar="CLS_SET",
        help="a fold set of classifiers (its folder, holding classifier_oof.csv): tune the gate out of fold",
    )
    parser.add_argument(
        "--restart-killed",
        action="store_true",
        help="a fold killed mid-training starts again from its first epoch (the same weights as an "
        "uninterrupted run) instead of resuming from its last.pt (faster, other weights)",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="also predict each fold's val images with flip TTA and tune the fusion and the threshold out "
        "of fold (kaggle_oof_tta.json; with --classifier, kaggle_oof_tta_gated.json)",
    )
    ns = parser.parse_intermixed_args(argv)
    from rsna_yolo.train.args import parse_key_values
    from rsna_yolo.train.folds import run_folds

    args, options = parse_key_values(ns.overrides)
    run_folds(
        ns.folds_dir, args, options, classifier=ns.classifier, restart_killed=ns.restart_killed, tta=ns.tta
    )
    return 0
