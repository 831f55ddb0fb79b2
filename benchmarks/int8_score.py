"""What OpenVINO's INT8 quantization (and bfloat16) cost in Kaggle score: a detector trained on the hard
synthetic level (or the easy one: ``--difficulty``), its val films predicted with PyTorch, OpenVINO in FP32,
OpenVINO at its default precision (bfloat16 on a CPU with AMX, as the build machine's) and OpenVINO INT8,
each tuned the same way.

Steps, in ``--out`` (reused when present): ``convert synth --difficulty hard|easy`` (``--patients``,
``--dicom-size`` px films), ``convert rsna`` at ``--imgsz``, ``python -m train`` (``--model`` from its YAML,
``--epochs``), ``analysis export --format openvino`` and ``--format openvino --int8`` (calibrated on the
training images). Then, in this process, the val films of each backend predicted at the prediction floor
(:meth:`analysis.inference.Predictor.raw`) and tuned (:func:`analysis.tuning.tune`): the tuned Kaggle mAP,
the held-out one, the threshold, and each one's difference from PyTorch's; and each backend's submission of
the val films at PyTorch's tuned threshold and box scale against PyTorch's: rows that differ at all, and
beyond the tolerance (another box count, or a box without one at IoU >= 0.98 and a confidence within 0.02);
"matched": the share of PyTorch's boxes at the prediction floor that have such a box in the backend's.
The rule: INT8 is kept only if its held-out score stays within 0.01 of PyTorch's. The last line is JSON.

    python benchmarks/int8_score.py --out /tmp/int8_score [--patients 400] [--epochs 10] [--imgsz 256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._steps import (  # noqa: E402
    differing_rows,
    matched_boxes,
    run_logged,
    runnable_backends,
    tiny_detector,
)

PROG = "int8_score"
BACKENDS = ("torch", "openvino", "openvino-bf16", "openvino-int8")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "int8_score", help="work folder")
    p.add_argument("--patients", type=int, default=400)
    p.add_argument("--dicom-size", type=int, default=512, help="synthetic film size (px)")
    p.add_argument("--imgsz", type=int, default=256, help="training and inference size")
    p.add_argument("--model", default="yolov8n.yaml")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--difficulty", choices=("hard", "easy"), default="hard", help="the synthetic level")
    a = p.parse_args()
    out = a.out.resolve()
    py = sys.executable
    _, ds, run_dir = tiny_detector(
        out, synth=["--patients", a.patients, "--test-patients", 0, "--seed", 0, "--imgsz", a.dicom_size,
                    "--difficulty", a.difficulty], imgsz=a.imgsz,
        train=[f"model={a.model}", f"epochs={a.epochs}", "batch=16"], name="det", prog=PROG)  # fmt: skip
    for extra in ([], ["--int8"]):
        run_logged([py, "-m", "analysis", "export", run_dir, "--format", "openvino", *extra],
                   out / f"export_openvino{''.join(extra)}.log", prog=PROG)  # fmt: skip

    from analysis.inference import Predictor, TunedSetting
    from analysis.record.defaults import DEFAULTS
    from analysis.scoring.submission import write_submission
    from analysis.tuning import load_split, tune
    from rsna_yolo.core.runs import run_weights

    split = load_split(ds / "data.yaml", "val")
    floor = DEFAULTS.prediction_floor
    setting = TunedSetting(weights=(run_weights(run_dir),), conf=floor, sizes=(a.imgsz,))
    print(f"{a.difficulty} synthetic level: {a.patients} patients, {len(split.images)} val films; {a.model}, "
          f"{a.epochs} epochs at {a.imgsz} px; {os.cpu_count()} cores")  # fmt: skip
    results: dict[str, dict] = {}
    ids = [p.stem for p in split.images]
    for backend in runnable_backends(list(BACKENDS)):
        start = time.perf_counter()
        raw = Predictor(setting, backend=backend).raw(
            split.images, png_scales=split.png_scales, progress=False
        )
        seconds = time.perf_counter() - start
        tuned = tune(split.gt, raw)
        if backend == "torch":  # every backend's submission at PyTorch's tuned threshold and box scale
            at = {"conf": float(tuned.best["conf"]), "box_scale": float(tuned.best["scale"])}
            torch_raw = raw
        same, total = matched_boxes(torch_raw, raw)
        write_submission(out / f"submission_{backend}.csv", ids, raw, **at)
        differ, beyond = differing_rows(out / "submission_torch.csv", out / f"submission_{backend}.csv")
        results[backend] = {"score": round(float(tuned.best["score"]), 4),
                            "score_heldout": None if tuned.score_heldout is None
                            else round(float(tuned.score_heldout), 4),
                            "conf": float(tuned.best["conf"]), "scale": float(tuned.best["scale"]),
                            "boxes": len(raw), "seconds": round(seconds, 1),
                            "boxes_matched": round(same / max(total, 1), 4), "rows_differing": differ,
                            "rows_beyond_tolerance": beyond}  # fmt: skip
    base = results["torch"]
    print(f"  {'backend':<14} {'mAP':>7} {'held out':>8} {'vs torch':>8} {'conf':>5} {'scale':>5} "
          f"{'boxes':>6} {'matched':>7} {'seconds':>7} {'rows differ':>11} {'beyond tol':>10}")  # fmt: skip
    for backend, r in results.items():
        held, ref = r["score_heldout"], base["score_heldout"]
        r["heldout_change"] = None if held is None or ref is None else round(held - ref, 4)
        change = "-" if r["heldout_change"] is None else f"{r['heldout_change']:+.4f}"
        print(f"  {backend:<14} {r['score']:7.4f} {held if held is not None else '-':>8} {change:>8} "
              f"{r['conf']:5.2f} {r['scale']:5.2f} {r['boxes']:6d} {r['boxes_matched']:7.1%} "
              f"{r['seconds']:7.1f} {r['rows_differing']:11d} {r['rows_beyond_tolerance']:10d}")  # fmt: skip
    print(json.dumps({"val_films": len(split.images), **results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
