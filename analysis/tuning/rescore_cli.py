"""``python -m analysis rescore RUN_DIR_OR_WEIGHTS --data DATA_YAML [--split val]``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from analysis.record.defaults import DEFAULTS
from analysis.scoring.breakdown import format_breakdown
from analysis.tuning.rescoring import rescore
from analysis.tuning.threshold import format_sweep


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analysis rescore``."""
    parser.description = (
        "Predict a split of a converted dataset once at conf 0.01 with a run's weights (boxes mapped back to "
        "the source frame with the manifest), sweep the confidence threshold (0.01..0.04, 0.05..0.95) and a "
        "box scale about the centre (1.0, 0.80..0.95) with the exact Kaggle metric, and write kaggle.json, "
        "predictions_<split>.csv and kaggle_threshold.png into the run folder. Predictions are reused when "
        "the weights (content hash), image size and TTA are unchanged."
    )
    parser.add_argument(
        "weights",
        nargs="+",
        type=Path,
        metavar="RUN_DIR_OR_WEIGHTS",
        help="run folder (uses weights/best.pt) or .pt file; several are ensembled with weighted box fusion",
    )
    parser.add_argument("--data", type=Path, required=True, help="the dataset's data.yaml")
    parser.add_argument("--split", default="val", help="split of the manifest to score (default: val)")
    parser.add_argument(
        "--imgsz", type=int, help="inference size of every model (default: each model's own training size)"
    )
    parser.add_argument("--batch", type=int, default=16, help="images per inference batch")
    parser.add_argument("--device", help="cpu, 0, ... (default: Ultralytics' choice)")
    parser.add_argument("--tta", action="store_true", help="add horizontal-flip test-time augmentation")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the outputs (default: the run folder; with several weights or --tta a subfolder of "
        "the first one, e.g. kaggle_ensemble2_tta, so the run's own kaggle.json is not overwritten)",
    )
    parser.add_argument(
        "--floor",
        "--conf",
        dest="floor",
        type=float,
        default=DEFAULTS.prediction_floor,
        help=f"prediction floor: the lowest confidence kept, and so the lowest threshold tried (default "
        f"{DEFAULTS.prediction_floor}; --conf is the old name)",
    )
    parser.add_argument("--no-val", action="store_true", help="skip Ultralytics' mAP50 / mAP50-95 validation")
    parser.add_argument(
        "--classifier",
        type=Path,
        action="append",
        metavar="CLS_RUN",
        help="a classifier run (python -m train task=classify) gating the boxes: P(Lung Opacity) per image, "
        "and the gate (hard: drop an image's boxes below it; soft: conf x P) tuned with the threshold and "
        "box scale, 'no gate' included. Repeat to average several. Outputs go to kaggle_gated/",
    )
    parser.add_argument("--classifier-tta", action="store_true", help="flip TTA for the classifier(s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no sweep table")


def main(args: argparse.Namespace) -> int:
    """Rescore and print the best pair, the comparison metrics and the breakdown."""
    result = rescore(
        args.weights,
        args.data,
        split=args.split,
        floor=args.floor,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        tta=args.tta,
        out_dir=args.out,
        ultralytics_val=not args.no_val,
        classifier=args.classifier,
        classifier_tta=args.classifier_tta,
        progress=not args.quiet,
    )
    reused = " (predictions reused)" if result["predictions_reused"] else ""
    print(
        f"{result['split']}: {result['n_images']} images, {result['n_predictions']} boxes at conf >= "
        f"{args.floor}{reused}"
    )
    if not args.quiet:
        for line in format_sweep(pd.DataFrame(result["sweep"])):
            print(line)
    print(
        f"best Kaggle score {result['score']:.4f} at conf {result['conf']:.2f}, scale {result['scale']:.2f} "
        f"(tuned on these images; held-out {heldout_text(result.get('score_heldout'))})"
    )
    if "gate" in result:
        for line in gate_lines(result):
            print(line)
    if result["map50"] is not None:
        print(f"Ultralytics mAP50 {result['map50']:.4f}, mAP50-95 {result['map50_95']:.4f}")
    for line in format_breakdown(result["breakdown"]):
        print(line)
    extra = f", {result['classifier_predictions']}" if "gate" in result else ""
    print(
        f"written to {result['out_dir']}: kaggle.json, {result['predictions']}{extra}, kaggle_threshold.png"
    )
    return 0


def heldout_text(score: float | None) -> str:
    """The held-out score in words: tuned on one half of the images by patientId, scored on the other,
    both ways, averaged (:mod:`analysis.tuning.tuner`)."""
    return "n/a: a half has no scored image" if score is None else f"{score:.4f}"


def gate_lines(result: dict) -> list[str]:
    """The gate's effect in words: gated against ungated score, and the loss it moved."""
    gate, ungated, effect = result["gate"], result["ungated"], result["gate_effect"]
    how = "no gate" if gate["mode"] == "hard" and not gate["gate"] else (
        f"hard gate {gate['gate']:.2f} (boxes of images with P(opacity) below it dropped)"
        if gate["mode"] == "hard" else "soft gate (box conf x P(opacity))"
    )  # fmt: skip
    reused = " (classifier probabilities reused)" if result["classifier_reused"] else ""
    return [
        f"classifier gate: {how}{reused}",
        f"  gated {result['score']:.4f} vs detector alone {ungated['score']:.4f} "
        f"(conf {ungated['conf']:.2f}, scale {ungated['scale']:.2f}; held-out "
        f"{heldout_text(ungated.get('score_heldout'))})",
        f"  false-box loss removed {effect['false_box_loss_removed']:.4f}, Lung Opacity loss added "
        f"{effect['lung_opacity_loss_added']:.4f}",
    ]
