"""``python -m analysis score --truth LABELS --submission SUB.csv``: the exact Kaggle score."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.scoring.breakdown import format_breakdown
from analysis.scoring.score import score_submission


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analysis score``."""
    parser.description = (
        "Score a submission CSV (patientId,PredictionString) with the challenge metric: mean over images of "
        "the mean over IoU 0.40..0.75 of TP/(TP+FP+FN). Patients of the truth missing from the submission "
        "count as 'no box'."
    )
    parser.add_argument(
        "--truth",
        type=Path,
        required=True,
        help="stage_2_train_labels.csv (class CSV beside it used for the breakdown), a Kaggle folder, or a "
        "converted dataset (folder, data.yaml or boxes.csv)",
    )
    parser.add_argument("--submission", type=Path, required=True, help="submission CSV to score")
    parser.add_argument("--per-image", type=Path, help="write patientId,class,n_truth,n_pred,score here")
    parser.add_argument(
        "--subset",
        action="store_true",
        help="score only the submission's patients (e.g. a validation split); without it a submission "
        "naming a patient absent from the truth is an error",
    )
    parser.add_argument("--split", help="with a converted dataset: only this split (train/val)")
    parser.add_argument("--conf", type=float, default=0.0, help="drop boxes below this confidence first")
    parser.add_argument("--scale", type=float, default=1.0, help="scale boxes about their centre first")


def main(args: argparse.Namespace) -> int:
    """Print the score, the counts and the per-class breakdown."""
    result = score_submission(
        args.truth,
        args.submission,
        split=args.split,
        subset=args.subset,
        conf=args.conf,
        box_scale=args.scale,
        per_image_csv=args.per_image,
    )
    print(
        f"Kaggle score {result.score:.6f}  ({result.n_scored} images scored, {result.n_left_out} left out: "
        f"no truth and no box; {result.n_absent} truth patients absent from the submission counted as no box)"
    )
    if result.breakdown is not None:
        for line in format_breakdown(result.breakdown):
            print(line)
    if args.per_image:
        print(f"per-image scores: {args.per_image}")
    return 0
