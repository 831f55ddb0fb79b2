"""Rescoring a trained run with the Kaggle metric: ground truth, prediction cache, sweep, breakdown, report.

The pieces, each usable alone (the trainer reuses them):

- :func:`resolve_weights` -> ``(weights, run_dir)`` from a run folder or a ``.pt``;
- :func:`read_dataset` / :func:`dataset_truth` -> the manifest and the ground truth of a split of a
  converted dataset (``boxes.csv`` + ``manifest.csv``, docs/ARCHITECTURE.md); :func:`read_truth` also
  reads the Kaggle labels CSV (any of these, for ``analysis score``);
- :func:`predict_split` -> the raw predictions (conf 0.01, source pixels), cached in
  ``predictions_<split>.csv`` and reused when the weights, image size and TTA are unchanged;
- :func:`sweep_scores` + :func:`best_row` -> the (threshold, scale) table and the best pair;
- :func:`breakdown` -> where the loss comes from, per class of image;
- :func:`plot_sweep` -> ``kaggle_threshold.png``; :func:`rescore` does it all and writes ``kaggle.json``.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.metric import frame_to_preds, frame_to_truth, per_image_scores, sweep
from core.cli import UserError
from core.io import write_csv_atomic
from core.layout import (
    CLASSES,
    NEGATIVE_CLASSES,
    PRED_COLUMNS,
    dataset_split,
    read_dataset,
    read_manifest,
)
from core.runs import predictions_name, read_kaggle, resolve_weights, write_kaggle

SWEEP_CONFS = tuple(round(0.01 * k, 2) for k in range(1, 5)) + tuple(round(0.05 * k, 2) for k in range(1, 20))
"""0.01 ... 0.04, then 0.05 ... 0.95 in 0.05 steps."""
SWEEP_SCALES = (1.0, 0.80, 0.85, 0.90, 0.95)
PREDICT_CONF = 0.01
BREAKDOWN_ORDER = tuple(reversed(CLASSES))
"""Classes in the breakdown: Normal, Not Normal (the false-box loss), then Lung Opacity."""


@dataclass
class TruthSet:
    """Ground truth of the images to score: ``truth`` (every image, ``(G, 4)`` xywh_px, ``(0, 4)`` for
    negatives), ``classes`` (patientId -> class, empty when unknown), and lines worth telling the user."""

    truth: dict[str, np.ndarray]
    classes: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    excluded: set[str] = field(default_factory=set)
    """Patients dropped from the truth (invalid label rows): a submission naming them is not an error."""


# ---------------------------------------------------------------------------------------------------------
# Ground truth
def dataset_truth(root: Path, manifest: pd.DataFrame, split: str | None = None) -> TruthSet:
    """Ground truth of the labelled images of ``split`` (all labelled splits when None) from ``boxes.csv``."""
    boxes_path = Path(root) / "boxes.csv"
    if not boxes_path.is_file():
        raise UserError(f"{boxes_path}: missing (the dataset's ground truth in source pixels)")
    boxes = pd.read_csv(boxes_path, dtype={"patientId": str})
    rows = manifest[manifest["split"] != "test"] if split is None else manifest[manifest["split"] == split]
    if rows.empty:
        raise UserError(f"{root / 'manifest.csv'}: no labelled images in split {split!r}")
    if "Target" in rows.columns and rows["Target"].isna().all():
        raise UserError(f"{root / 'manifest.csv'}: split {split!r} has no labels (test images have none)")
    ids = rows["patientId"].astype(str).tolist()
    classes = {}
    if "class" in rows.columns:
        pairs = zip(rows["patientId"], rows["class"], strict=True)
        classes = {str(p): c for p, c in pairs if isinstance(c, str)}
    return TruthSet(frame_to_truth(boxes, ids), classes)


def kaggle_truth(label_csv: Path) -> TruthSet:
    """Ground truth from the Kaggle labels CSV, validated by :mod:`core.labels`; the class CSV is used
    when it sits beside it (for the per-class breakdown)."""
    from core.labels import (
        CLASS_COLUMNS,
        CLASS_FILES,
        LABEL_COLUMNS,
        POSITIVE_CLASS,
        parse_labels,
        read_csv_strings,
    )

    label_csv = Path(label_csv)
    labels = read_csv_strings(label_csv, LABEL_COLUMNS)
    class_csv = next((label_csv.parent / n for n in CLASS_FILES if (label_csv.parent / n).is_file()), None)
    if class_csv is not None:
        classes = read_csv_strings(class_csv, CLASS_COLUMNS)
    else:  # no class file: derive a consistent one so that only the labels are judged
        classes = labels[["row", "patientId"]].assign(
            **{"class": np.where(labels["Target"] == "1", POSITIVE_CLASS, "Normal")}
        )
    class_name = class_csv.name if class_csv is not None else ""
    parsed = parse_labels(labels, classes, label_file=label_csv.name, class_file=class_name)
    notes = []
    label_skips = [s for s in parsed.skips if s.file == label_csv.name]
    if label_skips:
        first = label_skips[0].line()
        notes.append(f"{len(label_skips)} truth row(s) skipped, their patients not scored; first: {first}")
    ids = parsed.patients.index.astype(str).tolist()
    truth = frame_to_truth(parsed.boxes, ids)
    cls = {str(p): str(c) for p, c in parsed.patients["class"].items()} if class_csv is not None else {}
    excluded = {s.patientId for s in parsed.skips} - set(ids)
    return TruthSet(truth, cls, notes, excluded)


def read_truth(path: str | Path, *, split: str | None = None) -> TruthSet:
    """Ground truth from the Kaggle labels CSV, a Kaggle folder, a dataset's ``boxes.csv``, its folder or
    its data YAML (``split`` restricts a dataset to one split)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: not found")
    if path.is_dir() and (path / "manifest.csv").is_file():
        yaml_path = path / "data.yaml" if (path / "data.yaml").is_file() else path
        return dataset_truth(*(dataset_split(yaml_path, split) if split else read_dataset(yaml_path)), split)
    if path.is_dir():
        from core.labels import LABEL_FILES, find_csv

        return kaggle_truth(find_csv(path, LABEL_FILES))
    if path.suffix in {".yaml", ".yml"}:
        return dataset_truth(*(dataset_split(path, split) if split else read_dataset(path)), split)
    if path.name == "boxes.csv" and (path.parent / "manifest.csv").is_file():
        return dataset_truth(path.parent, read_manifest(path.parent / "manifest.csv"), split)
    return kaggle_truth(path)


