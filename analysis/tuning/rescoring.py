"""Rescoring a trained run with the Kaggle metric: the prediction cache and the whole ``analysis rescore``.

- :func:`load_split` -> a split's truth, images and PNG scales, read once;
- :func:`predict_split` -> the raw predictions of a split (at the prediction floor of
  :data:`analysis.record.defaults.DEFAULTS`, source pixels), cached in ``predictions_<split>.csv`` and
  reused when the weights (content), image size, TTA and image list are unchanged
  (:func:`weights_signature`, :func:`split_images`);
- :func:`rescore` -> predict (or reuse), tune through the tuning door (:func:`analysis.tuning.tuner.tune`,
  :func:`~analysis.tuning.tuner.tune_gate`; WBF by :func:`analysis.tuning.wbf.tune_wbf`) against the split's
  truth (:mod:`analysis.scoring.truth`), and write ``kaggle.json``, ``predictions_<split>.csv`` and
  ``kaggle_threshold.png`` (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.record.defaults import DEFAULTS
from analysis.scoring.truth import TruthSet, dataset_truth
from analysis.tuning.threshold import plot_sweep
from analysis.tuning.tuner import tune, tune_gate
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_csv_atomic
from rsna_yolo.core.layout import MANIFEST_CSV, PRED_COLUMNS, dataset_split
from rsna_yolo.core.runs import (
    KAGGLE_JSON,
    KAGGLE_THRESHOLD_PNG,
    WEIGHTS_DIR,
    classifier_predictions_name,
    expand_weights,
    parts_name,
    predictions_name,
    read_kaggle,
    rescore_dir,
)


@dataclass(frozen=True)
class SplitData:
    """A split of a converted dataset, read once: its folder, manifest, truth, PNG paths and PNG scales."""

    root: Path
    manifest: pd.DataFrame
    gt: TruthSet
    images: list[Path]
    png_scales: dict[str, float]


def load_split(data_yaml: str | Path, split: str = "val") -> SplitData:
    """The split as the data YAML names it (a fold YAML's own val list, not the manifest's fold 0)."""
    root, manifest = dataset_split(Path(data_yaml), split)
    images, png_scales = split_images(root, manifest, split)
    return SplitData(root, manifest, dataset_truth(root, manifest, split), images, png_scales)


def weights_signature(weights: Sequence[Path]) -> list[dict]:
    """What identifies weights for the prediction cache: path, size and a hash of the file's content."""
    out = []
    for w in weights:
        digest = hashlib.sha1(Path(w).read_bytes()).hexdigest()
        out.append({"path": str(Path(w).resolve()), "size": Path(w).stat().st_size, "sha1": digest})
    return out


def images_sha1(images: Sequence[Path]) -> str:
    """What identifies a scored image list in a cache key: the SHA-1 of its patientIds, in order."""
    return hashlib.sha1("\n".join(Path(p).stem for p in images).encode()).hexdigest()


