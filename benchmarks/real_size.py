"""Every step after training at the real size of the challenge (26,684 labelled + 3,000 test images),
timed, with its peak memory, on the CPU and without a GPU.

The workload, built once per size and cached in ``--work`` (reruns reuse it):

- a synthetic download of ``N`` labelled + ``--test-patients`` test patients (``python -m convert synth``,
  DICOMs of ``--dicom-size`` px) converted with 5 folds and the classification view at ``--imgsz``
  (``python -m convert rsna --folds 5 --classify``);
- predictions GENERATED with the shape of a detector's at conf >= 0.01, not from a trained model: 5-25
  boxes per image and part, each part (model x flip) a jittered copy of one set of candidate boxes per
  image (so parts overlap as flip TTA does), noisy copies of the truth boxes with high confidence on Lung
  Opacity films, scattered boxes with low confidence everywhere; a generated P(opacity) per image. Out of
  fold: every labelled image with 2 parts (one fold model + its flip); the test set: 10 parts (5 folds x
  flip). The scores these give say nothing about a model.

Steps (each in a fresh Python process, so each has its own peak): rescore of one run (fold 0's val
images: read ``predictions_val.csv`` and the truth, threshold x box scale with the breakdown and held-out
score, write ``kaggle.json``), its gate; out-of-fold tuning of the 5-fold set with TTA: WBF
(:func:`analysis.tuning.wbf.tune_wbf`, a step of its own), threshold x box scale, gate; ``submit`` of the
test images from the 5-fold TTA ensemble with a classifier (fusion image by image as ``predict_images``
does, gate, :func:`write_submission`, :func:`validate_submission`; inference is measured apart, per image,
on untrained ``yolo11n.yaml`` / ``yolo11n-cls.yaml`` models at ``--imgsz``); ``compare`` over 50 run
folders; ``show``; EDA; ``convert check`` of the whole set.

Time: wall seconds of the step alone (its inputs are loaded first, untimed), and its CPU seconds (user +
system, of its process and the workers it forked): on a machine shared with other work the wall time
grows, the CPU time much less. Memory: the peak resident set
(``VmHWM`` of ``/proc/self/status``) of the step's process, which includes the interpreter and the step's
inputs (``base`` is the resident set just before the timer); ``workers`` is the largest peak RSS of a
worker process the step forked (WBF tuning; pages shared with the step's process counted in both), not
included in ``peak``. Baseline measured in the same run: the WBF fusion
this replaced (pandas groupby + ``ensemble_boxes`` image by image, the copy kept in ``tests/test_wbf.py``)
on ``--baseline-images`` images, extrapolated to the grid.

    python benchmarks/real_size.py --work /tmp/real_size --sizes 3000,10000,26684

It prints a table per size and, as its last line, one JSON object: ``{"<step>@<size>": {"seconds",
"peak_mb", ...}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._steps import run_logged  # noqa: E402
from rsna_yolo import offline  # noqa: E402,F401  (before anything imports ultralytics)

TEST_PATIENTS = 3000
FOLDS = 5
N_RUNS = 50
STEPS = (
    "rescore_run",
    "gate_run",
    "oof_wbf_tuning",
    "oof_threshold",
    "oof_gate",
    "submit",
    "submit_batched",
    "compare",
    "show",
    "eda",
    "convert_check",
)
POST_TRAINING = tuple(s for s in STEPS if s != "submit_batched")
"""Steps summed into "the whole post-training path" (inference is reported apart); ``submit_batched`` is
``submit`` with the test images fused 16 at a time by :func:`analysis.record.fusion.fuse_batch` (what
``predict_images`` does with each batch since this benchmark was written) instead of image by image with
``ensemble_boxes`` (what it did before), shown beside it."""


def step(cmd: list, log: Path) -> float:
    """One setup command of the benchmark (printed, logged): its wall seconds."""
    return run_logged(cmd, log, prog="real_size", echo=True)[0]


def build_dataset(work: Path, n: int, a) -> dict:
    """The synthetic download and its conversion for ``n`` labelled patients, reused when present."""
    d = work / f"n{n}"
    kaggle, ds = d / "kaggle", d / "ds"
    times = {}
    if not (kaggle / "stage_2_train_labels.csv").is_file():
        times["synth_s"] = step(
            [
                sys.executable,
                "-m",
                "convert",
                "synth",
                "--out",
                kaggle,
                "--patients",
                n,
                "--test-patients",
                a.test_patients,
                "--imgsz",
                a.dicom_size,
                "--workers",
                a.workers,
                "--seed",
                0,
            ],
            d / "synth.log",
        )
    if not (ds / "report.json").is_file():
        times["convert_s"] = step(
            [
                sys.executable,
                "-m",
                "convert",
                "rsna",
                "--src",
                kaggle,
                "--out",
                ds,
                "--imgsz",
                a.imgsz,
                "--folds",
                FOLDS,
                "--classify",
                "--no-progress",
            ],
            d / "convert.log",
        )
    return times


# ---------------------------------------------------------------- generated predictions


def _candidates(rng, truth_xywh: list, rows, cols, n_cand: int = 25):
    """Per image ``(n_cand, 4)`` xywh_px candidate boxes and base confidences: noisy truth copies first
    (confident), then scattered boxes (unsure)."""
    import numpy as np

    n = len(rows)
    size = np.stack([cols, rows, cols, rows], axis=1).astype(np.float64)[:, None, :]
    centre = rng.uniform(0.15, 0.85, (n, n_cand, 2))
    wh = rng.uniform(0.08, 0.35, (n, n_cand, 2))
    boxes = np.concatenate([centre - wh / 2, wh], axis=2) * size
    conf = 0.01 + 0.99 * rng.beta(1.1, 9.0, (n, n_cand))
    for i, g in enumerate(truth_xywh):
        k = min(len(g), n_cand)
        if k:
            wh2 = np.concatenate([g[:k, 2:], g[:k, 2:]], axis=1)
            boxes[i, :k] = g[:k] + rng.normal(0, 0.08, (k, 4)) * wh2
            conf[i, :k] = rng.beta(5, 2, k)
    return boxes, conf


def generated_parts(rng, ids, truth_xywh, manifest_rows, n_parts: int):
    """PART_COLUMNS rows: per image and part 5-25 boxes, each part a jittered copy of the candidates."""
    import numpy as np
    import pandas as pd

    from analysis.inference.predict import PART_COLUMNS

    rows_px = manifest_rows["rows"].to_numpy(np.float64)
    cols_px = manifest_rows["cols"].to_numpy(np.float64)
    png_scale = manifest_rows["scale"].to_numpy(np.float64)
    boxes, conf = _candidates(rng, truth_xywh, rows_px, cols_px)
    n, n_cand = conf.shape
    frames = []
    png_w, png_h = np.rint(cols_px * png_scale), np.rint(rows_px * png_scale)
    for part in range(n_parts):
        k = rng.integers(5, 26, n)
        keep = np.arange(n_cand)[None, :] < k[:, None]
        jitter = rng.normal(0, 0.02, boxes.shape) * np.stack([cols_px, rows_px] * 2, axis=1)[:, None, :]
        b = (boxes + jitter)[keep]
        c = np.clip(conf[keep] * rng.uniform(0.85, 1.15, keep.sum()), 0.01, 1.0)
        img = np.nonzero(keep)[0]
        s = png_scale[img]
        xyxy = np.stack([b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]], axis=1) * s[:, None]
        frames.append(
            pd.DataFrame(
                {
                    "patientId": np.asarray(ids, dtype=object)[img],
                    "part": part,
                    "conf": c,
                    "x1": xyxy[:, 0],
                    "y1": xyxy[:, 1],
                    "x2": xyxy[:, 2],
                    "y2": xyxy[:, 3],
                    "png_width": png_w[img].astype(int),
                    "png_height": png_h[img].astype(int),
                    "png_scale": s,
                }
            )
        )
    parts = pd.concat(frames, ignore_index=True)[PART_COLUMNS]
    return parts.sort_values(["patientId", "part"], kind="stable").reset_index(drop=True)


def make_inputs(work: Path, n: int) -> Path:
    """Generated predictions and probabilities of size ``n`` in ``work/n<n>/bench`` (reused)."""
    import numpy as np
    import pandas as pd

    from analysis.scoring.truth import dataset_truth
    from rsna_yolo.core.io import write_csv_atomic, write_json_atomic
    from rsna_yolo.core.layout import PRED_COLUMNS, read_dataset

    d = work / f"n{n}"
    bench = d / "bench"
    if (bench / "inputs.json").is_file():
        return bench
    bench.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    root, manifest = read_dataset(d / "ds" / "data.yaml")
    labelled = manifest[manifest["split"] != "test"].reset_index(drop=True)
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    gt = dataset_truth(root, manifest, None)
    ids = labelled["patientId"].astype(str).tolist()
    oof_parts = generated_parts(rng, ids, [gt.truth[i] for i in ids], labelled, 2)
    # test films have no truth: some get made-up opacities (a fraction of the film) for confident boxes
    size = test[["cols", "rows", "cols", "rows"]].to_numpy(np.float64)
    fake = [
        rng.uniform([0.15, 0.15, 0.1, 0.1], [0.6, 0.6, 0.3, 0.3], (int(rng.integers(0, 3)), 4)) * size[i]
        for i in range(len(test))
    ]
    test_parts = generated_parts(rng, test["patientId"].astype(str).tolist(), fake, test, 2 * FOLDS)
    positive = np.array([len(gt.truth[i]) > 0 for i in ids])
    p_oof = np.where(positive, rng.beta(4, 2, len(ids)), rng.beta(2, 4, len(ids)))
    p_test = rng.beta(2, 3, len(test))
    # one run: fold 0's model on the val split (fold 0), its own boxes (part 0), in the source frame
    val = set(labelled.loc[labelled["split"] == "val", "patientId"].astype(str))
    one = oof_parts[(oof_parts["part"] == 0) & oof_parts["patientId"].isin(val)]
    s = one["png_scale"].to_numpy()
    run_preds = pd.DataFrame(
        {
            "patientId": one["patientId"].to_numpy(),
            "conf": one["conf"].to_numpy(),
            "x": one["x1"].to_numpy() / s,
            "y": one["y1"].to_numpy() / s,
            "width": (one["x2"] - one["x1"]).to_numpy() / s,
            "height": (one["y2"] - one["y1"]).to_numpy() / s,
        }
    )[PRED_COLUMNS]
    run_dir = bench / "runs" / "fold0"
    write_csv_atomic(run_preds, run_dir / "predictions_val.csv")
    big = {
        "oof_parts": oof_parts,
        "test_parts": test_parts,
        "p_oof": dict(zip(ids, p_oof.tolist(), strict=True)),
        "p_test": dict(zip(test["patientId"].astype(str), p_test.tolist(), strict=True)),
    }
    for key, value in big.items():  # one file each: a step loads only what it uses
        with open(bench / f"{key}.pkl", "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
    make_runs(bench / "compare_runs", N_RUNS, rng)
    write_json_atomic(
        {
            "data": str(d / "ds" / "data.yaml"),
            "kaggle": str(d / "kaggle"),
            "run_dir": str(run_dir),
            "test_images": str(root / "images" / "test"),
            "n_labelled": len(ids),
            "n_test": len(test),
            "oof_boxes": len(oof_parts),
            "test_boxes": len(test_parts),
        },
        bench / "inputs.json",
    )
    return bench


def make_runs(folder: Path, n_runs: int, rng) -> None:
    """``n_runs`` run folders as a sweep leaves them: Ultralytics' full ``args.yaml`` (lr0, optimizer and
    epochs varied), a 30-epoch ``results.csv`` and a ``kaggle.json``."""
    import numpy as np
    import pandas as pd
    import yaml
    from ultralytics.cfg import DEFAULT_CFG_DICT

    from analysis.record.setting import TunedSetting
    from rsna_yolo.core.runs import KAGGLE_JSON

    for k in range(n_runs):
        run = folder / f"run{k:02d}"
        run.mkdir(parents=True, exist_ok=True)
        args = {
            **DEFAULT_CFG_DICT,
            "model": "yolo11n.yaml",
            "data": "data.yaml",
            "epochs": 30,
            "lr0": float(rng.choice([0.001, 0.01, 0.02])),
            "optimizer": str(rng.choice(["SGD", "AdamW"])),
            "name": run.name,
        }
        (run / "args.yaml").write_text(yaml.safe_dump(args, sort_keys=False))
        e = np.arange(1, 31)
        m50 = np.clip(0.6 * (1 - np.exp(-e / rng.uniform(4, 12))) + rng.normal(0, 0.01, 30), 0, 1)
        pd.DataFrame(
            {
                "epoch": e,
                "time": e * 60.0,
                "train/box_loss": 2.0 / e**0.3,
                "train/cls_loss": 3.0 / e**0.4,
                "train/dfl_loss": 1.5 / e**0.2,
                "metrics/precision(B)": m50,
                "metrics/recall(B)": m50,
                "metrics/mAP50(B)": m50,
                "metrics/mAP50-95(B)": m50 / 2,
                "val/box_loss": 2.1 / e**0.3,
                "val/cls_loss": 3.1 / e**0.4,
                "val/dfl_loss": 1.6 / e**0.2,
                "lr/pg0": 0.01,
                "lr/pg1": 0.01,
                "lr/pg2": 0.01,
            }
        ).to_csv(run / "results.csv", index=False)
        score = float(rng.uniform(0.1, 0.3))
        setting = TunedSetting(weights=(run / "weights" / "best.pt",), conf=0.3, box_scale=0.9)
        setting.to_json(
            run / KAGGLE_JSON, split="val", data="data.yaml", n_images=5337, score=score,
            map50=float(m50[-1]), map50_95=float(m50[-1] / 2),
            sweep=[{"conf": 0.3, "scale": 0.9, "score": score}],
        )  # fmt: skip


# ---------------------------------------------------------------- the steps (each in its own process)


class _Inputs(dict):
    """``inputs.json`` plus the pickled frames and maps, each read when first used."""

    def __init__(self, bench: Path):
        super().__init__(json.loads((bench / "inputs.json").read_text()))
        self.bench = bench

    def __missing__(self, key: str):
        with open(self.bench / f"{key}.pkl", "rb") as fh:
            self[key] = pickle.load(fh)
        return self[key]


def _load(bench: Path) -> _Inputs:
    return _Inputs(bench)


def _truth(data: str, split: str | None):
    from analysis.scoring.truth import dataset_truth
    from rsna_yolo.core.layout import read_dataset

    root, manifest = read_dataset(Path(data))
    return dataset_truth(root, manifest, split)


def prepare(step: str, bench: Path) -> tuple:
    """The step's inputs, loaded before its timer starts; returns the timed function (it returns a note)."""
    import pandas as pd

    inp = _load(bench)
    oof_setting = {"iou_thr": 0.55, "skip_box_thr": 0.01, "conf_type": "avg"}
    if step == "rescore_run":
        from analysis.record.setting import TunedSetting
        from analysis.tuning.tuner import tune
        from rsna_yolo.core.runs import KAGGLE_JSON

        run_dir = Path(inp["run_dir"])

        def go():
            gt = _truth(inp["data"], "val")
            preds = pd.read_csv(run_dir / "predictions_val.csv", dtype={"patientId": str})
            tuned = tune(gt, preds)
            setting = TunedSetting(weights=(Path("generated"),), conf=tuned.best["conf"],
                                   box_scale=tuned.best["scale"])  # fmt: skip
            setting.to_json(
                run_dir / KAGGLE_JSON, split="val", data=inp["data"], n_images=len(gt.truth),
                score=tuned.score, sweep=tuned.table.to_dict(orient="records"), breakdown=tuned.breakdown,
                predictions="predictions_val.csv",
            )  # fmt: skip
            return f"{len(gt.truth)} images, {len(preds)} boxes"

        return go
    if step == "gate_run":
        from analysis.tuning.tuner import tune_gate

        gt = _truth(inp["data"], "val")
        preds = pd.read_csv(Path(inp["run_dir"]) / "predictions_val.csv", dtype={"patientId": str})
        p = {k: inp["p_oof"][k] for k in gt.truth}
        return lambda: (tune_gate(gt, preds, p), f"{len(gt.truth)} images")[1]
    if step == "oof_wbf_tuning":
        from analysis.tuning.wbf import tune_wbf

        gt = _truth(inp["data"], None)
        parts = inp["oof_parts"]

        def go():
            best, table, frame = tune_wbf(gt.truth, parts)
            return (
                f"{len(gt.truth)} images x 2 parts, {len(parts)} boxes, {len(table)} settings -> "
                f"{best['iou_thr']}/{best['skip_box_thr']}/{best['conf_type']}, {len(frame)} fused boxes"
            )

        return go
    if step in ("oof_threshold", "oof_gate"):
        from analysis.tuning.tuner import tune, tune_gate
        from analysis.tuning.wbf import fuse_parts

        gt = _truth(inp["data"], None)
        frame = fuse_parts(inp["oof_parts"], **oof_setting)
        if step == "oof_threshold":
            return lambda: (tune(gt, frame), f"{len(gt.truth)} images, {len(frame)} fused boxes")[1]
        return lambda: (tune_gate(gt, frame, inp["p_oof"]), f"{len(gt.truth)} images")[1]
    if step in ("submit", "submit_batched"):
        import numpy as np

        from analysis.inference.predict import fuse
        from analysis.record.gate import apply_gate
        from analysis.scoring.submission import validate_submission, write_submission
        from rsna_yolo.core.boxes import xyxy_to_xywh
        from rsna_yolo.core.layout import PRED_COLUMNS

        parts: pd.DataFrame = inp["test_parts"]
        n_parts = int(parts["part"].max()) + 1
        # what the models hand predict_images for each image: one (xyxy, conf) per model x flip
        per_image = []
        for pid, g in parts.groupby("patientId", sort=False):
            w, h, s = g[["png_width", "png_height", "png_scale"]].iloc[0]
            sets = [
                (q[["x1", "y1", "x2", "y2"]].to_numpy(np.float64), q["conf"].to_numpy(np.float64))
                for _, q in g.groupby("part")
            ]
            sets += [(np.zeros((0, 4)), np.zeros(0))] * (n_parts - len(sets))
            per_image.append((pid, int(w), int(h), float(s), sets))
        out = bench / f"{step}.csv"
        images = Path(inp["test_images"])

        def fused_images():
            """(pid, png_scale, xyxy px, conf) per image: image by image (as predict_images fused before),
            or a batch at a time (as it does now)."""
            if step == "submit":
                for pid, w, h, s, sets in per_image:
                    yield (pid, s, *fuse(sets, w, h, conf=0.01, **oof_setting))
                return
            from analysis.record.fusion import fuse_batch

            for k in range(0, len(per_image), 16):  # predict_images' batch
                chunk = per_image[k : k + 16]
                fused = fuse_batch(
                    [c[4] for c in chunk], [(c[1], c[2]) for c in chunk], conf=0.01, **oof_setting
                )
                yield from ((c[0], c[3], *f) for c, f in zip(chunk, fused, strict=True))

        def go():
            rows = []
            for pid, s, xyxy, conf in fused_images():
                keep = conf >= 0.01
                xywh = xyxy_to_xywh(xyxy[keep] / s)
                rows += [(pid, float(c), *map(float, b)) for c, b in zip(conf[keep], xywh, strict=True)]
            frame = pd.DataFrame(rows, columns=PRED_COLUMNS)
            gated = apply_gate(frame, inp["p_test"], mode="hard", gate=0.3)
            write_submission(out, [p for p, *_ in per_image], gated, conf=0.3, box_scale=0.9)
            sub = validate_submission(out, images)
            n_images = len(per_image)
            note = f"{n_images} images x {n_parts} parts, {len(frame)} fused boxes, {len(sub.boxes)} written"
            other = bench / "submit.csv"
            if step == "submit_batched" and other.is_file():
                note += f"; same file as submit: {other.read_bytes() == out.read_bytes()}"
            return note

        return go
    if step == "compare":
        from analysis.reports.compare import run_compare

        folder = bench / "compare_runs"
        return lambda: (
            run_compare([folder], bench / "compare_out", rescore=False, progress=False),
            f"{N_RUNS} runs",
        )[1]
    if step == "show":
        from analysis.reports.show import run_show

        run_dir = Path(inp["run_dir"])
        if not (run_dir / "kaggle.json").is_file():
            raise SystemExit("show needs rescore_run's kaggle.json: run rescore_run first")
        return lambda: (
            run_show(run_dir, "val", data=Path(inp["data"]), out=bench / "show_out", progress=False),
            "12 worst per kind",
        )[1]
    if step == "eda":
        from analysis.reports.eda import run_eda

        return lambda: (run_eda(Path(inp["kaggle"]), bench / "eda_out", progress=False), "")[1]
    if step == "convert_check":
        from convert.check import check_dataset

        ds = Path(inp["data"]).parent

        def go():
            result = check_dataset(ds)
            return f"{'ok' if result.ok else f'{len(result.problems)} problems'}"

        return go
    raise SystemExit(f"unknown step {step}")