# ---------------------------------------------------------------------------------------------------------
# Breakdown of the loss
_COUNTERS = ("n_images", "n_scored", "n_with_boxes", "sum_score", "loss_sum", "missed", "missed_loss")


def breakdown(
    scores: Mapping[str, float],
    truth: Mapping[str, np.ndarray],
    classes: Mapping[str, str],
    n_boxes: Mapping[str, int],
) -> dict:
    """Where the loss ``1 - score`` comes from, per class of image.

    ``scores``: per-image scores (left-out images absent), ``truth``: every image, ``classes``: patientId ->
    class (images without one are grouped as ``"unknown"``, by whether they have ground truth),
    ``n_boxes``: boxes kept per image. ``loss`` of a group is ``sum(1 - score) / n_scored_total``, so the
    groups' losses add up to ``1 - score``. For Lung Opacity images the loss is split into images with no
    box at all (``missed``) and the rest (``misplaced``: wrong, too few or extra boxes).
    """
    n_scored = len(scores)
    total_loss = sum(1.0 - s for s in scores.values())

    def cls_of(pid: str) -> str:
        return classes.get(pid) or ("Lung Opacity" if len(truth[pid]) else "Normal")

    groups: dict[str, dict] = {}
    for pid in truth:
        g = groups.setdefault(cls_of(pid), dict.fromkeys(_COUNTERS, 0))
        g["n_images"] += 1
        k = int(n_boxes.get(pid, 0))
        g["n_with_boxes"] += k > 0
        if pid in scores:
            g["n_scored"] += 1
            g["sum_score"] += scores[pid]
            g["loss_sum"] += 1.0 - scores[pid]
            if len(truth[pid]) and k == 0:
                g["missed"] += 1
                g["missed_loss"] += 1.0 - scores[pid]
    out_classes = {}
    for name in sorted(groups, key=lambda c: (BREAKDOWN_ORDER.index(c) if c in BREAKDOWN_ORDER else 99, c)):
        g = groups[name]
        entry = {
            "n_images": g["n_images"],
            "n_scored": g["n_scored"],
            "n_with_boxes": g["n_with_boxes"],
            "mean_score": g["sum_score"] / g["n_scored"] if g["n_scored"] else None,
            "loss": g["loss_sum"] / n_scored if n_scored else 0.0,
            "loss_share": g["loss_sum"] / total_loss if total_loss else 0.0,
        }
        if name == "Lung Opacity":
            entry["missed_images"] = g["missed"]
            entry["missed_loss"] = g["missed_loss"] / n_scored if n_scored else 0.0
            entry["misplaced_loss"] = (g["loss_sum"] - g["missed_loss"]) / n_scored if n_scored else 0.0
        out_classes[name] = entry
    false_box = sum(out_classes[c]["loss"] for c in out_classes if c in NEGATIVE_CLASSES)
    positive = out_classes.get("Lung Opacity", {}).get("loss", 0.0)
    return {
        "n_scored": n_scored,
        "loss": total_loss / n_scored if n_scored else 0.0,
        "false_box_loss": false_box,
        "lung_opacity_loss": positive,
        "classes": out_classes,
    }


