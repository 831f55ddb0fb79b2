"""``python -m convert rsna``: a Kaggle RSNA download folder -> a verified Ultralytics YOLO dataset."""

from __future__ import annotations

import argparse

EPILOG = """\
--src is a folder laid out like the Kaggle download (stage-2 or stage-1 names):
  stage_2_train_labels.csv, stage_2_detailed_class_info.csv, stage_2_train_images/*.dcm,
  and optionally stage_2_test_images/*.dcm (converted into images/test, without labels).

--out receives images/{train,val,test}/*.png, labels/{train,val}/*.txt, data.yaml (use it as
`yolo detect train data=OUT/data.yaml`), manifest.csv, boxes.csv, report.json and, with --folds K,
folds/fold<k>.yaml for cross-validation. Bad files and CSV rows are skipped and listed in report.json.
Rerunning the same command after an interruption finishes the job without redoing finished images.
The dataset is checked at the end (as `python -m convert check OUT`); the exit status is 1 if the
check finds problems.

example:
  python -m convert rsna --src ~/kaggle/rsna-pneumonia-detection-challenge --out data/rsna640 --imgsz 640
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--src", required=True, metavar="DIR", help="Kaggle-layout folder with the DICOMs and CSVs"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output dataset folder (created; reruns resume)"
    )
    parser.add_argument(
        "--imgsz",
        type=int,
        default=1024,
        metavar="N",
        help="longer side of the PNGs in pixels (default 1024 = native)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        metavar="F",
        default=0.2,
        help="share of each class in the val split (default 0.2; with --folds, fold 0 is val instead)",
    )
    parser.add_argument(
        "--folds",
        type=int,
        metavar="K",
        default=0,
        help="K >= 2: also write folds/fold<k>.yaml for K-fold cross-validation (default 0: none)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the split (default 0)")
    parser.add_argument(
        "--workers", type=int, default=None, metavar="W", help="processes (default: all CPU cores)"
    )
    parser.add_argument(
        "--classify",
        action="store_true",
        help="also write the classification view OUT/classify/ (links; see `python -m convert classify`)",
    )
    parser.add_argument(
        "--binary", action="store_true", help="with --classify: opacity / no_opacity (OUT/classify_binary/)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from convert.rsna import convert_rsna

    report = convert_rsna(
        args.src,
        args.out,
        imgsz=args.imgsz,
        val_fraction=args.val_fraction,
        folds=args.folds,
        seed=args.seed,
        workers=args.workers,
        classify=args.classify,
        binary=args.binary,
        progress=not args.no_progress,
    )
    if "classify" in report:
        from convert.classify_cli import print_view

        print_view(report["classify"])
    return 0 if report["check"]["ok"] else 1
