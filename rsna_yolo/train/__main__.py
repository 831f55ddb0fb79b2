"""python -m train: Ultralytics training with the competition's score, W&B and local sweeps.

  python -m train key=value ...            train exactly as `yolo detect train key=value ...`, then rescore
                                           best.pt on val with the Kaggle metric (kaggle.json, W&B kaggle/mAP)
  python -m train resume RUN_DIR [k=v ..]  continue a killed run from RUN_DIR/weights/last.pt, then rescore
  python -m train sweep SWEEP.yaml [...]   run a W&B-format sweep file locally with Optuna (`sweep --help`)
  python -m train folds D/folds [k=v ...]  one run per fold, then out-of-fold predictions tuned as one set

Training arguments are Ultralytics' (https://docs.ultralytics.com/usage/cfg), e.g.
  python -m train data=demo/dataset/data.yaml cfg=yolo_configs/hyp/xray.yaml model=yolo11n.yaml epochs=30

Keys added by this project (removed before Ultralytics sees the rest):
  kaggle_every=N      also score the current weights on val every N epochs (logged as kaggle/mAP per epoch);
                      the best scored epoch is kept as weights/best_kaggle.pt and the final rescoring keeps
                      the better of it and Ultralytics' best.pt (kaggle.json's checkpoint)
  kaggle_patience=N   stop after N scored epochs without a better Kaggle mAP (needs kaggle_every; 0 = never)
  wandb=False         no W&B run (default: a run under RUN_DIR/wandb, online when an API key is configured and
                      the server answers, else offline; the run folder's WANDB_SYNC.txt has `wandb sync`)
  wandb_project=P     W&B project (default $WANDB_PROJECT or rsna-yolo); wandb_group=G
  rescore=False       skip the final Kaggle rescoring

model= may be a *.yaml (from scratch), a local .pt (transfer learning; freeze=N passes through) or a hub
name such as yolo11s.pt: looked for in ./weights (or $RSNA_YOLO_WEIGHTS), else downloaded, which needs
RSNA_YOLO_ONLINE=1. pretrained=RUN_DIR|.pt starts a *.yaml model from another run's weights (every tensor
of the same name and shape, e.g. a classifier from a detector's backbone; recorded in transfer.json).
data= defaults to $RSNA_YOLO_DATA.

Where it writes, relative to the folder you run it from: a run to runs/<task>/<name> (runs/detect/train,
train2 ... without name=; project=DIR puts it in DIR/<name>), a sweep to runs/sweeps/<name>, a fold set to
runs/folds/<dataset> (runs/folds/<dataset>_cls for classifiers). Installed, the same command is
`rsna-yolo train ...` (or `python -m rsna_yolo.train ...`) from any folder.
"""

from __future__ import annotations

import sys

from rsna_yolo.core.cli import call_reporting_errors

PROG = "python -m train"


def main(argv: list[str] | None = None) -> int:
    """Dispatch: ``resume`` and ``sweep`` to their command lines, anything else is a training run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    if argv[0] == "resume":
        from rsna_yolo.train.train_cli import resume_main

        return call_reporting_errors(PROG, resume_main, argv[1:])
    if argv[0] == "folds":
        from rsna_yolo.train.folds_cli import main as folds_main

        return call_reporting_errors(PROG, folds_main, argv[1:], f"{PROG} folds")
    if argv[0] == "sweep":
        from rsna_yolo.train.sweep_cli import main as sweep_main

        return call_reporting_errors(PROG, sweep_main, argv[1:], f"{PROG} sweep")
    from rsna_yolo.train.train_cli import train_main

    return call_reporting_errors(PROG, train_main, argv)


if __name__ == "__main__":
    sys.exit(main())
