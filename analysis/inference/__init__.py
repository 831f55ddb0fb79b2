"""The inference door: predicting exactly as a run was tuned.

- :class:`Predictor` (:mod:`analysis.inference.predictor`) is built from what tuning left behind (a run
  folder, a fold set or any ``kaggle*.json``) and predicts with its models, image sizes, TTA, fusion,
  threshold, box scale and gate;
- :func:`predict_images` (boxes at the prediction floor, :mod:`analysis.inference.predict`) and
  :func:`predict_probs` (P(opacity), :mod:`analysis.inference.classifier`) are the inference it runs;
  :func:`evaluate_classifier` writes a classifier run's ``classify.json``; :func:`opacity_auc` is the
  ROC AUC of P(opacity) against the two other classes;
- ``submit`` / ``submission`` write and validate the Kaggle CSV.

Callers outside ``analysis`` (``train``) use the names here.
"""

from analysis.inference.classifier import evaluate as evaluate_classifier
from analysis.inference.classifier import opacity_auc, predict_probs, view_labels
from analysis.inference.predict import predict_images
from analysis.inference.predictor import Prediction, Predictor
from analysis.record.setting import TunedSetting

__all__ = [
    "Prediction",
    "Predictor",
    "TunedSetting",
    "evaluate_classifier",
    "opacity_auc",
    "predict_images",
    "predict_probs",
    "view_labels",
]
