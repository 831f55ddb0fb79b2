"""``python -m convert synth``: write realistic synthetic DICOMs and CSVs in the exact Kaggle layout."""

from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path

from rsna_yolo.core.boxes import NATIVE_SIZE
from rsna_yolo.core.cli import UserError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = textwrap.fill(
        "Write a synthetic RSNA Pneumonia Detection Challenge download: stage_2_train_images/*.dcm, "
        "stage_2_test_images/*.dcm (JPEG Baseline DICOMs like the real ones), stage_2_train_labels.csv, "
        "stage_2_detailed_class_info.csv and stage_2_sample_submission.csv, with the real class mix and "
        "the box sets of real patients (shipped with the repository). The same arguments give "
        "byte-identical files on any machine."
    )
    parser.epilog = (
        "example:\n  python -m convert synth --out data/synth --patients 300 --test-patients 40 --seed 0\n"
        "  python -m convert rsna --src data/synth --out data/synth_yolo --imgsz 640"
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder to write (created if missing)"
    )
    parser.add_argument(
        "--patients", type=int, required=True, metavar="N", help="number of training patients"
    )
    parser.add_argument(
        "--test-patients", type=int, default=0, metavar="M", help="number of test patients (default 0)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument(
        "--imgsz",
        type=int,
        default=NATIVE_SIZE,
        metavar="N",
        help=f"image width and height (default {NATIVE_SIZE}, as the real files)",
    )
    parser.add_argument(
        "--difficulty",
        choices=("easy", "hard"),
        default="easy",
        help="easy (default, the demo's): clean films, bright opacities; hard: like the real films in what "
        "matters for detection (varied framing and exposure, faint patchy opacities, Not Normal findings "
        "that mimic opacity inside the lungs: a detector puts false boxes there). Same patients and boxes",
    )
    parser.add_argument(
        "--labels-csv",
        type=Path,
        default=None,
        metavar="CSV",
        help="a Kaggle stage_2_train_labels.csv to draw box sets from instead of the real box sets shipped "
        "in convert/data/real_box_sets.csv (the stage-2 file gives the same sets, hence the same bytes)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="W",
        help="processes rendering images (default: all CPU cores; the files do not depend on it)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the DICOMs and CSVs of an earlier run in --out"
    )


def main(args: argparse.Namespace) -> int:
    from convert.synth import generate
    from rsna_yolo.core.workers import available_cpus

    if args.patients < 0 or args.test_patients < 0:
        raise UserError("--patients and --test-patients must be >= 0")
    if args.imgsz < 64:
        raise UserError(f"--imgsz must be at least 64, got {args.imgsz}")
    if args.labels_csv is not None and not args.labels_csv.is_file():
        raise UserError(f"--labels-csv {args.labels_csv}: no such file")
    start = time.perf_counter()
    try:
        summary = generate(
            args.out,
            args.patients,
            args.test_patients,
            args.seed,
            labels_csv=args.labels_csv,
            imgsz=args.imgsz,
            difficulty=args.difficulty,
            workers=max(1, args.workers or available_cpus()),
            overwrite=args.overwrite,
            progress=True,
        )
    except FileExistsError as exc:
        raise UserError(f"{exc} (pass --overwrite)") from None
    except ValueError as exc:  # a labels CSV without the needed columns or boxes
        raise UserError(str(exc)) from None
    seconds = time.perf_counter() - start
    classes = ", ".join(f"{n} {cls}" for cls, n in summary["classes"].items())
    n_images = summary["train_patients"] + summary["test_patients"]
    print(
        f"synth ({summary['difficulty']}): wrote {summary['train_patients']} train "
        f"({classes}; {summary['train_boxes']} boxes) and "
        f"{summary['test_patients']} test DICOMs to {summary['out']} in {seconds:.1f} s "
        f"({n_images / max(seconds, 1e-9):.0f} img/s)"
    )
    return 0
