"""A training run folder: where its weights, data YAML, ``kaggle.json`` and prediction files are.

An Ultralytics run folder holds ``args.yaml`` (every argument), ``results.csv`` (one row per epoch) and
``weights/{best,last}.pt``; ``python -m train`` and ``analysis rescore`` add ``kaggle.json`` (the tuned
Kaggle score, docs/ARCHITECTURE.md) and ``predictions_<split>.csv``. Every reader of those goes through
here, with one policy for ``kaggle.json``: absent -> ``None``; present but unreadable -> :class:`UserError`
naming the file and the fix (delete it and rescore). A caller that can go on without it (``compare`` lists
the run with a note; ``rescore`` rewrites it) catches that error and says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from rsna_yolo.core.cli import UserError

# The files and folders of a run: the only place their names are spelled.
WEIGHTS_DIR = "weights"
BEST_PT = "best.pt"
LAST_PT = "last.pt"
WEIGHTS = (BEST_PT, LAST_PT)
"""A run's weights in order of preference (``best.pt`` is the best epoch by Ultralytics' fitness)."""
ARGS_YAML = "args.yaml"
RESULTS_CSV = "results.csv"
KAGGLE_JSON = "kaggle.json"
KAGGLE_THRESHOLD_PNG = "kaggle_threshold.png"
"""The threshold x box-scale sweep of a rescoring, as a figure (beside its ``kaggle.json``)."""
ANNOTATED_DIR = "images"
"""Where ``analysis predict`` and ``analysis show SUBMISSION`` put the films with their boxes drawn."""
"""A detector's tuned Kaggle score (docs/ARCHITECTURE.md); a fold set's are ``kaggle_oof*.json``."""
CLASSIFY_JSON = "classify.json"
"""A classifier run's evaluation (accuracy, ROC AUC of P(opacity), confusion)."""
KAGGLE_OOF_JSON = "kaggle_oof.json"
KAGGLE_OOF_GATED_JSON = "kaggle_oof_gated.json"
KAGGLE_OOF_TTA_JSON = "kaggle_oof_tta.json"
"""A fold set with flip TTA, its fusion and threshold tuned out of fold (``train folds --tta``)."""
KAGGLE_OOF_TTA_GATED_JSON = "kaggle_oof_tta_gated.json"
CLASSIFY_OOF_JSON = "classify_oof.json"
BEST_KAGGLE_PT = "best_kaggle.pt"
"""``weights/``: the scored epoch with the best tuned Kaggle mAP (``kaggle_every=N``)."""
BEST_FITNESS_PT = "best_fitness.pt"
"""``weights/``: Ultralytics' own ``best.pt``, renamed when the final rescoring keeps ``best_kaggle.pt``."""
KAGGLE_EPOCHS_JSON = "kaggle_epochs.json"
"""Each scored epoch's Kaggle mAP and the best epochs so far (read back on resume and by the final choice)."""
TRANSFER_JSON = "transfer.json"
"""Where a run's initial weights came from and how many tensors of how many were transferred."""
OPTIONS_JSON = "train_options.json"
"""``python -m train``'s own keys, saved beside ``args.yaml`` so ``resume`` restores them."""
EXPORTS_JSON = "exports.json"
"""``weights/``: what ``rsna-yolo export`` made of the weights beside it: each exported model's format, image
size, SHA-1 and its source weights' SHA-1 (``analysis.inference.export``)."""
OOF = "oof"
"""The "split" of a fold set's out-of-fold files (``predictions_oof.csv``, ``classifier_oof.csv``)."""


def weights_file(run_dir: str | Path, name: str = BEST_PT) -> Path:
    """``run_dir/weights/<name>`` (whether or not it exists)."""
    return Path(run_dir) / WEIGHTS_DIR / name


def export_name(weights: str | Path, fmt: str, imgsz: int, *, int8: bool = False) -> str:
    """The exported copy of ``weights`` (``<stem>.pt``) beside it: ``<stem>_<imgsz>.onnx`` (ONNX), or the
    folder ``<stem>_<imgsz>[_int8]_openvino_model`` (OpenVINO: ``.xml``, ``.bin`` and ``metadata.yaml``).

    >>> export_name("runs/a/weights/best.pt", "openvino", 256, int8=True)
    'best_256_int8_openvino_model'
    """
    stem = f"{Path(weights).stem}_{int(imgsz)}"
    if fmt == "onnx":
        return f"{stem}{'_int8' if int8 else ''}.onnx"
    return f"{stem}{'_int8' if int8 else ''}_{fmt}_model"


def predictions_name(split: str) -> str:
    """``predictions_<split>.csv``: a run's box predictions on a split
    (``rsna_yolo.core.layout.PRED_COLUMNS``)."""
    return f"predictions_{split}.csv"


def parts_name(split: str) -> str:
    """``predictions_<split>_parts.csv``: each model's (and flip's) own boxes before fusion."""
    return f"predictions_{split}_parts.csv"


def classifier_predictions_name(split: str) -> str:
    """``classifier_<split>.csv``: a classifier's ``patientId,p_opacity`` on a split."""
    return f"classifier_{split}.csv"


