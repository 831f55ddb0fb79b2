"""Image-level classifiers on the three RSNA classes: P(Lung Opacity) per image, and their evaluation.

A classifier here is an Ultralytics classification model trained on a classification view of a converted
dataset (``python -m convert classify``): its class names are the view's folders, ``lung_opacity``,
``not_normal``, ``normal`` (or ``opacity`` / ``no_opacity`` for the binary view). What the rest of the
project needs from it is one number per image, ``p_opacity`` = P(Lung Opacity): gating the detector's
boxes (``analysis rescore --classifier``, ``analysis submit --classifier``) drops the boxes of an image
whose ``p_opacity`` is below a tuned gate, because any box on a Target-0 image costs it its whole score.

- :func:`opacity_index` checks a model's class names and finds the Lung Opacity one;
- :func:`predict_probs` -> one row per image, ``p_opacity`` and each class's probability (several weights
  are averaged, ``tta`` adds the horizontal flip);
- :func:`evaluate` -> the ``classify.json`` of a classifier run: accuracy, per-class precision / recall,
  ROC AUC of ``p_opacity`` against the other two classes, confusion matrix (and its figure).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.record.defaults import DEFAULTS
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_figure_atomic
from rsna_yolo.core.layout import BINARY_DIRS, CLASS_DIRS, OPACITY_DIRS
from rsna_yolo.core.runs import CLASSIFY_JSON, classifier_predictions_name

THREE = sorted(CLASS_DIRS.values())
BINARY = sorted(set(BINARY_DIRS.values()))


def opacity_index(names: dict[int, str], source: str | Path) -> int:
    """The index of the Lung Opacity class among a classifier's ``names``; :class:`UserError` when the names
    are not the three RSNA class folders (or the binary ones).

    >>> opacity_index({0: "lung_opacity", 1: "normal", 2: "not_normal"}, "m.pt")
    0
    """
    found = sorted(str(n) for n in names.values())
    if found not in (THREE, BINARY):
        raise UserError(
            f"classifier {source}: class names {found} are not the RSNA classes {THREE} (or {BINARY}); "
            "train it on a view made by `python -m convert classify`"
        )
    return next(i for i, n in names.items() if n in OPACITY_DIRS)


def _gray_to_bgr(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[:, :, None], 3, axis=2)


def predict_probs(
    weights: Sequence[str | Path] | str | Path,
    images: Sequence[str | Path],
    *,
    imgsz: int | None = None,
    batch: int = DEFAULTS.batch,
    tta: bool = False,
    device=None,
    workers: int | None = None,
    backend: str = "torch",
    progress: bool = True,
) -> pd.DataFrame:
    """Class probabilities of every image (PNG or DICOM; patientId = file stem).

    Returns one row per readable image: ``patientId``, ``p_opacity`` and ``p_<class>`` for each class of
    the first model; several ``weights`` (an ensemble) must share their class names and are averaged, as
    is the flipped copy with ``tta``. Unreadable images are listed in ``frame.attrs["failed"]``.
    ``backend``: ``torch`` or an export of each model (as :func:`analysis.inference.predict.predict_images`).
    """
    from tqdm import tqdm

    from analysis.inference.predict import iter_loaded, load_model, resolve_imgsz
    from rsna_yolo.core.films import load_image

    weights = [weights] if isinstance(weights, (str, Path)) else list(weights)
    if not weights:
        raise UserError("no classifier weights given")
    if backend == "torch":
        models = [load_model(w) for w in weights]
        imgsz = int(imgsz or resolve_imgsz(weights[0], default=224))
    else:
        from analysis.inference.export import exported_model

        found = [exported_model(w, backend, imgsz) for w in weights]
        models = [load_model(path, backend) for path, _ in found]
        imgsz = int(imgsz or found[0][1])
    names = models[0].names
    for w, m in zip(weights, models, strict=True):
        if m.task != "classify":
            raise UserError(f"classifier {w}: a {m.task} model, not a classifier (task=classify)")
        if dict(m.names) != dict(names):
            raise UserError(f"classifier {w}: class names {dict(m.names)} differ from {weights[0]}'s")
    opacity = opacity_index(names, weights[0])
    rows, failed = [], {}
    images = [Path(p) for p in images]
    bar = tqdm(total=len(images), desc="classify", unit="img", disable=not progress)

    def load(path: Path) -> np.ndarray:
        return _gray_to_bgr(load_image(path, imgsz)[0])

    for chunk, ok, bad in iter_loaded(images, batch, load, workers=workers):
        failed.update(bad)
        if ok:
            arrays = [a for _, a in ok]
            variants = [arrays] + ([[np.ascontiguousarray(a[:, ::-1]) for a in arrays]] if tta else [])
            total = np.zeros((len(arrays), len(names)))
            for model in models:
                for batch_arrays in variants:
                    results = model.predict(batch_arrays, imgsz=imgsz, device=device, verbose=False)
                    total += np.stack([r.probs.data.cpu().numpy().astype(np.float64) for r in results])
            probs = total / (len(models) * len(variants))
            rows += [(path.stem, *p) for (path, _), p in zip(ok, probs, strict=True)]
        bar.update(len(chunk))
    bar.close()
    columns = ["patientId", *(f"p_{names[i]}" for i in range(len(names)))]
    frame = pd.DataFrame(rows, columns=columns)
    frame.insert(1, "p_opacity", frame[f"p_{names[opacity]}"] if len(frame) else pd.Series(dtype=float))
    frame.attrs["failed"] = failed
    return frame


def view_labels(run_dir: str | Path, split: str) -> dict[str, str] | None:
    """patientId -> class folder of the images of ``split`` in the view a classifier run trained on (the
    ``data`` of its ``args.yaml``); None when that view is not on this machine."""
    from rsna_yolo.core.runs import read_args

    view = Path(str((read_args(run_dir) or {}).get("data", ""))) / split
    return {p.stem: p.parent.name for p in view.glob("*/*.png")} if view.is_dir() else None


def view_images(view_split: str | Path) -> pd.DataFrame:
    """``patientId, path, label`` of a classification view's split folder (``D/classify/val``)."""
    folder = Path(view_split)
    rows = [(p.stem, p, p.parent.name) for p in sorted(folder.glob("*/*.png"))]
    if not rows:
        raise UserError(f"{folder}: no <class>/*.png images (make the view: `python -m convert classify`)")
    return pd.DataFrame(rows, columns=["patientId", "path", "label"])


