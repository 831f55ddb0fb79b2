"""rsna-yolo `convert`: Kaggle RSNA DICOMs and CSVs to a verified Ultralytics dataset."""

from rsna_yolo import offline  # noqa: F401  (must run before anything imports ultralytics or wandb)