def run_weights(run_dir: str | Path) -> Path | None:
    """``run_dir/weights/best.pt``, else ``last.pt``, else None."""
    for name in WEIGHTS:
        if weights_file(run_dir, name).is_file():
            return weights_file(run_dir, name)
    return None


def resolve_weights(weights_or_run: str | Path) -> tuple[Path, Path]:
    """``(weights, run_dir)``: a run folder -> its :func:`run_weights`; ``.../weights/x.pt`` -> the run folder
    is the grandparent; any other ``.pt`` -> its folder."""
    p = Path(weights_or_run)
    if p.is_dir():
        weights = run_weights(p)
        if weights is None:
            raise UserError(f"{p}: no weights/best.pt or weights/last.pt in this run folder")
        return weights, p
    if not p.is_file():
        raise UserError(f"{p}: no such weights file or run folder")
    return p, (p.parent.parent if p.parent.name == WEIGHTS_DIR else p.parent)


def fold_runs(folder: str | Path) -> list[Path]:
    """The fold runs of a fold set (``python -m train folds``: ``<set>/fold<k>/weights/``), in fold order;
    empty when ``folder`` is not a fold set."""
    folder = Path(folder)
    if not folder.is_dir() or (folder / WEIGHTS_DIR).is_dir():
        return []
    runs = [d for d in folder.glob("fold*") if d.is_dir() and d.name[4:].isdigit() and run_weights(d)]
    return sorted(runs, key=lambda d: int(d.name[4:]))


def check_fold_sizes(fold_set: str | Path, folds: list[Path]) -> None:
    """The folds of one set were trained at one image size (``args.yaml`` ``imgsz``); a fold retrained at
    another is one :class:`UserError` naming it (the set would fuse models that did not learn the same
    thing at the same scale). Folds without ``args.yaml`` are not checked."""
    known = {d: str(s) for d in folds if (s := (read_args(d) or {}).get("imgsz")) is not None}
    values = list(known.values())
    if len(set(values)) > 1:
        common = max(set(values), key=values.count)
        odd = [f"{d.name} at imgsz {s}" for d, s in known.items() if s != common]
        raise UserError(
            f"{fold_set}: {', '.join(odd)}, the other folds at imgsz {common}: not one fold set "
            "(retrain the odd fold with the set's arguments)"
        )


def expand_weights(items) -> list[tuple[Path, Path]]:
    """:func:`resolve_weights` of each item, a fold set standing for every fold's weights (an ensemble);
    the run folder of a fold set's weights is the set's folder, where ensemble results go."""
    out: list[tuple[Path, Path]] = []
    for item in items:
        folds = fold_runs(item)
        if folds:
            check_fold_sizes(item, folds)
            out += [(run_weights(d), Path(item)) for d in folds]
        else:
            out.append(resolve_weights(item))
    return out


def read_args(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``args.yaml`` as a dict; None when absent; :class:`UserError` when not a YAML mapping."""
    path = Path(run_dir) / ARGS_YAML
    if not path.is_file():
        return None
    try:
        args = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({type(exc).__name__})") from exc
    if not isinstance(args, dict):
        raise UserError(f"{path}: not a mapping of arguments")
    return args


def kaggle_path(folder_or_file: str | Path) -> Path:
    """The tuning file a run folder or a path stands for: ``folder/kaggle.json``, or the ``.json`` file given
    itself (``--from-run`` takes both, e.g. a fold set's ``kaggle_oof.json`` / ``kaggle_oof_gated.json``).

    >>> kaggle_path("runs/x/kaggle_oof.json").as_posix(), kaggle_path("runs/x").as_posix()
    ('runs/x/kaggle_oof.json', 'runs/x/kaggle.json')
    """
    path = Path(folder_or_file)
    return path if path.suffix == ".json" else path / KAGGLE_JSON


def read_kaggle(folder_or_file: str | Path) -> dict[str, Any] | None:
    """:func:`kaggle_path`'s file (``folder/kaggle.json`` or the JSON file given) as a dict; None when
    absent; :class:`UserError` when unreadable."""
    path = kaggle_path(folder_or_file)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); delete it to rescore") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a JSON object; delete it to rescore")
    return data


def run_data_yaml(run_dir: str | Path, kaggle: dict[str, Any] | None = None) -> Path | None:
    """The data YAML a run was scored or trained on: ``kaggle["data"]``, else ``args.yaml``'s ``data``, the
    first that exists on this machine; None when neither does."""
    candidates = [kaggle.get("data")] if kaggle else []
    args = read_args(run_dir)
    if args:
        candidates.append(args.get("data"))
    for c in candidates:
        if c and Path(str(c)).is_file():
            return Path(str(c))
    return None


def rescore_dir(run_dir: str | Path, *parts: str) -> Path:
    """Where a rescoring other than the run's own writes: ``RUN/kaggle_<part>_<part>...`` (``kaggle_test``,
    ``kaggle_tta``, ``kaggle_gated``, ``kaggle_best_kaggle``), or the run folder itself without parts.

    >>> rescore_dir("runs/x", "tta", "gated").as_posix(), rescore_dir("runs/x").as_posix()
    ('runs/x/kaggle_tta_gated', 'runs/x')
    """
    return Path(run_dir) / f"kaggle_{'_'.join(parts)}" if parts else Path(run_dir)
