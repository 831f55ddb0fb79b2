"""python -m train: Ultralytics training with the competition's score, W&B and local sweeps.

  python -m train key=value ...            train exactly as `yolo detect train key=value ...`, then rescore
                                           best.pt on val with the Kaggle metric (kaggle.json, W&B kaggle/mAP)
  python -m train resume RUN_DIR [k=v ..]  continue a killed run from RUN_DIR/weights/last.pt, then rescore
  python -m train sweep SWEEP.yaml [...]   run a W&B-format sweep file locally with Optuna (`sweep --help`)

Training arguments are Ultralytics' (https://docs.ultralytics.com/usage/cfg), e.g.
  python -m train data=demo/dataset/data.yaml cfg=yolo_configs/hyp/xray.yaml model=yolo11n.yaml epochs=30

Keys added by this project (removed before Ultralytics sees the rest):
  kaggle_every=N      also score the current weights on val every N epochs (logged as kaggle/mAP per epoch)
  wandb=False         no W&B run (default: a run under RUN_DIR/wandb, online when an API key is configured and
                      the server answers, else offline; the run folder's WANDB_SYNC.txt has `wandb sync`)
  wandb_project=P     W&B project (default $WANDB_PROJECT or rsna-yolo); wandb_group=G
  rescore=False       skip the final Kaggle rescoring

model= may be a *.yaml (from scratch), a local .pt (transfer learning; freeze=N passes through) or a hub
name such as yolo11s.pt (needs RSNA_YOLO_ONLINE=1). data= defaults to $RSNA_YOLO_DATA.
"""

from __future__ import annotations

import argparse
import sys

from core.cli import call_reporting_errors

PROG = "python -m train"


def _train(argv: list[str]) -> int:
    from train.args import parse_key_values
    from train.run import train

    args, options = parse_key_values(argv)
    result = train(args, options)
    print(f"run folder: {result.run_dir}")
    return 0


def _resume(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} resume",
        description="Continue a killed training run from RUN_DIR/weights/last.pt to its planned epochs, "
        "then rescore it with the Kaggle metric. A finished run cannot be extended: start a new run from "
        "its weights instead (model=RUN_DIR/weights/best.pt).",
    )
    parser.add_argument("run_dir", help="the run folder (holds args.yaml and weights/last.pt)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="settings Ultralytics lets a resume change: device, batch...",
    )
    ns = parser.parse_args(argv)
    from train.args import OPTION_KEYS, parse_key_values
    from train.run import resume

    args, options = parse_key_values(ns.overrides)
    given = {t.split("=", 1)[0].removeprefix("--") for t in ns.overrides} & OPTION_KEYS  # e.g. wandb=False
    result = resume(ns.run_dir, args, options={k: getattr(options, k) for k in given})
    print(f"run folder: {result.run_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    if argv[0] == "resume":
        return call_reporting_errors(PROG, _resume, argv[1:])
    if argv[0] == "sweep":
        from train.sweep import main as sweep_main

        return call_reporting_errors(PROG, sweep_main, argv[1:], f"{PROG} sweep")
    return call_reporting_errors(PROG, _train, argv)


if __name__ == "__main__":
    sys.exit(main())
