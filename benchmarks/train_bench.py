"""Training and prediction speed of the pipeline, against baselines measured in the same run.

1. Training: the same dataset, model, image size and epochs through plain ``yolo detect train`` (the
   baseline) and through ``python -m train`` (W&B offline, rescoring after training). Epoch time and
   training images/s come from each run's ``results.csv``; the ratio is the wrapper's overhead during
   training (goal: under 2%). The final rescoring is timed apart.
2. Prediction, DICOMs to submission rows (decode, resize, inference, fusion, CSV): ``--n-test`` test DICOMs
   at 1024 px through ``analysis.inference.submit.make_submission`` at batch 1 and ``--batch``, with the
   loading in the predicting thread (``workers=0``, the baseline) and on all cores ahead of inference; and
   with flip TTA (weighted box fusion of two passes).

    python benchmarks/train_bench.py [--model yolo11n.yaml] [--imgsz 128] [--epochs 2] [--patients 120]
        [--n-test 200] [--batch 32] [--device cpu|0] [--out runs/train_bench]

On a GPU with real sizes: ``--model yolo11s.yaml --imgsz 640 --patients 3000 --n-test 3000 --device 0``
(and ``--imgsz 1024``). Synthetic data: the speeds are real, the scores are not.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rsna_yolo import offline  # noqa: E402,F401  (before anything imports ultralytics)
from rsna_yolo.core.layout import DATA_YAML  # noqa: E402
from rsna_yolo.core.runs import RESULTS_CSV, weights_file  # noqa: E402


def epoch_times(run_dir: Path) -> list[float]:
    """Seconds of each epoch from ``results.csv`` (its ``time`` column is cumulative)."""
    import pandas as pd

    t = pd.read_csv(run_dir / RESULTS_CSV)["time"].astype(float).tolist()
    return [b - a for a, b in zip([0.0, *t[:-1]], t, strict=True)]


def train_both(a, data: Path, out: Path) -> dict:
    common = [f"data={data}", f"model={a.model}", f"imgsz={a.imgsz}", f"epochs={a.epochs}", "batch=16",
              "workers=0", "plots=False", f"device={a.device}", "exist_ok=True",
              f"project={out}"]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline"}
    yolo = Path(sys.executable).with_name("yolo")
    timings = {}
    for name, cmd in [
        ("plain yolo detect train", [str(yolo), "detect", "train", *common, "name=plain"]),
        ("python -m train", [sys.executable, "-m", "train", *common, "name=wrapped"]),
    ]:
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - start
        run = out / ("plain" if name.startswith("plain") else "wrapped")
        epochs = epoch_times(run)
        timings[name] = {"wall_s": wall, "epochs_s": epochs, "train_s": sum(epochs)}
    return timings


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="yolo11n.yaml")
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--patients", type=int, default=120)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "train_bench")
    a = p.parse_args()
    out = a.out.resolve()
    from convert.rsna import convert_rsna
    from convert.synth import generate
    from rsna_yolo.core.workers import available_cpus

    kaggle = out / "kaggle"
    if not (kaggle / "stage_2_train_labels.csv").is_file():
        generate(kaggle, a.patients, a.n_test, seed=0, workers=available_cpus())
    data = out / "dataset" / DATA_YAML
    if not data.is_file():
        convert_rsna(kaggle, out / "dataset", imgsz=a.imgsz, progress=False, echo=lambda *x, **k: None)

    t = train_both(a, data, out / "runs")
    n_train = sum(1 for _ in (out / "dataset" / "images" / "train").glob("*.png"))
    base, wrapped = t["plain yolo detect train"], t["python -m train"]
    print(f"TRAINING {a.model} at {a.imgsz} px, {a.epochs} epochs of {n_train} images on {a.device} "
          f"({available_cpus()} cores)")  # fmt: skip
    for name, v in t.items():
        per_epoch = v["train_s"] / len(v["epochs_s"])
        print(f"  {name:24s} {per_epoch:7.2f} s/epoch  {n_train / per_epoch:7.1f} train img/s  "
              f"(whole command {v['wall_s']:.1f} s)")  # fmt: skip
    overhead = wrapped["train_s"] / base["train_s"] - 1
    print(f"  python -m train / yolo: {1 + overhead:.3f} x the training time (overhead {overhead:+.1%}; "
          f"goal < 2%); whole command incl. rescoring and W&B: "
          f"{wrapped['wall_s'] / base['wall_s']:.2f} x")  # fmt: skip

    from analysis.inference.submit import make_submission

    weights = weights_file(out / "runs" / "wrapped")
    test = kaggle / "stage_2_test_images"
    n = sum(1 for _ in test.glob("*.dcm"))
    print(f"PREDICTION {n} test DICOMs (1024 px) -> validated submission, imgsz {a.imgsz}, on {a.device}")
    rates = {}
    for label, batch, workers, tta in [
        ("batch 1, loading in the predicting thread", 1, 0, False),
        ("batch 1, loading on all cores ahead", 1, None, False),
        (f"batch {a.batch}, loading in the predicting thread", a.batch, 0, False),
        (f"batch {a.batch}, loading on all cores ahead", a.batch, None, False),
        (f"batch {a.batch}, all cores, flip TTA + WBF", a.batch, None, True),
    ]:
        start = time.perf_counter()
        make_submission([weights], test, out / "submission.csv", conf=0.25, batch=batch, tta=tta,
                        device=a.device, workers=workers, progress=False, echo=lambda *x: None)  # fmt: skip
        rates[label] = n / (time.perf_counter() - start)
        print(f"  {label:48s} {rates[label]:7.1f} img/s  ({n / rates[label]:.1f} s; 3,000 DICOMs: "
              f"{3000 / rates[label]:.0f} s)")  # fmt: skip
    seq, par = (
        rates[f"batch {a.batch}, loading in the predicting thread"],
        rates[f"batch {a.batch}, loading on all cores ahead"],
    )
    print(f"  loading ahead on all cores / in the thread at batch {a.batch}: {par / seq:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