def format_breakdown(b: dict) -> list[str]:
    """Human-readable lines of a :func:`breakdown`."""
    lines = [f"loss 1 - score = {b['loss']:.4f} over {b['n_scored']} scored images:"]
    for name, e in b["classes"].items():
        mean = "   -  " if e["mean_score"] is None else f"{e['mean_score']:.4f}"
        line = (
            f"  {name:<30} {e['n_images']:6d} images, {e['n_scored']:6d} scored, "
            f"{e['n_with_boxes']:6d} with boxes, mean {mean}, "
            f"loss {e['loss']:.4f} ({100 * e['loss_share']:.1f}%)"
        )
        if "missed_images" in e:
            line += (
                f" = missed {e['missed_loss']:.4f} ({e['missed_images']} image"
                f"{'' if e['missed_images'] == 1 else 's'})"
                f" + misplaced {e['misplaced_loss']:.4f}"
            )
        lines.append(line)
    return lines


# ---------------------------------------------------------------------------------------------------------
# Sweep
def sweep_scores(
    truth: Mapping[str, np.ndarray],
    preds: pd.DataFrame,
    confs: Sequence[float] = SWEEP_CONFS,
    scales: Sequence[float] = SWEEP_SCALES,
) -> pd.DataFrame:
    """Kaggle score for every (conf, scale) pair of a prediction frame (rows of images not in ``truth`` are
    an error)."""
    return sweep(truth, frame_to_preds(preds), confs, scales)


def best_row(table: pd.DataFrame) -> dict:
    """The best (conf, scale, score); ties go to the higher threshold, then the scale nearer 1 (fewer boxes,
    less change). NaN scores (nothing counted) lose."""
    t = table.assign(_s=table["score"].fillna(-1.0), _d=-(table["scale"] - 1.0).abs())
    row = t.sort_values(["_s", "conf", "_d"], ascending=False, kind="stable").iloc[0]
    return {"conf": float(row["conf"]), "scale": float(row["scale"]), "score": float(row["score"])}


def format_sweep(table: pd.DataFrame) -> list[str]:
    """The sweep as text: one line per confidence threshold, one column per box scale, ``*`` on the best
    pair (:func:`best_row`); ``  -   `` where no image counts.

    >>> t = pd.DataFrame({"conf": [0.1, 0.2, 0.1, 0.2], "scale": [1.0, 1.0, 0.9, 0.9],
    ...                   "score": [0.5, 0.25, 0.625, float("nan")]})
    >>> print("\\n".join(format_sweep(t)))
    Kaggle score by confidence threshold (rows) and box scale (columns):
      conf    1.00     0.90
      0.10  0.5000   0.6250*
      0.20  0.2500     -
    """
    best = best_row(table)
    scales = list(dict.fromkeys(table["scale"]))
    lines = [
        "Kaggle score by confidence threshold (rows) and box scale (columns):",
        "  conf" + "".join(f"  {s:6.2f} " for s in scales).rstrip(),
    ]
    by_pair = {(float(r.conf), float(r.scale)): float(r.score) for r in table.itertuples()}
    for conf in dict.fromkeys(table["conf"]):
        cells = []
        for s in scales:
            v = by_pair.get((float(conf), float(s)), math.nan)
            mark = "*" if (float(conf), float(s)) == (best["conf"], best["scale"]) else " "
            cells.append("    -    " if math.isnan(v) else f"  {v:.4f}{mark}")
        lines.append(f"  {conf:4.2f}" + "".join(cells).rstrip())
    return lines


