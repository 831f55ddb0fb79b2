"""The competition score of a training run: glue between the Ultralytics trainer and the two doors of
``analysis`` (tuning: ``analysis.tuning``; inference: ``analysis.inference``).

- ``final_score``: after training, ``analysis.tuning.rescoring`` on ``best.pt`` (writes ``kaggle.json``,
  ``predictions_val.csv`` and ``kaggle_threshold.png`` into the run folder; tuned threshold and box scale).
- ``final_kaggle``: the final rescoring and the checkpoint choice: with ``kaggle_every``, ``best.pt``
  against ``best_kaggle.pt``, the better one kept as ``best.pt`` and named in ``kaggle.json``;
  ``report_score`` is its console line.
- ``final_classify`` / ``log_classify``: a classifier run's ``classify.json`` and its W&B figures.
- ``EpochScorer``: during training (``kaggle_every=N``), the tuned Kaggle mAP of the weights saved this
  epoch (``last.pt``) on the val split: predicted at the prediction floor and tuned by
  ``analysis.tuning.tuner``, as rescoring does; writes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rsna_yolo.core.io import copy_atomic, write_json_atomic
from rsna_yolo.core.runs import (
    BEST_FITNESS_PT,
    BEST_KAGGLE_PT,
    BEST_PT,
    CLASSIFY_JSON,
    KAGGLE_EPOCHS_JSON,
    KAGGLE_JSON,
    WEIGHTS_DIR,
    rescore_dir,
)
from rsna_yolo.train import wandb_log


def predict_settings(trainer) -> dict[str, Any]:
    """Prediction settings matching the training run: image size, device, batch (AutoBatch's -1 -> 16)."""
    batch = trainer.args.batch if isinstance(trainer.args.batch, int) and trainer.args.batch > 0 else 16
    imgsz = trainer.args.imgsz if isinstance(trainer.args.imgsz, int) else max(trainer.args.imgsz)
    return {"imgsz": imgsz, "batch": batch, "device": trainer.args.device or None}


def final_score(trainer, data: Path) -> dict[str, Any]:
    """Rescore the run's best weights on val with the Kaggle metric; returns the kaggle.json content."""
    from analysis.tuning import rescore

    if Path(trainer.best).is_file():
        weights, maps = trainer.best, final_val_maps(trainer)
    else:
        weights, maps = trainer.last, None  # the trainer validated nothing final
    settings = predict_settings(trainer)
    return rescore(Path(weights), Path(data), split="val", progress=False, known_maps=maps, **settings)


def final_val_maps(trainer) -> dict[str, float] | None:
    """mAP50 / mAP50-95 of ``best.pt`` on val from the trainer's final validation (``final_eval`` validates
    ``best.pt`` and leaves its metrics in ``trainer.metrics``), so rescoring need not validate again."""
    metrics = getattr(trainer, "metrics", None) or {}
    keys = {"map50": "metrics/mAP50(B)", "map50_95": "metrics/mAP50-95(B)"}
    if not all(k in metrics for k in keys.values()):
        return None
    return {ours: float(metrics[theirs]) for ours, theirs in keys.items()}


class EpochScorer:
    """Kaggle mAP of a checkpoint on the val split, with the threshold and box scale tuned as in rescore.

    The split (truth, images, PNG scales) is read once; each call predicts it and tunes.
    """

    def __init__(self, data: Path, split: str = "val"):
        from analysis.tuning import load_split

        self.split = load_split(Path(data), split)

    def __call__(self, weights: Path, *, imgsz: int, batch: int = 16, device=None) -> float:
        """Best Kaggle mAP over the threshold x box-scale grid (NaN when no image counts)."""
        from analysis.inference import predict_images
        from analysis.tuning import tune

        frame = predict_images(
            [Path(weights)], self.split.images, imgsz=imgsz, batch=batch, device=device,
            png_scales=self.split.png_scales, progress=False,
        )  # fmt: skip
        return tune(self.split.gt, frame).score


def report_score(result: dict[str, Any], run_dir: Path) -> str:
    """One line for the console: the tuned Kaggle score and where kaggle.json is."""
    return (
        f"Kaggle mAP (val): {result['score']:.4f} at conf {result['conf']:.2f}, "
        f"box scale {result['scale']:.2f} -> {run_dir / KAGGLE_JSON}"
    )


def final_kaggle(trainer, data: Path, kaggle_every: int | None) -> dict[str, Any]:
    """The final rescoring: ``best.pt`` (Ultralytics' fitness) and, with ``kaggle_every``, ``best_kaggle.pt``
    (the best scored epoch), each with its threshold and box scale tuned on val; the better one is kept.

    Keeping ``best_kaggle.pt`` renames Ultralytics' ``best.pt`` to ``best_fitness.pt`` and copies
    ``best_kaggle.pt`` to ``best.pt``, so that everything reading the run folder (``analysis submit``,
    ``rescore``, fold sets, the gate) uses the kept weights. ``kaggle.json`` describes ``best.pt`` and names
    the choice in ``checkpoint``: ``{"kept", "candidates": {name: {"file", "epoch", "score"}}}``; a tie keeps
    Ultralytics' ``best.pt``.
    """
    result = final_score(trainer, data)
    run_dir, best = Path(trainer.save_dir), Path(trainer.best)
    candidate = Path(trainer.wdir) / BEST_KAGGLE_PT
    if not (kaggle_every and candidate.is_file() and best.is_file()):
        return result
    from analysis.inference import TunedSetting
    from analysis.tuning import rescore

    settings = predict_settings(trainer)
    alt = rescore(candidate, data, split="val", progress=False, ultralytics_val=False,
                  out_dir=rescore_dir(run_dir, "best_kaggle"), **settings)  # fmt: skip
    # kaggle_epochs.json, not the session: under DDP the epochs ran in other processes (rank 0 wrote it)
    epochs_file = run_dir / KAGGLE_EPOCHS_JSON
    history = json.loads(epochs_file.read_text()) if epochs_file.is_file() else {}
    best_kaggle = history.get("best_kaggle") or {}
    kaggle_epoch, epoch_score = best_kaggle.get("epoch"), best_kaggle.get("score")
    keep_kaggle = alt["score"] > result["score"]
    every = kaggle_every
    candidates = {
        BEST_PT: {"file": f"{WEIGHTS_DIR}/{BEST_FITNESS_PT if keep_kaggle else BEST_PT}",
                    "epoch": history.get("fitness_epoch"), "score": result["score"],
                    "chosen_by": "Ultralytics fitness"},
        BEST_KAGGLE_PT: {"file": f"weights/{BEST_KAGGLE_PT}", "epoch": kaggle_epoch, "score": alt["score"],
                      "epoch_score": epoch_score, "chosen_by": f"Kaggle mAP every {every} epochs"},
    }  # fmt: skip
    if keep_kaggle:
        os.replace(best, best.with_name(BEST_FITNESS_PT))
        try:
            copy_atomic(candidate, best)
        except BaseException:  # e.g. a full disk: best.pt stays the fitness checkpoint, as kaggle.json says
            os.replace(best.with_name(BEST_FITNESS_PT), best)
            raise
        result = rescore(best, data, split="val", progress=False, **settings)
    result["checkpoint"] = {"kept": BEST_KAGGLE_PT if keep_kaggle else BEST_PT, "candidates": candidates}
    TunedSetting.amend(run_dir / KAGGLE_JSON, checkpoint=result["checkpoint"])
    name = result["checkpoint"]["kept"]
    print(
        f"checkpoint: kept {name} ("
        + ", ".join(f"{n}: epoch {c['epoch']}, {c['score']:.4f}" for n, c in candidates.items())
        + ")"
    )
    return result


def final_classify(trainer, data: Path, transfer_source=None) -> dict[str, Any]:
    """classify.json for a finished classifier run: its best weights on the view's val split (with the
    transfer summary when the run started from other weights), and one line on the console."""
    from analysis.inference import evaluate_classifier as evaluate
    from rsna_yolo.train import transfer

    weights = trainer.best if Path(trainer.best).is_file() else trainer.last
    settings = predict_settings(trainer)
    out = trainer.save_dir
    result = evaluate(weights, data, split="val", out_dir=out, progress=False, **settings)
    if transfer_source is not None:
        result["transfer"] = transfer.summary(transfer_source)
        write_json_atomic(result, Path(out) / CLASSIFY_JSON)
    auc = result["auc_opacity"]
    print(
        f"classifier (val): accuracy {result['accuracy']:.4f}, ROC AUC of P(opacity) "
        f"{'n/a' if auc is None else f'{auc:.4f}'} -> {Path(trainer.save_dir) / CLASSIFY_JSON}"
    )
    return result


def log_classify(wandb_run, result: dict[str, Any]) -> None:
    """A classifier run's final figures in its W&B run, as ``classify/*`` (logged and in the summary)."""
    values = {"classify/accuracy": result["accuracy"]}
    if result["auc_opacity"] is not None:
        values["classify/auc_opacity"] = result["auc_opacity"]
    wandb_log.log(wandb_run, values)
    wandb_log.set_summary(wandb_run, values)
