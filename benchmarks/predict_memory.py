"""Peak memory and speed of ``rsna-yolo predict`` as the number of films grows, against the smallest size in
the same run.

Steps, in ``--out`` (reused when present): a synthetic Kaggle download with ``--train-patients`` labelled
patients and as many test films as the largest size (``--dicom-size`` px JPEG-Baseline DICOMs), a tiny
detector trained on it (``python -m train``, yolov8n from scratch, 1 epoch at ``--imgsz``; its
``kaggle.json`` is the tuned setting), then for each size N a folder of N of the test films and ``python -m
analysis predict RUN --images FOLDER`` in a child process of its own (annotated PNGs at ``--draw`` px, 10
cards). Printed per size: seconds, films/s, the child's peak resident memory (``ru_maxrss`` of that
process) and its ratio to the smallest size's: flat memory is a ratio near 1 while the films grow tenfold.
The last line is JSON. The model is untrained in all but name: the boxes mean nothing, the memory and the
time do.

    python benchmarks/predict_memory.py --out /tmp/predict_memory [--sizes 1000,10000] [--dicom-size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._steps import run_logged, tiny_detector  # noqa: E402

PROG = "predict_memory"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "predict_memory", help="work folder")
    p.add_argument("--sizes", default="1000,10000", help="films per prediction, comma-separated")
    p.add_argument("--train-patients", type=int, default=24)
    p.add_argument("--dicom-size", type=int, default=128, help="synthetic film size (px)")
    p.add_argument("--imgsz", type=int, default=64, help="training and inference size")
    p.add_argument("--draw", type=int, default=64, help="annotated PNG size (predict --size)")
    a = p.parse_args()
    sizes = sorted({int(s) for s in a.sizes.split(",") if s})
    out = a.out.resolve()
    py = sys.executable
    kaggle, _, run_dir = tiny_detector(
        out, synth=["--patients", a.train_patients, "--test-patients", max(sizes), "--seed", 0, "--imgsz",
                    a.dicom_size], imgsz=a.imgsz, train=["model=yolov8n.yaml", "epochs=1", "batch=8"],
        name="tiny", prog=PROG)  # fmt: skip
    films = sorted((kaggle / "stage_2_test_images").glob("*.dcm"))
    print(f"rsna-yolo predict on synthetic {a.dicom_size}-px DICOMs, a tiny yolov8n at {a.imgsz} px, "
          f"annotated PNGs at {a.draw} px; {os.cpu_count()} cores")  # fmt: skip
    results = {}
    for n in sizes:
        folder = out / f"films{n}"
        if not folder.is_dir():
            folder.mkdir(parents=True)
            for film in films[:n]:
                (folder / film.name).symlink_to(film)
        pred = out / f"predicted{n}"
        cmd = [py, "-m", "analysis", "predict", str(run_dir), "--images", str(folder), "--out", str(pred),
               "--size", str(a.draw), "--cards", "10", "--quiet"]  # fmt: skip
        seconds, peak = run_logged(cmd, out / f"predict{n}.log", prog=PROG)
        results[n] = {"films": n, "seconds": round(seconds, 1), "films_per_s": round(n / seconds, 1),
                      "peak_rss_mb": round(peak, 1)}  # fmt: skip
    base = results[sizes[0]]["peak_rss_mb"]
    print(f"  {'films':>7} {'seconds':>8} {'films/s':>8} {'peak MB':>8} {'x smallest':>10}")
    for r in results.values():
        r["rss_ratio"] = round(r["peak_rss_mb"] / base, 2)
        print(f"  {r['films']:7d} {r['seconds']:8.1f} {r['films_per_s']:8.1f} {r['peak_rss_mb']:8.1f} "
              f"{r['rss_ratio']:10.2f}")  # fmt: skip
    print(json.dumps({str(k): v for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