def plot_sweep(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Score vs confidence threshold, one line per box scale, best pair marked; PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for scale, g in table.groupby("scale", sort=False):
        ax.plot(g["conf"], g["score"], marker=".", label=f"scale {scale:.2f}")
    best = best_row(table)
    if not math.isnan(best["score"]):
        ax.plot([best["conf"]], [best["score"]], "k*", ms=12, label=f"best {best['score']:.4f}")
    ax.set_xlabel("confidence threshold")
    ax.set_ylabel("Kaggle mAP (IoU 0.40-0.75)")
    ax.set_title(title or "Kaggle score vs threshold")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------------------
# Predictions (cached)
def weights_signature(weights: Sequence[Path]) -> list[dict]:
    """What identifies weights for the prediction cache: path, size and a hash of the file's content."""
    out = []
    for w in weights:
        digest = hashlib.sha1(Path(w).read_bytes()).hexdigest()
        out.append({"path": str(Path(w).resolve()), "size": Path(w).stat().st_size, "sha1": digest})
    return out


def split_images(root: Path, manifest: pd.DataFrame, split: str) -> tuple[list[Path], dict[str, float]]:
    """PNG paths of a split and patientId -> manifest ``scale`` (PNG pixels per source pixel)."""
    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise UserError(f"{root / 'manifest.csv'}: no images in split {split!r}")
    paths = [root / p for p in rows["png"]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: image listed in the manifest is missing ({len(missing)} missing)")
    return paths, dict(zip(rows["patientId"].astype(str), rows["scale"].astype(float), strict=True))


def predict_split(
    weights: Sequence[Path],
    root: Path,
    manifest: pd.DataFrame,
    split: str,
    out_dir: Path,
    *,
    imgsz: int | None = None,
    batch: int = 16,
    device=None,
    tta: bool = False,
    signature: dict | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict, bool]:
    """Predict a split at conf 0.01 (source pixels) or reuse ``out_dir/predictions_<split>.csv`` when the
    ``signature`` recorded in ``out_dir/kaggle.json`` matches. Returns ``(frame, signature, reused)``."""
    from analysis.predict import predict_images, resolve_imgsz

    images, scales = split_images(root, manifest, split)
    imgsz = imgsz or resolve_imgsz(weights[0])
    signature = {
        "weights": weights_signature(weights),
        "imgsz": int(imgsz),
        "tta": bool(tta),
        "conf": PREDICT_CONF,
        "split": split,
        "n_images": len(images),
        "images_sha1": hashlib.sha1("\n".join(p.stem for p in images).encode()).hexdigest(),
        **(signature or {}),
    }
    csv_path = out_dir / predictions_name(split)
    if csv_path.is_file() and previous_kaggle(out_dir).get("prediction_signature") == signature:
        frame = pd.read_csv(csv_path, dtype={"patientId": str})
        return frame[PRED_COLUMNS], signature, True
    frame = predict_images(
        list(weights), images, imgsz=imgsz, conf=PREDICT_CONF, batch=batch, tta=tta, device=device,
        scales=scales, progress=progress,
    )  # fmt: skip
    write_csv_atomic(frame[PRED_COLUMNS], csv_path)
    return frame[PRED_COLUMNS], signature, False


def previous_kaggle(folder: Path) -> dict:
    """The ``kaggle.json`` that rescoring is about to replace, for what it can reuse; empty when absent or
    unreadable (:func:`core.runs.read_kaggle`'s error: nothing of it is reused, and it is rewritten)."""
    try:
        return read_kaggle(folder) or {}
    except UserError:
        return {}


def ultralytics_map(
    weights: Path, data_yaml: Path, split: str, *, imgsz: int, batch: int, device=None
) -> dict:
    """mAP50 and mAP50-95 of Ultralytics' own validator on the split (its files go to a temporary folder)."""
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory() as tmp:
        metrics = YOLO(str(weights)).val(
            data=str(data_yaml), split=split, imgsz=imgsz, batch=batch, device=device, plots=False,
            project=tmp, name="val", workers=0, verbose=False,
        )  # fmt: skip
    return {"map50": float(metrics.box.map50), "map50_95": float(metrics.box.map)}


def default_out_dir(run_dir: Path, n_weights: int, tta: bool) -> Path:
    """The run folder itself for one model without TTA, else a subfolder (``kaggle_ensemble3_tta`` ...) so
    that the run's own ``kaggle.json`` keeps describing the run's own weights."""
    parts = ([f"ensemble{n_weights}"] if n_weights > 1 else []) + (["tta"] if tta else [])
    return run_dir / f"kaggle_{'_'.join(parts)}" if parts else run_dir


def rescore(
    weights_or_run: str | Path | Sequence[str | Path],
    data_yaml: str | Path,
    *,
    split: str = "val",
    conf: float = PREDICT_CONF,
    imgsz: int | None = None,
    batch: int = 16,
    device=None,
    tta: bool = False,
    out_dir: str | Path | None = None,
    confs: Sequence[float] = SWEEP_CONFS,
    scales: Sequence[float] = SWEEP_SCALES,
    ultralytics_val: bool = True,
    known_maps: dict[str, float] | None = None,
    progress: bool = True,
) -> dict:
    """Predict ``split`` once with the run's weights (several: WBF ensemble), sweep threshold x scale with the
    Kaggle metric, and write ``kaggle.json``, ``predictions_<split>.csv`` and ``kaggle_threshold.png`` into
    the run folder (``out_dir`` if given; with several weights or TTA, a subfolder of the first run folder,
    see :func:`default_out_dir`). Returns the ``kaggle.json`` dict (docs/ARCHITECTURE.md) plus ``run_dir``.

    ``conf`` is the prediction threshold (only thresholds ``>= conf`` are swept); mAP50 / mAP50-95 come from
    Ultralytics' validator for a single model without TTA (None otherwise, or with ``ultralytics_val=False``);
    when the cached predictions are reused and the previous ``kaggle.json`` has them, they are reused too,
    so rescoring again runs no inference. ``known_maps`` (``{"map50", "map50_95"}``) are values Ultralytics
    already measured for these weights on this split, e.g. the trainer's final validation of ``best.pt``:
    they are used as they are instead of validating a second time.
    """
    items = [weights_or_run] if isinstance(weights_or_run, (str, Path)) else list(weights_or_run)
    if not items:
        raise UserError("no weights given")
    resolved = [resolve_weights(w) for w in items]
    weights = [w for w, _ in resolved]
    run_dir = Path(out_dir) if out_dir else default_out_dir(resolved[0][1], len(weights), tta)
    run_dir.mkdir(parents=True, exist_ok=True)
    data_yaml = Path(data_yaml)
    root, manifest = dataset_split(data_yaml, split)
    gt = dataset_truth(root, manifest, split)

    from analysis.predict import resolve_imgsz

    imgsz = imgsz or resolve_imgsz(weights[0])
    frame, signature, reused = predict_split(
        weights, root, manifest, split, run_dir, imgsz=imgsz, batch=batch, device=device, tta=tta,
        progress=progress,
    )  # fmt: skip
    frame = frame[frame["conf"] >= conf]
    table = sweep_scores(gt.truth, frame, [c for c in confs if c >= conf], scales)
    best = best_row(table)
    preds_best = frame_to_preds(frame[frame["conf"] >= best["conf"]])
    scores = per_image_scores(gt.truth, preds_best, scale=best["scale"])
    n_boxes = {k: len(v[1]) for k, v in preds_best.items()}
    maps = {"map50": None, "map50_95": None}
    if ultralytics_val and len(weights) == 1 and not tta:
        previous = previous_kaggle(run_dir) if reused else {}
        if known_maps is not None:
            maps = {"map50": float(known_maps["map50"]), "map50_95": float(known_maps["map50_95"])}
        elif previous.get("map50") is not None and previous.get("map50_95") is not None:
            # same weights content, size and split as the cached predictions: no inference at all
            maps = {"map50": previous["map50"], "map50_95": previous["map50_95"]}
        else:
            maps = ultralytics_map(weights[0], data_yaml, split, imgsz=imgsz, batch=batch, device=device)
    result = {
        "split": split,
        "weights": str(weights[0]) if len(weights) == 1 else [str(w) for w in weights],
        "data": str(data_yaml.resolve()),
        "n_images": len(gt.truth),
        "score": best["score"],
        "conf": best["conf"],
        "scale": best["scale"],
        **maps,
        "sweep": table.to_dict(orient="records"),
        "breakdown": breakdown(scores, gt.truth, gt.classes, n_boxes),
        "predictions": predictions_name(split),
        "imgsz": int(imgsz),
        "tta": bool(tta),
        "n_predictions": len(frame),
        "predictions_reused": reused,
        "prediction_signature": signature,
    }
    write_kaggle(run_dir, result)
    name = weights[0].name if len(weights) == 1 else f"{len(weights)}-model WBF"
    title = f"{name} on {split}{' + flip TTA' if tta else ''}: best {best['score']:.4f}"
    plot_sweep(table, run_dir / "kaggle_threshold.png", title=title)
    result["run_dir"] = str(run_dir)
    return result