def opacity_auc(labels: Sequence[str], p_opacity: Sequence[float]) -> float | None:
    """ROC AUC of P(Lung Opacity) against the two other classes: ``labels`` are class folder names (either
    view); None when the labels hold one side only.

    >>> opacity_auc(["lung_opacity", "normal", "not_normal", "lung_opacity"], [0.9, 0.2, 0.6, 0.5])
    0.75
    """
    from sklearn.metrics import roc_auc_score

    positive = np.isin(np.asarray(labels, dtype=object), OPACITY_DIRS)
    if not 0 < positive.sum() < len(positive):
        return None
    return float(roc_auc_score(positive, np.asarray(p_opacity, dtype=np.float64)))


def classification_metrics(labels: Sequence[str], probs: pd.DataFrame, classes: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall, ROC AUC of ``p_opacity`` (Lung Opacity against the rest) and
    the confusion matrix (rows: truth, columns: prediction, in ``classes`` order) of ``probs`` rows
    (columns ``p_<class>``, ``p_opacity``) against ``labels`` (class folder names)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.asarray(labels, dtype=object)
    scores = probs[[f"p_{c}" for c in classes]].to_numpy()
    predicted = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
    precision, recall, _, support = precision_recall_fscore_support(
        labels, predicted, labels=list(classes), zero_division=0
    )
    auc = opacity_auc(labels, probs["p_opacity"])
    return {
        "n_images": len(labels),
        "accuracy": float((predicted == labels).mean()) if len(labels) else None,
        "auc_opacity": auc,
        "classes": {
            c: {"precision": float(p), "recall": float(r), "n_images": int(n)}
            for c, p, r, n in zip(classes, precision, recall, support, strict=True)
        },
        "confusion": {
            "labels": list(classes),
            "matrix": confusion_matrix(labels, predicted, labels=list(classes)).tolist(),
        },
    }


def plot_confusion(metrics: dict, path: str | Path, title: str = "") -> Path:
    """The confusion matrix of :func:`classification_metrics` as a figure (counts and row shares)."""
    from matplotlib.figure import Figure

    labels = metrics["confusion"]["labels"]
    m = np.asarray(metrics["confusion"]["matrix"], dtype=float)
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1.6 + 1.3 * len(labels), 1.2 + 1.2 * len(labels)), layout="constrained")
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            colour = "white" if share[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(m[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", color=colour)
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    auc = metrics.get("auc_opacity")
    auc_text = f", AUC {auc:.3f}" if auc is not None else ""
    ax.set_title(title or f"accuracy {metrics['accuracy']:.3f}{auc_text}")
    return write_figure_atomic(fig, path, dpi=110)


def evaluate(
    weights: str | Path,
    view: str | Path,
    *,
    split: str = "val",
    out_dir: str | Path | None = None,
    imgsz: int | None = None,
    batch: int = DEFAULTS.batch,
    device=None,
    progress: bool = True,
) -> dict:
    """Evaluate a classifier on ``view/split`` and write ``classify.json``, ``classify_confusion.png`` and
    ``classifier_<split>.csv`` (``patientId,p_opacity``) into ``out_dir`` (default: the run folder of the
    weights). Returns the ``classify.json`` content."""
    from rsna_yolo.core.io import write_csv_atomic, write_json_atomic
    from rsna_yolo.core.runs import resolve_weights

    weights, run_dir = resolve_weights(weights)
    out = Path(out_dir) if out_dir else run_dir
    out.mkdir(parents=True, exist_ok=True)
    images = view_images(Path(view) / split)
    probs = predict_probs(weights, images["path"].tolist(), imgsz=imgsz, batch=batch, device=device,
                          progress=progress)  # fmt: skip
    failed = probs.attrs.get("failed", {})
    merged = images.merge(probs, on="patientId", how="inner")
    classes = [c.removeprefix("p_") for c in probs.columns if c.startswith("p_") and c != "p_opacity"]
    metrics = classification_metrics(merged["label"], merged, classes)
    result = {"split": split, "weights": str(weights), "view": str(Path(view).resolve()), **metrics,
              "unreadable": failed, "predictions": classifier_predictions_name(split)}  # fmt: skip
    write_csv_atomic(merged[["patientId", "p_opacity"]], out / classifier_predictions_name(split))
    write_json_atomic(result, out / CLASSIFY_JSON)
    plot_confusion(metrics, out / "classify_confusion.png")
    return result
