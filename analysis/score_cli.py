"""``python -m analysis score --truth LABELS --submission SUB.csv``: the exact Kaggle score."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis.metric import accumulate, evaluate_images, summarize
from analysis.rescore import breakdown, format_breakdown, read_truth
from analysis.submission import read_submission, submission_preds
from core.cli import UserError
from core.io import write_csv_atomic


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
    if not 0.0 <= args.conf <= 1.0:
        raise UserError(f"--conf {args.conf:g}: a confidence threshold is between 0 and 1")
    if not args.scale > 0.0:
        raise UserError(f"--scale {args.scale:g}: the box scale must be positive")
    gt = read_truth(args.truth, split=args.split)
    sub = read_submission(args.submission)
    for note in gt.notes:
        print(f"note: {note}")
    preds = {k: v for k, v in submission_preds(sub).items() if k not in gt.excluded}
    ids = [i for i in sub.ids if i not in gt.excluded]
    unknown = [
        (i, r) for i, r in zip(sub.ids, sub.rows, strict=True) if i not in gt.truth and i not in gt.excluded
    ]
    if unknown and not args.subset:
        pid, row = unknown[0]
        raise UserError(
            f"{args.submission}:{row} ({pid}): patient not in the truth ({len(unknown)} such rows); "
            "use --subset to score only patients of the truth named in the submission"
        )
    truth = gt.truth
    if args.subset:
        truth = {i: gt.truth[i] for i in ids if i in gt.truth}
        preds = {k: v for k, v in preds.items() if k in truth}
        if unknown:
            print(f"note: {len(unknown)} patient(s) not in the truth ignored, e.g. {unknown[0][0]}")
    if not truth:
        raise UserError(f"{args.submission}: no patient of the truth to score")
    ev = evaluate_images(truth, preds, scale=args.scale)
    scores = accumulate(ev, [args.conf])[0]
    score = summarize(scores)
    per = {i: float(s) for i, s in zip(ev.ids, scores, strict=True) if s == s}
    n_kept = dict(zip(ev.ids, ev.n_kept(args.conf).tolist(), strict=True))
    missing = len(set(truth) - set(sub.ids))
    print(
        f"Kaggle score {score:.6f}  ({len(per)} images scored, {len(truth) - len(per)} left out: no truth "
        f"and no box; {missing} truth patients absent from the submission counted as no box)"
    )
    if gt.classes:
        for line in format_breakdown(breakdown(per, truth, gt.classes, n_kept)):
            print(line)
    if args.per_image:
        frame = pd.DataFrame(
            {
                "patientId": list(ev.ids),
                "class": [gt.classes.get(i, "") for i in ev.ids],
                "n_truth": ev.n_gt,
                "n_pred": [n_kept[i] for i in ev.ids],
                "score": scores,
            }
        )
        write_csv_atomic(frame, args.per_image)
        print(f"per-image scores: {args.per_image}")
    return 0
