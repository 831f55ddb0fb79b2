"""What each step of the competition recipe is worth, on one fixed image set (``analysis ablation``).

Rows, each built on the one above, each scored with the exact Kaggle metric on the same split:

1. the detector at Ultralytics' default confidence (0.25), boxes as predicted;
2. the confidence threshold tuned by the metric (box scale 1);
3. the box scale tuned too (the detector's own ``analysis rescore``);
4. flip TTA (``rescore --tta``);
5. an ensemble: WBF of the given weights or fold set, with TTA when it helped (``rescore W1 W2 ...``);
6. the classifier gate on the best detector setting above (``rescore ... --classifier``).

Each row gives the Kaggle mAP, its change from the row above, the loss by class of image (false boxes on
Normal / Not Normal films, missed or misplaced opacities) and the inference cost measured on this machine:
images per second over the split and the seconds the 3,000 test images of the challenge would take. A
row that cannot be computed (no ensemble, no classifier given) says so instead of vanishing. Each score
is exactly what the equivalent ``analysis rescore`` call reports.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis.reports.report import Report
from analysis.tuning import DEFAULTS
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_csv_atomic
from rsna_yolo.core.layout import dataset_split

"""Ultralytics' default confidence threshold: what a plain detector submission uses."""
TEST_IMAGES = 3000
"""Images in the challenge's stage-2 test set."""


def _cost(predict, n_images: int, warm_up=None) -> dict:
    """Images per second of ``predict()`` over ``n_images``, after an untimed ``warm_up()`` (the first
    inference of a process pays for loading libraries and kernels, which a 3,000-image run pays once)."""
    if warm_up is not None:
        warm_up()
    start = time.perf_counter()
    predict()
    rate = n_images / max(time.perf_counter() - start, 1e-9)
    return {"images_per_s": rate, "test_set_s": TEST_IMAGES / rate}


def _row(step: str, result: dict | None, score: float | None, cost: dict | None, how: str) -> dict:
    b = (result or {}).get("breakdown") or {}
    classes = b.get("classes", {})
    return {
        "step": step,
        "Kaggle mAP": score,
        "held-out": (result or {}).get("score_heldout"),
        "false-box loss": b.get("false_box_loss"),
        "Lung Opacity loss": b.get("lung_opacity_loss"),
        "Normal loss": (classes.get("Normal") or {}).get("loss"),
        "Not Normal loss": (classes.get("No Lung Opacity / Not Normal") or {}).get("loss"),
        "images/s": None if cost is None else cost["images_per_s"],
        "s for 3,000 test images": None if cost is None else cost["test_set_s"],
        "how": how,
    }


