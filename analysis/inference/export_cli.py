"""``python -m analysis export RUN --format onnx|openvino`` (``rsna-yolo export``): a tuned setting's models,
exported for ONNX Runtime or OpenVINO."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.inference.export import FORMATS, export_setting
from rsna_yolo.core.runs import EXPORTS_JSON


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``analysis export``."""
    parser.description = (
        "Export every model a tuned setting uses (each fold's detector, the classifier(s) of a gated "
        "setting) through Ultralytics' exporter, each at the image size the setting predicts it at, into its "
        "weights folder (best.pt -> best_<imgsz>.onnx or best_<imgsz>_openvino_model/), recorded in "
        f"{EXPORTS_JSON} there with its SHA-1 and its source weights' SHA-1. Then `analysis submit` and "
        "`analysis predict` run them with --backend onnx|openvino|openvino-bf16|openvino-int8. An export "
        "already made from the same weights is kept (--force makes it again)."
    )
    parser.add_argument(
        "run",
        type=Path,
        metavar="RUN",
        help="a tuned run folder (its kaggle.json; RUN/kaggle_gated for the gated setting with its "
        "classifier), a fold set folder or a kaggle*.json file; an untuned run or fold set: its weights",
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="onnx (ONNX Runtime) or openvino")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="OpenVINO only: post-training INT8 quantization (NNCF), calibrated on the images each model "
        "trained on (its args.yaml data, or --data); predict with --backend openvino-int8",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="with --int8: the data YAML (or classification folder) to calibrate on, not each model's own",
    )
    parser.add_argument("--force", action="store_true", help="export again even when an export is up to date")


def main(args: argparse.Namespace) -> int:
    """Export, one line per model."""
    done = export_setting(args.run, args.format, int8=args.int8, data=args.data, force=args.force)
    backend = args.format + ("-int8" if args.int8 else "")
    print(f"{len(done)} model(s) exported; predict with --backend {backend}")
    return 0
