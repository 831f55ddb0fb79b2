"""Test DICOMs to a submission on the CPU with each backend (PyTorch, ONNX Runtime, OpenVINO), against PyTorch
in the same run.

Steps, in ``--out`` (reused when present): a synthetic Kaggle download with ``--train-patients`` labelled
patients and ``--films`` test films (``--dicom-size`` px JPEG-Baseline DICOMs, 1024 like the challenge's), a
detector trained on it (``python -m train``, ``--model`` from its YAML, ``--epochs`` at ``--imgsz``; its
``kaggle.json`` is the tuned setting), its exports (``python -m analysis export RUN --format onnx|openvino``,
``--int8`` adds OpenVINO INT8). Then per backend:

- end to end: ``python -m analysis submit --weights RUN --from-run RUN --images FILMS --backend B`` in a
  child process of its own: its seconds, the same command's on one film (start-up: the libraries and the
  model), films/s without the start-up, peak resident memory of that process (``ru_maxrss``), the ratio of
  films/s to PyTorch's, and how many rows of the submission differ from PyTorch's;
- model only: in this process, every film decoded once beforehand, the model's ``predict`` (letterbox,
  inference, decoding and NMS) on batches of ``--batch``: films/s and ratio to PyTorch.

``torch`` is PyTorch as every command runs it: importing Ultralytics sets ``OMP_NUM_THREADS=1`` when it is
unset, so PyTorch computes on one thread, while ONNX Runtime and OpenVINO use every core.
``torch-threads`` is PyTorch again with ``OMP_NUM_THREADS`` set to the machine's cores (the child's
environment; ``torch.set_num_threads`` for the model-only figure), to tell the thread count from the
runtime.

Decoding (each film read and resized once, one thread) is timed too, as a share of PyTorch's end-to-end
time. Then where the decoding runs: ``predict_images`` in this process (decode ahead, model, fusion; no
start-up) for each backend with the films decoded ahead on threads (as every command does) and on
``--processes`` worker processes (``forkserver``, started before the clock), films/s each and whether the
boxes are the same. The last line is JSON. A model this briefly trained finds little: the timing and memory
mean something, the boxes do not (their equality is tested in ``tests/test_export.py``).

    python benchmarks/cpu_inference.py --out /tmp/cpu_inference [--films 1000] [--imgsz 256] [--int8] \
        [--processes N]
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

from benchmarks._steps import differing_rows, run_logged, runnable_backends, tiny_detector  # noqa: E402

PROG = "cpu_inference"


def model_only(run_dir: Path, films: list[Path], imgsz: int, batch: int, backends: list[str]) -> dict:
    """Films/s of each backend's model on films decoded beforehand (and the decode's own seconds)."""
    from analysis.inference.export import exported_model
    from analysis.inference.predict import _predict_batch, load_model
    from rsna_yolo.core.films import load_image
    from rsna_yolo.core.runs import run_weights

    start = time.perf_counter()
    arrays = [load_image(f, imgsz)[0] for f in films]
    decode = time.perf_counter() - start
    weights = run_weights(run_dir)
    out = {"decode_s": decode}
    import torch

    one_thread = torch.get_num_threads()  # Ultralytics' OMP_NUM_THREADS=1
    for backend in backends:
        torch.set_num_threads(os.cpu_count() if backend == "torch-threads" else one_thread)
        path, _ = exported_model(weights, backend.removesuffix("-threads"), imgsz)
        model = load_model(path, backend.removesuffix("-threads"))
        _predict_batch([model], arrays[:batch], sizes=[imgsz], conf=0.01, tta=False, device="cpu")  # warm
        start = time.perf_counter()
        for k in range(0, len(arrays), batch):
            _predict_batch([model], arrays[k : k + batch], sizes=[imgsz], conf=0.01, tta=False, device="cpu")
        out[backend] = time.perf_counter() - start
    torch.set_num_threads(one_thread)
    return out


def decode_ahead(run_dir: Path, films: list[Path], imgsz: int, batch: int, backends: list[str],
                 processes: int) -> dict:  # fmt: skip
    """Films/s of ``predict_images`` with the decoding on threads and on worker processes, per backend."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from analysis.inference.predict import predict_images
    from rsna_yolo.core.films import load_image
    from rsna_yolo.core.runs import run_weights

    weights = run_weights(run_dir)
    context = multiprocessing.get_context("forkserver")  # no fork of a process running OpenVINO's threads
    context.set_forkserver_preload(["rsna_yolo.core.films"])
    out: dict[str, dict] = {}
    for backend in backends:
        kw = {"imgsz": imgsz, "batch": batch, "backend": backend, "progress": False, "device": "cpu"}
        predict_images([weights], films[:batch], **kw)  # the model loaded and warm
        start = time.perf_counter()
        threads = predict_images([weights], films, **kw)
        on_threads = time.perf_counter() - start
        with ProcessPoolExecutor(processes, mp_context=context) as pool:
            list(pool.map(load_image, films[:processes], [imgsz] * processes))  # the workers started
            start = time.perf_counter()
            procs = predict_images([weights], films, decode_pool=pool, **kw)
            on_processes = time.perf_counter() - start
        out[backend] = {"threads_films_per_s": round(len(films) / on_threads, 1),
                        "processes_films_per_s": round(len(films) / on_processes, 1),
                        "same_boxes": bool(threads.equals(procs))}  # fmt: skip
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "cpu_inference", help="work folder")
    p.add_argument("--films", type=int, default=1000, help="test DICOMs to predict")
    p.add_argument("--train-patients", type=int, default=40)
    p.add_argument("--dicom-size", type=int, default=1024, help="synthetic film size (px)")
    p.add_argument("--imgsz", type=int, default=256, help="training and inference size")
    p.add_argument("--model", default="yolov8n.yaml")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=16, help="images per inference batch")
    p.add_argument(
        "--backends",
        default="torch,torch-threads,onnx,openvino,openvino-bf16",
        help="comma-separated; torch always runs",
    )
    p.add_argument("--int8", action="store_true", help="also OpenVINO INT8 (calibrated on the training set)")
    p.add_argument(
        "--processes",
        type=int,
        default=os.cpu_count(),
        help="worker processes decoding ahead, against the commands' threads (default: the cores)",
    )
    a = p.parse_args()
    out = a.out.resolve()
    backends = ["torch", *(b for b in a.backends.split(",") if b and b != "torch")]
    backends = runnable_backends(backends + (["openvino-int8"] if a.int8 else []))
    py = sys.executable
    kaggle, _, run_dir = tiny_detector(
        out, synth=["--patients", a.train_patients, "--test-patients", a.films, "--seed", 0, "--imgsz",
                    a.dicom_size], imgsz=a.imgsz, train=[f"model={a.model}", f"epochs={a.epochs}", "batch=8"],
        name="det", prog=PROG)  # fmt: skip
    exports = {(b.partition("-")[0], b.endswith("-int8")) for b in backends if not b.startswith("torch")}
    for fmt, int8 in sorted(exports):  # openvino and openvino-bf16 run the same export
        extra = ["--int8"] if int8 else []
        run_logged([py, "-m", "analysis", "export", run_dir, "--format", fmt, *extra],
                   out / f"export_{fmt}{''.join(extra)}.log", prog=PROG)  # fmt: skip
    films = sorted((kaggle / "stage_2_test_images").glob("*.dcm"))[: a.films]
    folder, one = out / f"films{len(films)}", out / "one_film"
    for place, chosen in ((folder, films), (one, films[:1])):
        if not place.is_dir():
            place.mkdir(parents=True)
            for film in chosen:
                (place / film.name).symlink_to(film)
    print(f"test DICOMs ({len(films)}, {a.dicom_size} px) to a submission: {a.model} at {a.imgsz} px, batch "
          f"{a.batch}; {os.cpu_count()} cores")  # fmt: skip
    results: dict[str, dict] = {}
    for backend in backends:
        sub = out / f"submission_{backend}.csv"
        cmd = [py, "-m", "analysis", "submit", "--weights", run_dir, "--from-run", run_dir,
               "--images", folder, "--out", sub,
               "--batch", a.batch, "--backend", backend.removesuffix("-threads"), "--quiet",
               "--device", "cpu"]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(os.cpu_count())} if backend == "torch-threads" else None
        seconds, peak = run_logged(cmd, out / f"submit_{backend}.log", prog=PROG, env=env)
        start_up, _ = run_logged([*cmd[:9], one, "--out", out / f"one_{backend}.csv", *cmd[12:]],
                                 out / f"start_{backend}.log", prog=PROG, env=env)  # fmt: skip
        differ, beyond = differing_rows(out / "submission_torch.csv", sub)
        net = seconds - start_up  # at a few films the start-up's own spread can exceed it: no rate then
        results[backend] = {"seconds": round(seconds, 1), "start_up_s": round(start_up, 1),
                            "films_per_s": round(len(films) / net, 1) if net > 0 else None,
                            "peak_rss_mb": round(peak, 1), "rows_differing": differ,
                            "rows_beyond_tolerance": beyond}  # fmt: skip
    timing = model_only(run_dir, films, a.imgsz, a.batch, backends)
    base = results["torch"]["films_per_s"]
    print(f"  {'backend':<14} {'seconds':>8} {'start-up':>8} {'films/s':>8} {'x torch':>8} {'peak MB':>8} "
          f"{'rows differ':>11} {'beyond tol':>10} {'model films/s':>13} {'x torch':>8}")  # fmt: skip
    for backend, r in results.items():
        r["ratio"] = round(r["films_per_s"] / base, 2) if base and r["films_per_s"] else None
        r["model_films_per_s"] = round(len(films) / timing[backend], 1)
        r["model_ratio"] = round(timing["torch"] / timing[backend], 2)
        rate = "-" if r["films_per_s"] is None else f"{r['films_per_s']:.1f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"  {backend:<14} {r['seconds']:8.1f} {r['start_up_s']:8.1f} {rate:>8} {ratio:>8} "
              f"{r['peak_rss_mb']:8.1f} {r['rows_differing']:11d} {r['rows_beyond_tolerance']:10d} "
              f"{r['model_films_per_s']:13.1f} {r['model_ratio']:8.2f}")  # fmt: skip
    net = results["torch"]["seconds"] - results["torch"]["start_up_s"]
    share = f"{timing['decode_s'] / net:.0%}" if net > 0 else "- (no time left after the start-up)"
    print(f"  decoding alone (one thread): {timing['decode_s']:.1f} s, {share} of PyTorch's time without "
          f"start-up")  # fmt: skip
    plain = [b for b in backends if not b.endswith("-threads")]
    ahead = decode_ahead(run_dir, films, a.imgsz, a.batch, plain, max(1, a.processes))
    print(f"  decoding ahead, in this process without start-up: threads (the commands) or {a.processes} "
          f"worker processes")  # fmt: skip
    print(f"  {'backend':<14} {'threads films/s':>15} {'processes films/s':>17} {'x threads':>9} "
          f"{'same boxes':>10}")  # fmt: skip
    for backend, r in ahead.items():
        ratio = r["processes_films_per_s"] / r["threads_films_per_s"]
        print(f"  {backend:<14} {r['threads_films_per_s']:15.1f} {r['processes_films_per_s']:17.1f} "
              f"{ratio:9.2f} {'yes' if r['same_boxes'] else 'NO':>10}")  # fmt: skip
    load = os.getloadavg()[1]  # over the last 5 minutes: other work on the cores moves these figures
    print(f"  load average over the last 5 minutes: {load:.2f} on {os.cpu_count()} cores")
    print(json.dumps({"films": len(films), "decode_s": round(timing["decode_s"], 2), "load_5min": load,
                      **results, "decode_ahead": ahead}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
