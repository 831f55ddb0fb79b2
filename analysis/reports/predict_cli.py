"""``python -m analysis predict RUN --images FILE_OR_FOLDER --out DIR``: predictions on your own films."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.inference.export import add_backend_argument
from analysis.reports.predict_run import DEFAULT_CARDS, PREDICTIONS_CSV, predict_films
from rsna_yolo.core.runs import ANNOTATED_DIR


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analysis predict``."""
    parser.description = (
        "Predict DICOMs or PNGs exactly as a run was tuned (its models, image sizes, TTA, fusion, threshold, "
        "box scale, classifier and gate, all read from its kaggle*.json) and write, into --out: "
        f"{PREDICTIONS_CSV} (one row per box in source pixels: patientId, file, p_opacity when a classifier "
        "is part of the setting, gate_removed when gated, conf, x, y, width, height, the annotated PNG and "
        "its png_scale, error; an image without a box has one row with empty box columns), "
        f"{ANNOTATED_DIR}/<patientId>.png (the film with its boxes: red with confidence, boxes the gate "
        "removed dashed grey, P(opacity) in the title; a box is drawn at (x, y, width, height) * png_scale), "
        "report.html (self-contained, opens from disk: the setting, the counts, unreadable files, one card "
        "per image, most confident first, up to --cards) and report.md. A corrupt or non-image file is "
        "listed, never fatal."
    )
    parser.add_argument(
        "run",
        type=Path,
        metavar="RUN",
        help="a tuned run folder (its kaggle.json; RUN/kaggle_gated for the gated setting), a fold set "
        "folder (kaggle_oof_gated.json, else kaggle_oof.json) or a kaggle*.json file",
    )
    parser.add_argument(
        "--images",
        type=Path,
        required=True,
        metavar="FILE_OR_FOLDER",
        help=".dcm / .png file, or a folder searched recursively; PNGs of a converted dataset are mapped "
        "back to the source frame with its manifest.csv, a lone PNG is taken to be a 1024-px frame",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output folder (not inside --images)"
    )
    parser.add_argument(
        "--dicom",
        action="store_true",
        help="also write dicom/<patientId>_pr.dcm for every DICOM film: a Grayscale Softcopy Presentation "
        "State that draws the kept boxes and their confidence on the film in a radiology viewer",
    )
    parser.add_argument(
        "--submission",
        type=Path,
        metavar="FILE",
        help="also write the Kaggle submission CSV (validated; byte for byte what `analysis submit "
        "--weights RUN --from-run RUN` writes for the same images)",
    )
    parser.add_argument(
        "--size", type=int, default=None, help="longer side of the annotated PNGs in px (default 640)"
    )
    parser.add_argument(
        "--cards",
        type=int,
        default=DEFAULT_CARDS,
        help=f"films shown as cards in report.html, most confident first (default {DEFAULT_CARDS}: each card "
        "embeds its PNG; predictions.csv and images/ always hold every film)",
    )
    parser.add_argument(
        "--scales-from",
        type=Path,
        help="manifest.csv giving the PNG scale of converted PNGs (default: the manifest.csv of the dataset "
        "the PNG folder is in)",
    )
    parser.add_argument("--batch", type=int, default=16, help="images per inference batch")
    parser.add_argument("--device", help="cpu, 0, ... (default: Ultralytics' choice)")
    add_backend_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """Predict, draw, report, print where everything went."""
    result = predict_films(
        args.run,
        args.images,
        args.out,
        submission=args.submission,
        dicom=args.dicom,
        size=args.size,
        cards=args.cards,
        png_scales_from=args.scales_from,
        batch=args.batch,
        device=args.device,
        backend=args.backend,
        progress=not args.quiet,
    )
    print(f"setting: {result.setting.describe()}")
    for name, why in result.failed.items():
        print(f"warning: {name}: {why}")
    for path, reason in result.ignored.items():
        print(f"note: {path}: {reason}")
    print(
        f"{result.n_images} film(s): {result.n_with_boxes} with boxes, {len(result.failed)} unreadable; "
        f"{len(result.ignored)} other file(s) skipped; "
        f"{result.paths['predictions']}, {len(result.annotated)} PNG(s) in {result.out / ANNOTATED_DIR}"
    )
    if "dicom" in result.paths:
        print(f"presentation states: {len(result.presentation_states)} in {result.paths['dicom']}")
    if "submission" in result.paths:
        print(f"submission: {result.paths['submission']} (validated)")
    print(f"report: {result.paths['html']}")
    return 0
