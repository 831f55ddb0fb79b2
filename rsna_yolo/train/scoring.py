"""The competition score of a training run: glue between the Ultralytics trainer and the two doors of
``analysis`` (tuning: ``analysis.tuning``; inference: ``analysis.inference``).

- ``final_score``: after training, ``analysis.tuning.rescoring`` on ``best.pt`` (writes ``kaggle.json``,
  ``predictions_val.csv`` and ``kaggle_threshold.png`` into the run folder; tuned threshold and box scale).
- ``EpochScorer``: during training (``kaggle_every=N``), the tuned Kaggle mAP of the weights saved this
  epoch (``last.pt``) on the val split: predicted at the prediction floor and tuned by
  ``analysis.tuning.tuner``, as rescoring does; writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
