"""Prediction pictures: ground truth beside predictions at the tuned threshold, worst images first.

Inputs are the files a rescored run holds (docs/ARCHITECTURE.md): ``kaggle.json`` (tuned ``conf`` and box
scale ``scale``, the ``data`` YAML) and ``predictions_<split>.csv`` (source pixels, conf >= 0.01), plus the
dataset's ``manifest.csv`` (PNG paths and their PNG scale) and ``boxes.csv`` (the truth). A run without them
is rescored first when it has weights (:func:`analysis.tuning.rescoring.rescore`).

- :func:`image_table` -> one row per image of the split: ground-truth and predicted box counts at the
  tuned threshold, highest confidence, Kaggle score (NaN when the metric leaves the image out) and kind;
- :func:`worst_sections` -> the worst false positives on healthy lungs (most confident first), the
  worst images with opacities (lowest score first) and the whole ranking;
- :func:`fig_pairs` draws each image twice: ground truth (green) | predictions (red, with confidence;
  ground truth dashed for reference); :func:`run_show` is the whole command.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from analysis.record.setting import TunedSetting
from analysis.reports.report import Report
from analysis.scoring.metric import frame_to_preds, per_image_scores
from rsna_yolo.core.boxes import scale_about_centre
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_csv_atomic
from rsna_yolo.core.layout import BOX_COLUMNS
from rsna_yolo.core.runs import (
    KAGGLE_JSON,
    classifier_predictions_name,
    predictions_name,
    read_kaggle,
    rescore_dir,
    run_data_yaml,
    run_weights,
)

KINDS = {
    "false positive": "no opacity, boxes predicted (scores 0)",
    "miss": "opacity, no box predicted (scores 0)",
    "partial": "opacity and boxes, imperfect match",
    "perfect": "every box matched at every IoU threshold (scores 1)",
    "true negative": "no opacity, no box (left out of the Kaggle mean)",
}


def load_inputs(run_dir: Path, split: str, data: Path | None = None, *, progress: bool = True):
    """``(setting, predictions, root, manifest, truth)`` for ``split`` of a run folder.

    ``setting`` is the :class:`~analysis.inference.predictor.TunedSetting` of its kaggle.json (rescored now
    when missing and weights exist; when the run's own kaggle.json was tuned on another split,
    ``<run>/kaggle_<split>/`` is read or written instead, so the run's own file is never replaced);
    ``predictions`` the frame of ``predictions_<split>.csv``, gated as the setting says (with the
    probabilities rescoring kept in ``classifier_<split>.csv``); ``truth`` maps every image of the split to
    its ``(G, 4)`` xywh_px boxes.
    """
    from analysis.scoring.truth import dataset_truth
    from analysis.tuning.rescoring import read_predictions
    from rsna_yolo.core.layout import read_dataset

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: not a run folder")
    kaggle_dir = run_dir
    kaggle = read_kaggle(run_dir)
    if kaggle is not None and kaggle.get("split") != split:
        # The run's own kaggle.json was tuned on another split and compare/submit rely on it: leave it as
        # it is and score this split into a subfolder of its own.
        kaggle_dir = rescore_dir(run_dir, split)
        kaggle = read_kaggle(kaggle_dir)
        if kaggle is not None and kaggle.get("split") != split:
            kaggle = None
    data_yaml = Path(data) if data else run_data_yaml(run_dir, kaggle or read_kaggle(run_dir))
    if kaggle is None or not (kaggle_dir / kaggle.get("predictions", predictions_name(split))).is_file():
        if run_weights(run_dir) is None:
            raise UserError(f"{run_dir}: no kaggle.json for split {split!r} and no weights to compute it")
        if data_yaml is None:
            raise UserError(f"{run_dir}: no data YAML known for rescoring; pass --data")
        from analysis.tuning.rescoring import rescore

        kaggle = rescore(run_dir, data_yaml, split=split, out_dir=kaggle_dir, progress=progress)
    if data_yaml is None:
        raise UserError(f"{run_dir}: kaggle.json names no data YAML; pass --data")
    root, manifest = read_dataset(data_yaml)
    preds_path = kaggle_dir / kaggle.get("predictions", predictions_name(split))
    if not preds_path.is_file():
        raise UserError(f"{preds_path}: missing (run `python -m analysis rescore {run_dir}`)")
    preds = read_predictions(preds_path)
    truth = dataset_truth(root, manifest, split)
    setting = TunedSetting.from_run(kaggle_dir / KAGGLE_JSON, check_weights=False)
    return setting, _gated(setting, preds, kaggle_dir, split, kaggle), root, manifest, truth


def image_table(
    truth: dict[str, np.ndarray], preds: pd.DataFrame, conf: float, box_scale: float, classes: dict[str, str]
) -> pd.DataFrame:
    """One row per image of ``truth``: ``patientId, class, n_gt, n_pred`` (conf >= ``conf``), ``max_conf``,
    ``score`` (Kaggle score at ``conf``/``box_scale``; NaN when left out) and ``kind`` (see :data:`KINDS`)."""
    kept = preds[preds["conf"] >= conf]
    scores = per_image_scores(truth, frame_to_preds(kept), conf=conf, box_scale=box_scale)
    n_pred = kept.groupby("patientId").size()
    max_conf = kept.groupby("patientId")["conf"].max()
    ids = list(truth)
    table = pd.DataFrame(
        {
            "patientId": ids,
            "class": [classes.get(i, "") for i in ids],
            "n_gt": [len(truth[i]) for i in ids],
            "n_pred": n_pred.reindex(ids).fillna(0).astype(int).to_numpy(),
            "max_conf": max_conf.reindex(ids).to_numpy(dtype=float),
            "score": [scores.get(i, np.nan) for i in ids],
        }
    )
    has_gt, has_pred = table["n_gt"] > 0, table["n_pred"] > 0
    kind = np.select(
        [~has_gt & has_pred, has_gt & ~has_pred, has_gt & (table["score"] >= 1.0), has_gt],
        ["false positive", "miss", "perfect", "partial"],
        default="true negative",
    )
    return table.assign(kind=kind)


def worst_sections(table: pd.DataFrame, n: int) -> dict[str, pd.DataFrame]:
    """The ``n`` worst of each kind of error.

    - "false positives": images without opacity that received boxes, highest confidence first (the most
      convincing false alarms on healthy lungs);
    - "opacities": images with opacity, lowest score first (misses at 0 before poor matches), more ground
      truth boxes first among equals;
    - "ranking": every scored image, worst score first.
    """
    fp = table[table["kind"] == "false positive"].sort_values(
        ["max_conf", "patientId"], ascending=[False, True]
    )
    opac = table[table["n_gt"] > 0].sort_values(["score", "n_gt", "patientId"], ascending=[True, False, True])
    ranked = table[table["score"].notna()].sort_values(["score", "max_conf", "patientId"],
                                                       ascending=[True, False, True])  # fmt: skip
    return {"false positives": fp.head(n), "opacities": opac.head(n), "ranking": ranked}


def _draw(ax, img: np.ndarray, boxes_png: np.ndarray, colour: str, labels=None, dashed=False) -> None:
    ax.imshow(img, cmap="gray", vmin=0, vmax=255)
    for k, (x, y, w, h) in enumerate(boxes_png):
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=1.0 if dashed else 1.8,
                               linestyle="--" if dashed else "-"))  # fmt: skip
        if labels is not None:
            ax.text(x, y - 2, labels[k], color="white", fontsize=7,
                    bbox={"facecolor": colour, "pad": 1, "edgecolor": "none"})  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def fig_pairs(
    rows: pd.DataFrame,
    root: Path,
    manifest: pd.DataFrame,
    truth: dict[str, np.ndarray],
    preds: pd.DataFrame,
    conf: float,
    box_scale: float,
    title: str,
    *,
    per_row: int = 2,
) -> Figure:
    """Each image of ``rows`` twice, side by side: ground truth (green) | predictions at ``conf`` with boxes
    scaled by ``box_scale`` (red, confidence on each; ground truth dashed green). ``per_row`` pairs per
    line."""
    info = manifest.set_index("patientId")
    n = max(len(rows), 1)
    lines = int(np.ceil(n / per_row))
    fig = Figure(figsize=(6.4 * per_row, 3.4 * lines + 0.5), layout="constrained")
    axes = fig.subplots(lines, 2 * per_row, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    kept = preds[preds["conf"] >= conf]
    for k, row in enumerate(rows.rename(columns={"class": "cls"}).itertuples()):
        ax_gt, ax_pr = axes[k // per_row, 2 * (k % per_row)], axes[k // per_row, 2 * (k % per_row) + 1]
        ax_gt.axis("on")
        ax_pr.axis("on")
        entry = info.loc[row.patientId]
        img = cv2.imread(str(root / entry["png"]), cv2.IMREAD_GRAYSCALE)
        if img is None:
            ax_gt.set_title(f"{row.patientId[:8]}: image missing", fontsize=8)
            continue
        png_scale = float(entry["scale"])  # PNG pixels per source pixel
        gt = truth.get(row.patientId, np.zeros((0, 4))) * png_scale
        mine = kept[kept["patientId"] == row.patientId].sort_values("conf", ascending=False)
        boxes = scale_about_centre(mine[list(BOX_COLUMNS)].to_numpy(float), box_scale) * png_scale
        _draw(ax_gt, img, gt, "#2ca02c")
        _draw(ax_pr, img, gt, "#2ca02c", dashed=True)
        _draw(ax_pr, img, boxes, "#d62728", labels=[f"{c:.2f}" for c in mine["conf"]])
        score = "left out" if np.isnan(row.score) else f"score {row.score:.3f}"
        ax_gt.set_title(f"{row.patientId[:8]} · {row.cls or '?'} · truth ({row.n_gt})", fontsize=8)
        ax_pr.set_title(f"predicted ({row.n_pred}) · {score}", fontsize=8)
    if not len(rows):
        axes[0, 0].text(0, 0.5, "none", fontsize=12)
    fig.suptitle(title)
    return fig


def _none_sentence(table: pd.DataFrame, kind: str, preds: pd.DataFrame, conf: float) -> str:
    """Why a section is empty, with the numbers: how many negatives, and the most confident box below the
    threshold among them (how close the nearest false alarm came)."""
    negatives = table.loc[table["n_gt"] == 0, "patientId"]
    below = preds.loc[preds["patientId"].isin(negatives), "conf"]
    nearest = (
        f"; the most confident box on them, {below.max():.3f}, is below the threshold"
        if len(below)
        else "; no box was predicted on them at all"
    )
    n = len(negatives)
    return f"No {kind}: none of the {n} images without opacity has a box at conf >= {conf:g}{nearest}."


def _gated(
    setting: TunedSetting, preds: pd.DataFrame, folder: Path, split: str, kaggle: dict
) -> pd.DataFrame:
    """The cached predictions gated as tuned, with the classifier probabilities rescoring kept beside them
    (a gated setting shows the boxes it would submit, not the detector's alone)."""
    if not setting.gate:
        return preds
    from analysis.record.gate import read_p_opacity

    path = Path(folder) / kaggle.get("classifier_predictions", classifier_predictions_name(split))
    if not path.is_file():
        raise UserError(f"{path}: missing; the gate of {setting.source} needs it (rescore --classifier)")
    return setting.apply_gate(preds, read_p_opacity(path))


def _gate_text(setting: TunedSetting) -> str:
    if not setting.gate:
        return ""
    g = setting.gate
    return ", soft gate" if g["mode"] == "soft" else f", hard gate {g.get('gate') or 0:g} on P(opacity)"


def run_show(
    run_dir: Path,
    split: str = "val",
    *,
    worst: int = 12,
    data: Path | None = None,
    out: Path | None = None,
    progress: bool = True,
) -> tuple[dict[str, Path], pd.DataFrame]:
    """Write the prediction pictures of ``run_dir`` on ``split`` (into ``out``, default
    ``<run_dir>/show_<split>``). Returns ``(paths, image table)``."""
    run_dir = Path(run_dir)
    if worst < 1:
        raise UserError(f"--worst must be at least 1 (got {worst})")
    setting, preds, root, manifest, truth = load_inputs(run_dir, split, data, progress=progress)
    conf, box_scale = setting.conf, setting.box_scale
    classes = dict(zip(manifest["patientId"].astype(str), manifest["class"].fillna(""), strict=True))
    table = image_table(truth.truth, preds, conf, box_scale, classes)
    sections = worst_sections(table, worst)
    out = Path(out) if out else run_dir / f"show_{split}"
    report = Report(f"Predictions of {run_dir.name} on {split}: worst first", out)
    counted = table["score"].notna()
    report.text(
        f"Tuned threshold conf >= {conf:g} and box scale {box_scale:g}{_gate_text(setting)} (from "
        f"{setting.source}); Kaggle mAP "
        f"{table.loc[counted, 'score'].mean():.4f} over {int(counted.sum())} scored images of {len(table)}. "
        "Left: ground truth (green). Right: predictions (red, with confidence) over the ground truth "
        "(dashed)."
    )
    kinds = table["kind"].value_counts().reindex(list(KINDS)).fillna(0).astype(int)
    report.table(
        pd.DataFrame({"kind": list(KINDS), "images": kinds.to_numpy(), "meaning": list(KINDS.values())})
    )
    report.heading("Worst false positives on healthy lungs")
    fp = sections["false positives"]
    if len(fp):
        report.text("Images without opacity that received boxes, most confident false alarm first.")
        report.figure(fig_pairs(fp, root, manifest, truth.truth, preds, conf, box_scale,
                                "False positives on images without opacity (most confident first)"),
                      "worst_false_positives", "Worst false positives")  # fmt: skip
    else:
        report.text(_none_sentence(table, "false positive", preds, conf))
    report.heading("Worst images with opacities")
    opac = sections["opacities"]
    if len(opac):
        report.text("Images with ground-truth boxes, lowest Kaggle score first (complete misses score 0).")
        report.figure(fig_pairs(opac, root, manifest, truth.truth, preds, conf, box_scale,
                                "Images with opacity, lowest score first"), "worst_opacities",
                      "Worst misses and poor matches")  # fmt: skip
    else:
        report.text(f"No image of {split} has a ground-truth box, so there is no miss to show.")
    report.heading("Ranking")
    report.table(sections["ranking"].head(max(3 * worst, 30)).round(4),
                 caption="Scored images, worst first (the full list is in images.csv)")  # fmt: skip
    paths = report.write()
    write_csv_atomic(table.sort_values(["score", "patientId"]), out / "images.csv")
    paths["images"] = out / "images.csv"
    return paths, table
