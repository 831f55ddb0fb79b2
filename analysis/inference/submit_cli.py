"""``python -m analysis submit --weights W --images DIR --out submission.csv``: a Kaggle submission."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.inference.export import add_backend_argument
from analysis.inference.submit import make_submission
from analysis.record.defaults import DEFAULTS


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analysis submit``."""
    parser.description = (
        "Predict a folder of test DICOMs (or converted PNGs) in batches and write one row per image in the "
        "Kaggle format (patientId,PredictionString with 'conf x y w h' in 1024-px source coordinates, empty "
        "when no box). The threshold and box scale come from a run's kaggle.json (--from-run) or --conf. "
        "Several --weights are fused with weighted box fusion; --tta adds horizontal flips. An unreadable "
        "image is reported and still gets an (empty) row. The file is validated before success is reported."
    )
    parser.add_argument(
        "--weights",
        type=Path,
        action="append",
        required=True,
        help=".pt weights or a run folder (repeatable)",
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of test .dcm (or .png) files")
    parser.add_argument("--out", type=Path, required=True, help="submission CSV to write")
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--conf",
        type=float,
        help=f"confidence threshold (default {DEFAULTS.default_conf} without --from-run)",
    )
    how.add_argument(
        "--from-run",
        type=Path,
        help="run folder (or its kaggle.json; for a fold set, its kaggle_oof.json or kaggle_oof_gated.json) "
        "whose tuned conf, scale (and gate) to use",
    )
    parser.add_argument("--scale", type=float, help="box scale about the centre (default 1, or the run's)")
    parser.add_argument("--tta", action="store_true", help="horizontal-flip test-time augmentation")
    parser.add_argument(
        "--imgsz", type=int, help="inference size of every model (default: each model's own training size)"
    )
    parser.add_argument("--batch", type=int, default=16, help="images per inference batch")
    parser.add_argument("--device", help="cpu, 0, ... (default: Ultralytics' choice)")
    add_backend_argument(parser)
    parser.add_argument(
        "--scales-from",
        type=Path,
        help="manifest.csv of converted PNGs (their scale column; default: the manifest.csv of the dataset "
        "the PNG folder is in, else a PNG's longer side is taken as 1024 source pixels); DICOMs need nothing",
    )
    parser.add_argument(
        "--classifier",
        type=Path,
        action="append",
        metavar="CLS_RUN",
        help="classifier run(s) gating the boxes with the gate tuned by `analysis rescore --classifier` "
        "(pass its kaggle_gated folder as --from-run); repeat to average several",
    )
    parser.add_argument("--classifier-tta", action="store_true", help="flip TTA for the classifier(s)")
    parser.add_argument("--gate", type=float, help="a hard gate on P(opacity) instead of the tuned one")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Predict, write, validate, report."""
    summary = make_submission(
        args.weights,
        args.images,
        args.out,
        conf=args.conf,
        box_scale=args.scale,
        from_run=args.from_run,
        tta=args.tta,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        png_scales_from=args.scales_from,
        classifier=args.classifier,
        classifier_tta=args.classifier_tta,
        gate=args.gate,
        backend=args.backend,
        progress=not args.quiet,
    )
    print(
        f"{summary.path}: {summary.n_patients} patients ({summary.n_with_boxes} with boxes, "
        f"{summary.n_boxes} boxes) at conf >= {summary.conf:g}, scale {summary.box_scale:g}; "
        f"{len(summary.failed)} unreadable image(s); validated"
    )
    if summary.gate is not None:
        g = summary.gate
        if g["mode"] == "hard" and not g["gate"]:
            print("gated by the classifier: no gate (the tuned gate keeps every box)")
        else:
            level = f" {g['gate']:.2f}" if g["mode"] == "hard" else ""
            print(f"gated by the classifier: {g['mode']} gate{level}")
    return 0