def run_ablation(
    detector: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    split: str = "val",
    ensemble: Sequence[str | Path] = (),
    classifier: str | Path | None = None,
    batch: int = 16,
    device=None,
    progress: bool = True,
) -> tuple[dict[str, Path], pd.DataFrame]:
    """Build the ablation table and report (``report.md``, ``report.html``, ``ablation.csv``) in ``out``."""
    from analysis.inference import Predictor, TunedSetting
    from analysis.tuning import breakdown_at, load_split, rescore, tune
    from analysis.tuning.rescoring import read_predictions
    from rsna_yolo.core.runs import expand_weights, predictions_name

    data = Path(data)
    _, manifest = dataset_split(data, split)
    if manifest.loc[manifest["split"] == split, "Target"].isna().all():
        raise UserError(f"{data}: split {split!r} has no labels; an ablation needs a labelled split (val)")
    scored = load_split(data, split)
    images, png_scales = scored.images, scored.png_scales
    n = len(images)
    weights = [w for w, _ in expand_weights([detector])]
    members = [w for w, _ in expand_weights([detector, *ensemble])] if ensemble else []
    kw = dict(split=split, batch=batch, device=device, progress=progress, ultralytics_val=False)

    def det_cost(ws, tta=False):
        predictor = Predictor(TunedSetting(weights=tuple(ws), tta=tta), batch=batch, device=device)

        def run(some):
            return predictor.raw(some, png_scales=png_scales, floor=DEFAULTS.prediction_floor, progress=False)

        return _cost(lambda: run(images), n, warm_up=lambda: run(images[:2]))

    alone = rescore(detector, data, **kw)
    cached = read_predictions(Path(alone["out_dir"]) / predictions_name(split))

    single = det_cost(weights)
    rows = []
    sweep = pd.DataFrame(alone["sweep"])
    default = sweep[(sweep["conf"] == DEFAULTS.default_conf) & (sweep["scale"] == 1.0)]["score"].iloc[0]
    # nothing is tuned at the default setting: its score is already a held-out one
    fixed = {"breakdown": breakdown_at(scored.gt, cached, {"conf": DEFAULTS.default_conf, "scale": 1.0}),
             "score_heldout": default}  # fmt: skip
    rows.append(_row("detector, default conf 0.25", fixed, default, single,
                     f"conf {DEFAULTS.default_conf}, box scale 1"))  # fmt: skip
    at_one = tune(scored.gt, cached, box_scales=[1.0])
    threshold_only = {"breakdown": at_one.breakdown, "score_heldout": at_one.score_heldout}
    rows.append(_row("+ tuned threshold", threshold_only, at_one.score, single,
                     f"conf {at_one.best['conf']:.2f}, box scale 1"))  # fmt: skip
    rows.append(_row("+ box scale", alone, alone["score"], single,
                     f"conf {alone['conf']:.2f}, box scale {alone['scale']:.2f}"))  # fmt: skip
    tta = rescore(detector, data, tta=True, **kw)
    how = f"conf {tta['conf']:.2f}, box scale {tta['scale']:.2f}, WBF {tta.get('wbf')}"
    rows.append(_row("+ flip TTA", tta, tta["score"], det_cost(weights, tta=True), how))
    best_setting = (weights, tta["score"] >= alone["score"])  # (weights, with TTA): the best so far
    best_score = max(tta["score"], alone["score"])
    if members:
        use_tta = best_setting[1]
        ens = rescore([detector, *ensemble], data, tta=use_tta, **kw)
        cost = det_cost(members, tta=use_tta)
        how = f"{len(members)} weights{' + TTA' if use_tta else ''}, WBF {ens.get('wbf')}"
        rows.append(_row(f"+ WBF of {len(members)} models", ens, ens["score"], cost, how))
        if ens["score"] >= best_score:
            best_setting, best_score = (members, use_tta), ens["score"]
    else:
        rows.append(_row("+ WBF of folds or sizes", None, None, None,
                         "not computed: no --ensemble weights or fold set given"))  # fmt: skip
    if classifier is not None:
        ws, use_tta = best_setting
        gated = rescore(ws, data, tta=use_tta, classifier=classifier, **kw)
        det = det_cost(ws, tta=use_tta)
        cls_weights = tuple(w for w, _ in expand_weights([classifier]))
        classify = Predictor(
            TunedSetting(weights=(), classifiers=cls_weights), batch=DEFAULTS.batch, device=device
        )
        cls = _cost(lambda: classify.probabilities(images, progress=False), n,
                    warm_up=lambda: classify.probabilities(images[:2], progress=False))  # fmt: skip
        rate = 1 / (1 / det["images_per_s"] + 1 / cls["images_per_s"])
        g = gated["gate"]
        rows.append(_row("+ classifier gate", gated, gated["score"],
                         {"images_per_s": rate, "test_set_s": TEST_IMAGES / rate},
                         f"{g['mode']} gate {g['gate']}, on the best setting above"))  # fmt: skip
    else:
        rows.append(_row("+ classifier gate", None, None, None, "not computed: no --classifier given"))
    table = pd.DataFrame(rows)
    table.insert(2, "change", table["Kaggle mAP"].diff())
    return _report(table, Path(out), detector, data, split, n), table


def _fmt(v: float) -> str:
    return "" if pd.isna(v) else f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"


def _report(table: pd.DataFrame, out: Path, detector, data, split: str, n: int) -> dict[str, Path]:
    report = Report("Ablation: what each step of the recipe is worth", out)
    report.text(
        f"Detector {detector} on the {split} split of {data} ({n} images). Each row adds one step to the row "
        "above and is scored with the exact Kaggle metric, tuned on these images; 'held-out' is the honest "
        "figure beside it (tuned on one half of the images by patientId, scored on the other, both ways, "
        "averaged); the inference cost is measured on this machine "
        "(images per second over the split; seconds the 3,000 test images would take). A row that could not "
        "be computed says why."
    )
    shown = table.copy()
    for col in shown.columns:
        if shown[col].dtype.kind == "f":
            shown[col] = shown[col].map(_fmt)
    report.table(shown)
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.subplots()
    done = table[table["Kaggle mAP"].notna()]
    ax.barh(done["step"][::-1], done["Kaggle mAP"][::-1], color="tab:blue")
    ax.set_xlabel("Kaggle mAP")
    ax.grid(axis="x", alpha=0.3)
    report.figure(fig, "ablation", "Kaggle mAP of each step")
    write_csv_atomic(table, out / "ablation.csv")
    return report.write()
