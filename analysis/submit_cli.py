"""``python -m analysis submit --weights W --images DIR --out submission.csv``: a Kaggle submission."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analysis.predict import predict_images
from analysis.submission import image_ids, validate_submission, write_submission
from core.cli import UserError

DEFAULT_CONF = 0.25


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
        "--conf", type=float, help=f"confidence threshold (default {DEFAULT_CONF} without --from-run)"
    )
    how.add_argument(
        "--from-run", type=Path, help="run folder (or kaggle.json) whose tuned conf and scale to use"
    )
    parser.add_argument("--scale", type=float, help="box scale about the centre (default 1, or the run's)")
    parser.add_argument("--tta", action="store_true", help="horizontal-flip test-time augmentation")
    parser.add_argument("--imgsz", type=int, help="inference size (default: the weights' training size)")
    parser.add_argument("--batch", type=int, default=16, help="images per inference batch")
    parser.add_argument("--device", help="cpu, 0, ... (default: Ultralytics' choice)")
    parser.add_argument(
        "--scales-from",
        type=Path,
        help="manifest.csv of converted PNGs (their scale column; default: the manifest.csv of the dataset "
        "the PNG folder is in, else a PNG's longer side is taken as 1024 source pixels); DICOMs need nothing",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def tuned_settings(from_run: Path, tta: bool = False, n_weights: int = 1) -> tuple[float, float]:
    """``(conf, scale)`` from a run's ``kaggle.json``; warns when it was tuned with other TTA / ensembling."""
    path = from_run / "kaggle.json" if from_run.is_dir() else from_run
    try:
        data = json.loads(path.read_text())
        tuned_tta = bool(data.get("tta", False))
        tuned_n = len(data["weights"]) if isinstance(data.get("weights"), list) else 1
        if (tuned_tta, tuned_n) != (tta, n_weights):
            print(
                f"warning: {path} was tuned with {tuned_n} model(s), TTA {tuned_tta}; this submission uses "
                f"{n_weights}, TTA {tta} (rescore the same combination with --tta / several weights)"
            )
        return float(data["conf"]), float(data.get("scale") or 1.0)
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(
            f"{path}: no tuned conf/scale ({exc}); run `python -m analysis rescore` first"
        ) from exc


def check_settings(conf: float, scale: float) -> None:
    """A threshold in [0, 1] and a positive box scale, else one clear error."""
    if not 0.0 <= conf <= 1.0:
        raise UserError(f"--conf {conf:g}: a confidence threshold is between 0 and 1")
    if not scale > 0.0:
        raise UserError(f"--scale {scale:g}: the box scale must be positive (0.8 shrinks boxes by 20%)")


def find_manifest(folder: Path, images: dict[str, Path]) -> Path | None:
    """For converted PNGs (``D/images/<split>/``), the dataset's ``D/manifest.csv`` (their ``scale`` column
    maps boxes back to the source frame); None for DICOMs or when there is none."""
    if not any(p.suffix.lower() == ".png" for p in images.values()):
        return None
    folder = Path(folder).resolve()
    for parent in (folder, folder.parent, folder.parent.parent):
        if (parent / "manifest.csv").is_file():
            return parent / "manifest.csv"
    return None


def main(args: argparse.Namespace) -> int:
    """Predict, write, validate, report."""
    from core.layout import read_manifest
    from core.runs import resolve_weights

    n_weights = len(args.weights)
    conf, scale = tuned_settings(args.from_run, args.tta, n_weights) if args.from_run else (DEFAULT_CONF, 1.0)
    if args.conf is not None:
        conf = args.conf
    if args.scale is not None:
        scale = args.scale
    check_settings(conf, scale)
    weights = [resolve_weights(w)[0] for w in args.weights]
    images = image_ids(args.images)
    scales = None
    scales_from = args.scales_from or find_manifest(args.images, images)
    if scales_from:
        if not args.scales_from:
            print(f"note: PNG scales from {scales_from}")
        manifest = read_manifest(scales_from)
        if "scale" not in manifest.columns:
            raise UserError(f"{scales_from}: no 'scale' column (expected a manifest.csv of `convert rsna`)")
        scales = dict(zip(manifest["patientId"].astype(str), manifest["scale"].astype(float), strict=True))
    frame = predict_images(
        weights,
        list(images.values()),
        imgsz=args.imgsz,
        conf=min(conf, 0.01) if len(weights) > 1 or args.tta else conf,  # fusion needs the weak boxes too
        batch=args.batch,
        tta=args.tta,
        device=args.device,
        scales=scales,
        progress=not args.quiet,
    )
    failed = frame.attrs.get("failed", {})
    for pid, reason in failed.items():
        print(f"warning: {pid}: {reason} -> empty row")
    write_submission(args.out, list(images), frame, conf=conf, scale=scale)
    sub = validate_submission(args.out, images)
    n_boxes = len(sub.boxes)
    with_boxes = sub.boxes["patientId"].nunique()
    print(
        f"{args.out}: {len(sub.ids)} patients ({with_boxes} with boxes, {n_boxes} boxes) at conf >= "
        f"{conf:g}, scale {scale:g}; {len(failed)} unreadable image(s); validated"
    )
    return 0
