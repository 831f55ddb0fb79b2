"""The competition score of a training run: glue between the Ultralytics trainer and ``analysis.rescore``.

- ``final_score``: after training, ``analysis.rescore.rescore`` on ``best.pt`` (writes ``kaggle.json``,
  ``predictions_val.csv`` and ``kaggle_threshold.png`` into the run folder; tuned threshold and box scale).
- ``EpochScorer``: during training (``kaggle_every=N``), the tuned Kaggle mAP of the weights saved this
  epoch (``last.pt``) on the val split, from the same pieces of ``analysis.rescore``; writes nothing.
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
    from analysis.rescore import rescore

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

    The ground truth and image list are read once; each call predicts the split (conf 0.01) and sweeps.
    """

    def __init__(self, data: Path, split: str = "val"):
        from analysis.rescore import split_images
        from analysis.truth import dataset_truth
        from core.layout import dataset_split

        # the split as the data YAML names it: a fold YAML's own val list, not the manifest's fold 0
        root, manifest = dataset_split(Path(data), split)
        self.truth = dataset_truth(root, manifest, split).truth
        self.images, self.scales = split_images(root, manifest, split)

    def __call__(self, weights: Path, *, imgsz: int, batch: int = 16, device=None) -> float:
        """Best Kaggle mAP over the confidence x scale sweep (NaN when no image counts)."""
        from analysis.predict import predict_images
        from analysis.rescore import PREDICT_CONF
        from analysis.tuning import best_row, sweep_scores

        frame = predict_images(
            [Path(weights)], self.images, imgsz=imgsz, conf=PREDICT_CONF, batch=batch, device=device,
            png_scales=self.scales, progress=False,
        )  # fmt: skip
        return float(best_row(sweep_scores(self.truth, frame))["score"])