def _status_mb(key: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process in MB, from ``/proc/self/status``. Not
    ``getrusage``'s ``ru_maxrss``: Linux keeps that across ``exec``, so a step would inherit the peak of
    the process that started it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(step: str, bench: Path) -> None:
    """Run one step in this process; print one JSON line with its time and memory."""
    go = prepare(step, bench)

    def cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    base = _status_mb("VmRSS")
    cpu_start = cpu()
    start = time.perf_counter()
    note = go()
    seconds = time.perf_counter() - start
    cpu_s = cpu() - cpu_start
    peak = _status_mb("VmHWM")
    # forked workers (WBF tuning): their largest peak RSS, pages shared with this process included
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "cpu_s": round(cpu_s, 1),
                "peak_mb": round(peak),
                "base_mb": round(base),
                "workers_peak_mb": round(workers),
                "note": note,
            }
        )
    )


def run_step(step: str, bench: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", step, "--bench", str(bench)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        print(f"  {step}: FAILED: {' | '.join(tail)}", flush=True)
        return {"seconds": None, "peak_mb": None, "note": "failed: " + (tail[-1] if tail else "")}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- baseline and inference


def baseline_fusion(bench: Path, n_images: int) -> dict:
    """ms per image of one fusion setting: the replaced per-image implementation on ``n_images`` images vs
    :mod:`analysis.record.fusion` on all of them."""
    import importlib.util

    from analysis.tuning.wbf import fuse_parts

    spec = importlib.util.spec_from_file_location("test_wbf", REPO / "tests" / "test_wbf.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    parts = _load(bench)["oof_parts"]
    ids = parts["patientId"].drop_duplicates()
    sample = parts[parts["patientId"].isin(set(ids.iloc[:n_images]))]
    setting = {"iou_thr": 0.55, "skip_box_thr": 0.01, "conf_type": "avg"}
    start = time.perf_counter()
    old = ref.old_fuse_parts(sample, **setting)
    old_ms = (time.perf_counter() - start) * 1000 / min(n_images, len(ids))
    start = time.perf_counter()
    new = fuse_parts(parts, **setting)
    new_ms = (time.perf_counter() - start) * 1000 / len(ids)
    same = new[new["patientId"].isin(set(old["patientId"]))].reset_index(drop=True)
    equal = len(same) == len(old) and bool(
        (same[old.columns[1:]].to_numpy() == old[old.columns[1:]].to_numpy()).all()
    )
    return {
        "old_ms_per_image": old_ms,
        "new_ms_per_image": new_ms,
        "sample": min(n_images, len(ids)),
        "equal": equal,
        "images": len(ids),
    }


def inference_per_image(bench: Path, imgsz: int, n: int = 64) -> dict:
    """ms per test image and pass of an untrained yolo11n detector (+ flip) and yolo11n-cls classifier at
    ``imgsz`` on the CPU (batch 16, PNG decode included), after a warm-up; a 5-fold TTA ensemble with a
    5-fold classifier set runs 10 detector passes and 5 classifier passes per image."""
    from ultralytics import YOLO

    from analysis.inference.predict import predict_images

    images = sorted(Path(_load(bench)["test_images"]).glob("*.png"))[:n]
    det = bench / "yolo11n_untrained.pt"
    YOLO("yolo11n.yaml").save(str(det))  # predict_images loads weights from a path
    cls = YOLO("yolo11n-cls.yaml")
    kw = {"imgsz": imgsz, "batch": 16, "progress": False}
    try:
        predict_images([det], images[:16], conf=0.01, **kw)  # a floor keyword may be renamed: both tried
    except TypeError:
        kw_det = {**kw, "floor": 0.01}
    else:
        kw_det = {**kw, "conf": 0.01}
    start = time.perf_counter()
    predict_images([det], images, tta=True, **kw_det)
    det_ms = (time.perf_counter() - start) * 1000 / len(images) / 2
    cls(images[:16], imgsz=imgsz, verbose=False)
    start = time.perf_counter()
    for k in range(0, len(images), 16):
        cls([str(p) for p in images[k : k + 16]], imgsz=imgsz, verbose=False)
    cls_ms = (time.perf_counter() - start) * 1000 / len(images)
    return {
        "detector_pass_ms": det_ms,
        "classifier_pass_ms": cls_ms,
        "ensemble_ms_per_image": 2 * FOLDS * det_ms + FOLDS * cls_ms,
        "images": len(images),
    }


# ---------------------------------------------------------------- main


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--work", type=Path, default=REPO / "runs" / "real_size", help="cache of datasets and inputs"
    )
    p.add_argument(
        "--sizes", default="26684", help="labelled patients, comma-separated (e.g. 3000,10000,26684)"
    )
    p.add_argument("--test-patients", type=int, default=TEST_PATIENTS)
    p.add_argument("--imgsz", type=int, default=64, help="PNG size of the conversion")
    p.add_argument("--dicom-size", type=int, default=128, help="synthetic DICOM size")
    p.add_argument("--workers", type=int, default=2, help="processes of the synthetic generation")
    p.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset of the steps")
    p.add_argument("--baseline-images", type=int, default=300)
    p.add_argument("--no-inference", action="store_true", help="skip the inference timing")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--bench", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, a.bench)
        return 0
    started = time.perf_counter()
    work = a.work.resolve()
    steps = [s for s in a.steps.split(",") if s]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise SystemExit(f"--steps: unknown {', '.join(unknown)} (known: {', '.join(STEPS)})")
    print(
        f"rsna-yolo after training at the real size; {os.cpu_count()} CPU cores; predictions GENERATED "
        "with the shape of a detector's at conf >= 0.01 (5-25 boxes per image and part), not from a model"
    )
    results: dict[str, dict] = {}
    for n in [int(s) for s in a.sizes.split(",") if s]:
        setup = build_dataset(work, n, a)
        t = time.perf_counter()
        bench = make_inputs(work, n)
        sizes = json.loads((bench / "inputs.json").read_text())
        inp_s = time.perf_counter() - t
        print(
            f"\n== {n:,} labelled + {a.test_patients:,} test patients (PNG {a.imgsz} px); setup "
            + ", ".join(f"{k} {v:.0f} s" for k, v in {**setup, "inputs_s": inp_s}.items())
            + f"; out of fold {sizes['oof_boxes']:,} boxes in 2 parts, test {sizes['test_boxes']:,} boxes "
            f"in {2 * FOLDS} parts",
            flush=True,
        )
        head = f"{'seconds':>8} {'CPU s':>7} {'peak MB':>8} {'base MB':>8} {'workers MB':>10}"
        print(f"  {'step':<16} {head}  what")
        for step in steps:
            r = run_step(step, bench)
            results[f"{step}@{n}"] = r
            print(
                f"  {step:<16} {fmt(r['seconds'], '8.1f')} {fmt(r.get('cpu_s'), '7.1f')} "
                f"{fmt(r['peak_mb'], '8d')} {fmt(r.get('base_mb'), '8d')} "
                f"{fmt(r.get('workers_peak_mb'), '10d')}  {r['note']}",
                flush=True,
            )
        done = [results[f"{s}@{n}"] for s in steps if s in POST_TRAINING and results[f"{s}@{n}"]["seconds"]]
        total = sum(r["seconds"] for r in done)
        total_cpu = sum(r.get("cpu_s") or 0.0 for r in done)
        peak = max((r["peak_mb"] for r in done), default=0)
        print(f"  {'post-training':<16} {total:8.1f} {total_cpu:7.1f} {peak:8d}  (sum of the steps above but "
              "submit_batched; peak: the largest)")  # fmt: skip
        results[f"post_training@{n}"] = {
            "seconds": round(total, 1),
            "cpu_s": round(total_cpu, 1),
            "peak_mb": peak,
        }
        if "oof_wbf_tuning" in steps:
            b = baseline_fusion(bench, a.baseline_images)
            wbf = results[f"oof_wbf_tuning@{n}"]
            old_tune = b["old_ms_per_image"] * b["images"] * 24 / 1000
            print(
                f"  WBF fusion, one setting: replaced {b['old_ms_per_image']:.2f} ms/image ({b['sample']} "
                f"images), now {b['new_ms_per_image']:.3f} ms/image ({b['images']:,}): "
                f"{b['old_ms_per_image'] / b['new_ms_per_image']:.0f}x, same boxes: {b['equal']}; the "
                f"replaced tuning's 24 fusions alone ~{old_tune / 60:.0f} min (extrapolated) vs the whole "
                f"tuning now {fmt(wbf['seconds'], '.0f')} s"
            )
            results[f"wbf_fusion_baseline@{n}"] = {
                k: (round(v, 4) if isinstance(v, float) else v) for k, v in b.items()
            }
        if not a.no_inference:
            try:
                inf = inference_per_image(bench, a.imgsz)
            except Exception as exc:  # inference is reported apart; a failure here must not hide the rest
                print(f"  inference: not measured ({type(exc).__name__}: {exc})")
            else:
                print(
                    f"  inference apart (untrained yolo11n / yolo11n-cls at {a.imgsz} px, CPU): "
                    f"{inf['detector_pass_ms']:.1f} ms per detector pass, "
                    f"{inf['classifier_pass_ms']:.1f} ms per classifier pass -> "
                    f"{inf['ensemble_ms_per_image']:.0f} ms per test image for 5 folds x flip + 5 "
                    f"classifiers ({inf['ensemble_ms_per_image'] * a.test_patients / 60000:.1f} min for "
                    f"{a.test_patients:,})"
                )
                results[f"inference@{n}"] = {k: round(v, 2) for k, v in inf.items()}
    print(f"\ntotal {time.perf_counter() - started:.0f} s (machine shared: other processes ran beside it)")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
