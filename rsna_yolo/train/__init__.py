"""rsna-yolo `train`: a `yolo`-compatible training entry point with the Kaggle score, W&B and sweeps."""

from rsna_yolo import offline  # noqa: F401  (must run before anything imports ultralytics or wandb)
