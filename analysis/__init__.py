"""rsna-yolo `analysis`: the Kaggle metric, rescoring, submissions, EDA and run comparison."""

from rsna_yolo import offline  # noqa: F401  (must run before anything imports ultralytics or wandb)
