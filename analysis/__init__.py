"""rsna-yolo `analysis`: the Kaggle metric, rescoring, submissions, EDA and run comparison."""

import offline  # noqa: F401  (must run before anything imports ultralytics or wandb)
