"""The exact Kaggle metric and what explains a score: ``metric`` (per image, accumulate, summarise),
``truth`` (a split's ground truth), ``breakdown`` (the loss by class of image), ``score`` (a submission
CSV against the labels)."""