def split_images(root: Path, manifest: pd.DataFrame, split: str) -> tuple[list[Path], dict[str, float]]:
    """PNG paths of a split and their PNG scales (patientId -> PNG pixels per source pixel, the manifest's
    ``scale`` column: :func:`analysis.inference.predict.manifest_png_scales`)."""
    from analysis.inference.predict import manifest_png_scales

    rows = manifest[manifest["split"] == split]
    if rows.empty:
        raise UserError(f"{root / MANIFEST_CSV}: no images in split {split!r}")
    paths = [root / p for p in rows["png"]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: image listed in the manifest is missing ({len(missing)} missing)")
    return paths, manifest_png_scales(rows)


def predict_split(
    weights: Sequence[Path],
    root: Path,
    manifest: pd.DataFrame,
    split: str,
    out_dir: Path,
    *,
    imgsz: int | Sequence[int] | None = None,
    batch: int = 16,
    device=None,
    tta: bool = False,
    signature: dict | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict, bool]:
    """Predict a split at the prediction floor (source pixels) or reuse ``out_dir/predictions_<split>.csv``
    when the ``signature`` recorded in ``out_dir/kaggle.json`` matches. Returns ``(frame, signature,
    reused)``. ``imgsz``: the size for every model, one per model, else each one's own
    (:func:`analysis.inference.predict.model_sizes`)."""
    from analysis.inference.predict import model_sizes
    from analysis.inference.predictor import Predictor
    from analysis.record.setting import TunedSetting, size_record

    images, png_scales = split_images(root, manifest, split)
    sizes = model_sizes(weights, imgsz)  # no checkpoint is loaded when rescore passes them resolved
    signature = {
        "weights": weights_signature(weights),
        "imgsz": size_record(sizes),
        "tta": bool(tta),
        "conf": DEFAULTS.prediction_floor,
        "split": split,
        "n_images": len(images),
        "images_sha1": images_sha1(images),
        **(signature or {}),
    }
    csv_path = out_dir / predictions_name(split)
    fused = len(weights) > 1 or tta  # each model's own boxes are kept too, to tune the fusion
    parts_path = out_dir / parts_name(split)
    cached = csv_path.is_file() and (parts_path.is_file() or not fused)
    if cached and previous_kaggle(out_dir).get("prediction_signature") == signature:
        frame = read_predictions(csv_path)
        if fused:
            frame.attrs["parts"] = pd.read_csv(parts_path, dtype={"patientId": str})
        return frame, signature, True
    predictor = Predictor(TunedSetting(weights=tuple(weights), sizes=tuple(sizes), tta=tta), batch=batch,
                          device=device)  # fmt: skip
    frame = predictor.raw(images, png_scales=png_scales, floor=DEFAULTS.prediction_floor, keep_parts=fused,
                          progress=progress)  # fmt: skip
    if fused:
        write_csv_atomic(frame.attrs["parts"], parts_path)
    write_csv_atomic(frame[PRED_COLUMNS], csv_path)
    out = frame[PRED_COLUMNS]
    out.attrs = {"parts": frame.attrs["parts"]} if fused else {}
    return out, signature, False


def read_predictions(path: Path) -> pd.DataFrame:
    """A prediction file (``predictions_<split>.csv``) as a frame of
    :data:`rsna_yolo.core.layout.PRED_COLUMNS`;
    :class:`UserError` naming the file when a column is missing."""
    preds = pd.read_csv(path, dtype={"patientId": str})
    missing = set(PRED_COLUMNS) - set(preds.columns)
    if missing:
        raise UserError(f"{path}: missing column(s) {sorted(missing)}")
    return preds[PRED_COLUMNS]


def previous_kaggle(folder: Path) -> dict:
    """The ``kaggle.json`` that rescoring is about to replace, for what it can reuse; empty when absent or
    unreadable (:func:`rsna_yolo.core.runs.read_kaggle`'s error: nothing of it is reused, and it is
    rewritten)."""
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


def default_out_dir(run_dir: Path, n_weights: int, tta: bool, gated: bool = False) -> Path:
    """The run folder itself for one model without TTA or gate, else a subfolder (``kaggle_ensemble3_tta``,
    ``kaggle_gated`` ...) so that the run's own ``kaggle.json`` keeps describing the run's own weights."""
    parts = ([f"ensemble{n_weights}"] if n_weights > 1 else []) + (["tta"] if tta else [])
    parts += ["gated"] if gated else []
    return rescore_dir(run_dir, *parts)


def classifier_split(
    classifiers: Sequence[Path],
    images: Sequence[Path],
    out_dir: Path,
    split: str,
    *,
    tta: bool = False,
    batch: int = DEFAULTS.batch,
    device=None,
    progress: bool = True,
) -> tuple[dict[str, float], dict, bool]:
    """P(Lung Opacity) of each image of a split, or ``out_dir/classifier_<split>.csv`` reused when the
    ``classifier_signature`` of ``out_dir/kaggle.json`` matches (weights content, TTA, image list).
    Returns ``(patientId -> p_opacity, signature, reused)``; an unreadable image is a :class:`UserError`."""
    from analysis.inference.classifier import predict_probs
    from analysis.record.gate import check_coverage, p_opacity_map

    signature = {
        "weights": weights_signature(classifiers),
        "tta": bool(tta),
        "split": split,
        "images_sha1": images_sha1(images),
    }
    csv_path = out_dir / classifier_predictions_name(split)
    if csv_path.is_file() and previous_kaggle(out_dir).get("classifier_signature") == signature:
        return p_opacity_map(pd.read_csv(csv_path, dtype={"patientId": str})), signature, True
    probs = predict_probs(classifiers, images, tta=tta, batch=batch, device=device, progress=progress)
    p = p_opacity_map(probs)
    check_coverage([Path(i).stem for i in images], p, f"classifier {classifiers[0]}")
    write_csv_atomic(probs[["patientId", "p_opacity"]], csv_path)
    return p, signature, False


def check_not_trained_on(weights: Sequence[Path], split: str, ids: Sequence[str]) -> None:
    """Weights that trained on some of the images being scored make a score that is not a validation
    score (e.g. a fold set fused on one fold's val images: the other folds trained on them); one clear
    error. Each weights' run is read from its ``args.yaml`` (``run/weights/*.pt``); weights without one
    are not checked. Scoring the ``train`` split is asked for on purpose and not checked."""
    from rsna_yolo.core.layout import read_dataset, yaml_split_ids
    from rsna_yolo.core.runs import read_args

    if split == "train":
        return
    wanted = set(ids)
    trained: dict[Path, set[str]] = {}  # data YAML -> its train patientIds (a fold set shares one dataset)
    for w in weights:
        args = read_args(Path(w).parent.parent) if Path(w).parent.name == WEIGHTS_DIR else None
        data = Path(str((args or {}).get("data") or ""))
        if not data.is_file():
            continue
        if data not in trained:
            _, manifest = read_dataset(data)
            trained[data] = set(yaml_split_ids(data, "train", manifest) or [])
        seen = wanted & trained[data]
        if seen:
            raise UserError(
                f"{w} trained on {len(seen)} of the {len(wanted)} {split} images scored here "
                f"(its data={data}): that would not be a validation score. Score a fold set out of fold "
                "(python -m train folds), or fuse models that trained on the same train split (sizes, seeds)"
            )


def check_same_images(classifier_runs: Sequence[Path], split: str, ids: Sequence[str]) -> None:
    """A classifier trained on a view of another dataset (its ``<view>/<split>`` images are not the
    detector's) is one clear error: its probabilities would not describe these images."""
    from analysis.inference.classifier import view_labels
    from rsna_yolo.core.runs import read_args

    for run in classifier_runs:
        labels = view_labels(run, split)
        if labels is None:
            continue  # weights without their view here: coverage is still checked image by image
        theirs = set(labels)
        if theirs != set(ids):
            view = Path(str((read_args(run) or {}).get("data", "")))
            raise UserError(
                f"classifier {run} was trained on {view}, whose {split} images differ from the detector's "
                f"({len(theirs ^ set(ids))} of {len(theirs | set(ids))} differ): a classifier of another "
                "dataset; train one on this dataset's view (`python -m convert classify`)"
            )


def rescore(
    weights_or_run: str | Path | Sequence[str | Path],
    data_yaml: str | Path,
    *,
    split: str = "val",
    floor: float = DEFAULTS.prediction_floor,
    imgsz: int | None = None,
    batch: int = 16,
    device=None,
    tta: bool = False,
    out_dir: str | Path | None = None,
    thresholds: Sequence[float] = DEFAULTS.thresholds,
    box_scales: Sequence[float] = DEFAULTS.box_scales,
    ultralytics_val: bool = True,
    known_maps: dict[str, float] | None = None,
    classifier: str | Path | Sequence[str | Path] | None = None,
    classifier_tta: bool = False,
    progress: bool = True,
) -> dict:
    """Predict ``split`` once with the run's weights (several: WBF ensemble), tune threshold x box scale
    (``thresholds`` x ``box_scales``, default :data:`~analysis.record.defaults.DEFAULTS`) with the Kaggle
    metric, and write ``kaggle.json``, ``predictions_<split>.csv`` and ``kaggle_threshold.png`` into the
    run folder (``out_dir`` if given; with several weights or TTA, a subfolder of the first run folder, see
    :func:`default_out_dir`). Returns the ``kaggle.json`` dict (docs/ARCHITECTURE.md) plus ``out_dir``, the
    folder it was written to.

    ``floor``: the lowest confidence kept (default: the prediction floor; only thresholds ``>= floor`` are
    tried). mAP50 / mAP50-95 come from Ultralytics' validator for a single model without TTA (None
    otherwise, or with ``ultralytics_val=False``); when the cached predictions are reused and the previous
    ``kaggle.json`` has them, they are reused too, so rescoring again runs no inference. ``known_maps``
    (``{"map50", "map50_95"}``) are values Ultralytics already measured for these weights on this split,
    e.g. the trainer's final validation of ``best.pt``: they are used as they are instead of validating a
    second time.

    ``classifier`` (a classifier run folder or weights; several are averaged, ``classifier_tta`` adds
    flips) gates the boxes (:mod:`analysis.tuning.gating`): P(Lung Opacity) of each image is predicted
    once (kept in ``classifier_<split>.csv``) and the gate (hard or soft, "no gate" included) is tuned
    jointly with the threshold and box scale. Outputs go to ``kaggle_gated/``; ``kaggle.json`` then holds
    the gated best, the ungated best (``ungated``), the gate (``gate``) and what the gate changed in the
    breakdown.
    """
    items = [weights_or_run] if isinstance(weights_or_run, (str, Path)) else list(weights_or_run)
    if not items:
        raise UserError("no weights given")
    resolved = expand_weights(items)  # a fold set stands for its folds' weights
    weights = [w for w, _ in resolved]
    classifiers = _as_list(classifier)
    gated = bool(classifiers)
    out = Path(out_dir) if out_dir else default_out_dir(resolved[0][1], len(weights), tta, gated)
    out.mkdir(parents=True, exist_ok=True)
    data_yaml = Path(data_yaml)
    data = load_split(data_yaml, split)
    gt = data.gt
    check_not_trained_on(weights, split, list(gt.truth))
    thresholds, box_scales = list(thresholds), list(box_scales)

    from analysis.inference.predict import model_sizes

    sizes = model_sizes(weights, imgsz)
    frame, signature, reused = predict_split(
        weights, data.root, data.manifest, split, out, imgsz=sizes, batch=batch, device=device, tta=tta,
        progress=progress,
    )  # fmt: skip
    wbf = None
    if "parts" in frame.attrs:  # an ensemble or TTA: tune the fusion itself by the metric
        from analysis.tuning.wbf import tune_wbf

        wbf, wbf_table, frame = tune_wbf(
            gt.truth, frame.attrs["parts"], confs=thresholds, box_scales=box_scales
        )
        write_csv_atomic(frame, out / predictions_name(split))  # the tuned fusion's boxes
    tuned = tune(gt, frame, floor=floor, thresholds=thresholds, box_scales=box_scales)
    chosen, ungated, gating = tuned, None, None
    if gated:
        gating = _classifier_probs(classifiers, classifier_tta, data, split, out, batch=batch, device=device,
                                   progress=progress)  # fmt: skip
        chosen = tune_gate(gt, frame, gating["p_opacity"], floor=floor, thresholds=thresholds,
                           box_scales=box_scales)  # fmt: skip
        ungated = {"score": tuned.score, "conf": tuned.best["conf"], "scale": tuned.best["scale"],
                   "score_heldout": tuned.score_heldout, "breakdown": tuned.breakdown}  # fmt: skip
    best = chosen.best
    maps = {"map50": None, "map50_95": None}
    if ultralytics_val and len(weights) == 1 and not tta:
        previous = previous_kaggle(out) if reused else {}
        if known_maps is not None:
            maps = {"map50": float(known_maps["map50"]), "map50_95": float(known_maps["map50_95"])}
        elif previous.get("map50") is not None and previous.get("map50_95") is not None:
            # same weights content, size and split as the cached predictions: no inference at all
            maps = {"map50": previous["map50"], "map50_95": previous["map50_95"]}
        else:
            maps = ultralytics_map(weights[0], data_yaml, split, imgsz=sizes[0], batch=batch, device=device)
    from analysis.record.setting import TunedSetting

    setting = TunedSetting(
        weights=tuple(weights), conf=best["conf"], box_scale=best["scale"], sizes=tuple(sizes), tta=bool(tta),
        wbf=wbf, gate={"mode": best["mode"], "gate": best["gate"]} if gating is not None else None,
        classifiers=tuple(gating["classifiers"]) if gating is not None else (),
        classifier_tta=bool(classifier_tta),
    )  # fmt: skip
    evidence = {
        "split": split,
        "data": str(data_yaml.resolve()),
        "n_images": len(gt.truth),
        "score": best["score"],
        "score_heldout": chosen.score_heldout,
        **maps,
        "sweep": chosen.table.to_dict(orient="records"),
        "breakdown": chosen.breakdown,
        "predictions": predictions_name(split),
        "n_predictions": len(tuned.frame),
        "predictions_reused": reused,
        "prediction_signature": signature,
    }
    if wbf is not None:
        evidence["wbf_sweep"] = wbf_table.to_dict(orient="records")
    if gating is not None:
        evidence.update(
            ungated=ungated,
            gate_effect=gate_effect(ungated["breakdown"], chosen.breakdown),
            gates=chosen.gates,
            classifier_predictions=classifier_predictions_name(split),
            classifier_reused=gating["reused"],
            classifier_signature=gating["signature"],
        )
    result = setting.to_json(out / KAGGLE_JSON, **evidence)
    name = weights[0].name if len(weights) == 1 else f"{len(weights)}-model WBF"
    gate_text = f" + {best['mode']} gate {best['gate']}" if gating is not None else ""
    title = f"{name} on {split}{' + flip TTA' if tta else ''}{gate_text}: best {best['score']:.4f}"
    plot_sweep(chosen.table, out / KAGGLE_THRESHOLD_PNG, title=title)
    result["out_dir"] = str(out)
    return result


def _as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, (str, Path)) else list(value)


def _classifier_probs(classifiers, classifier_tta, data: SplitData, split, out, *, batch, device,
                      progress) -> dict:  # fmt: skip
    """P(opacity) of the split's images from the classifiers (or reused), checked to describe them."""
    resolved = expand_weights(classifiers)
    check_same_images([r for _, r in resolved], split, [p.stem for p in data.images])
    p, signature, reused = classifier_split(
        [w for w, _ in resolved], data.images, out, split, tta=classifier_tta, batch=batch, device=device,
        progress=progress,
    )  # fmt: skip
    return {"p_opacity": p, "classifiers": [w for w, _ in resolved], "signature": signature,
            "reused": reused}  # fmt: skip


def gate_effect(ungated: dict, gated: dict) -> dict:
    """What the gate changed in the loss breakdown: false-box loss (Normal + Not Normal) removed, Lung
    Opacity loss added (true boxes dropped), and the net change of the loss (negative = better)."""
    removed = ungated["false_box_loss"] - gated["false_box_loss"]
    added = gated["lung_opacity_loss"] - ungated["lung_opacity_loss"]
    return {
        "false_box_loss_removed": removed,
        "lung_opacity_loss_added": added,
        "loss_change": added - removed,
    }
