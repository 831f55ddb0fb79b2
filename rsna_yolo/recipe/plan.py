"""``--plan``: every step's time, disk and peak memory on this machine, from a short probe; ``--hours``.

The probe runs the recipe's own commands on a small copy of its data in ``DIR/.probe`` (removed after):
64 training films and 16 test films (generated at the recipe's settings, or linked from the download), the
conversion, each model trained 2 epochs at the recipe's sizes and arguments, and a submission. From it:

- per film: generating, converting, predicting (seconds), and the bytes of a film and of its PNG;
- per model: seconds per training image per epoch (from the second epoch of Ultralytics' ``results.csv``
  ``time`` column, so start-up is not counted in it), the run's fixed cost (start-up, model build, the final
  rescoring of its val images), and its peak resident memory (and GPU memory where Ultralytics logs one).

A step's estimate is then the same sums the step will do at full size (each fold trains on its K-1 parts and
validates on one). Nothing of the recipe itself is trained; ``plan.json`` keeps the figures so the report can
set them beside the measured ones.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_json_atomic
from rsna_yolo.recipe.runner import last_line, run_command
from rsna_yolo.recipe.steps import (
    CLASSIFIER_RUN,
    DATASET_DIR,
    DETECTOR_RUN,
    KAGGLE_DIR,
    LABEL_CSVS,
    PLAN_JSON,
    TEST_IMAGES,
    build_steps,
)

PROBE_DIR = ".probe"
PROBE_TRAIN, PROBE_TEST, PROBE_EPOCHS = 64, 16, 2
EPOCH_FLOOR = 0.5
"""``--hours``: epochs are scaled down to no less than this share of the recipe's before folds are cut."""
GPU_MEM = re.compile(r"\s(\d+(?:\.\d+)?)G\s")
SPEED = re.compile(
    r"Speed: ([\d.]+)ms preprocess, ([\d.]+)ms inference, [\d.]+ms loss, ([\d.]+)ms postprocess"
)


def _infer_seconds(log: Path) -> float | None:
    """Seconds per image of Ultralytics' last validation (pre-processing, inference, post-processing)."""
    try:
        found = SPEED.findall(log.read_text(errors="replace"))
    except OSError:
        return None
    return sum(float(v) for v in found[-1]) / 1000 if found else None


def _probe_recipe(recipe: dict, probe: Path) -> dict:
    """The recipe at the probe's size: at most 64 + 16 films, each model one run (not K folds) of 2 epochs on
    a split whose val share is a fold's (1/K), so a training epoch has the full run's mix of train and val."""
    small = json.loads(json.dumps(recipe))
    syn = small["data"]["synthetic"]
    if syn is not None:  # never more than the recipe's own films
        syn.update(
            patients=min(PROBE_TRAIN, syn["patients"]), test_patients=min(PROBE_TEST, syn["test_patients"])
        )
    else:
        root = Path(recipe["data"]["kaggle"]).expanduser()
        small["data"] = {"kaggle": str(_link_sample(root, probe)), "synthetic": None}
    folds = recipe["convert"]["folds"]
    small["convert"].update(
        folds=1, val_fraction=1 / folds if folds > 1 else recipe["convert"]["val_fraction"]
    )
    for section in ("detector", "classifier"):
        if small[section] is not None:
            small[section]["epochs"] = PROBE_EPOCHS
    return small


def _link_sample(root: Path, probe: Path) -> Path:
    """A Kaggle-layout folder of the download's first films (links) and their CSV rows."""
    sample = probe / "sample"
    (sample / "stage_2_train_images").mkdir(parents=True, exist_ok=True)
    if (root / TEST_IMAGES).is_dir():
        (sample / TEST_IMAGES).mkdir(parents=True, exist_ok=True)
    with open(root / LABEL_CSVS[0], newline="") as fh:
        rows = list(csv.reader(fh))
    keep = []
    for pid in dict.fromkeys(r[0] for r in rows[1:]):
        film = root / "stage_2_train_images" / f"{pid}.dcm"
        if film.is_file():
            (sample / "stage_2_train_images" / film.name).symlink_to(film)
            keep.append(pid)
        if len(keep) == PROBE_TRAIN:
            break
    for name in LABEL_CSVS:
        with open(root / name, newline="") as fh:
            table = list(csv.reader(fh))
        with open(sample / name, "w", newline="") as fh:
            csv.writer(fh).writerows([table[0], *(r for r in table[1:] if r[0] in set(keep))])
    for film in (
        sorted((root / TEST_IMAGES).glob("*.dcm"))[:PROBE_TEST] if (root / TEST_IMAGES).is_dir() else []
    ):
        (sample / TEST_IMAGES / film.name).symlink_to(film)
    return sample


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _epoch_seconds(run: Path) -> tuple[float, float]:
    """(seconds of the last epoch, seconds of all epochs) from a run's ``results.csv`` (its first fold's)."""
    results = next(iter(sorted(run.rglob("results.csv"))), None)
    times = []
    if results:
        with open(results, newline="") as fh:
            times = [float(r["time"]) for r in csv.DictReader(fh)]
    if len(times) < 2:
        return (times[-1] if times else 0.0), (times[-1] if times else 0.0)
    return times[-1] - times[-2], times[-1]


def probe(recipe: dict, out: Path, echo=print) -> dict[str, Any]:
    """Run the probe; its measurements (see the module's docstring)."""
    root = out / PROBE_DIR
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    small = _probe_recipe(recipe, root)
    steps = {s.name: s for s in build_steps(small, root)}
    found: dict[str, Any] = {"startup": _startup_seconds()}
    started = time.perf_counter()
    for name, step in steps.items():
        if step.argv is None:
            continue
        echo(f"probe: {name} ...")
        log = root / "logs" / f"{name}.log"
        code, seconds, peak = run_command(step.argv, log)
        if code:
            raise UserError(
                f"the probe's {name} step failed (exit {code}): {last_line(log)} (its log: "
                f"{log}; the probe's folder is kept for a look)"
            )
        found[name] = {"seconds": seconds, "peak_mb": peak}
        if name in ("detector", "classifier"):
            run = root / (DETECTOR_RUN if name == "detector" else CLASSIFIER_RUN)
            epoch, epochs = _epoch_seconds(run)
            folds = max(1, len(list(run.glob("fold*"))))
            found[name].update(
                epoch=epoch,
                fixed=max(seconds / folds - epochs, 0.0),
                folds=folds,
                weights_bytes=_size(run) / folds,
                gpu_mb=_gpu_mb(root / "logs" / f"{name}.log"),
                infer=_infer_seconds(root / "logs" / f"{name}.log"),
            )
    found["film_bytes"] = (
        _size(root / KAGGLE_DIR / "stage_2_train_images") / max(_films(root), 1)
        if (root / KAGGLE_DIR).is_dir()
        else None
    )
    found["converted"] = split = _count_split(root / DATASET_DIR)
    found["probe_train"], found["probe_test"] = split["train"] + split["val"], split["test"]
    found["png_bytes"] = _size(root / DATASET_DIR / "images") / max(sum(split.values()), 1)
    shutil.rmtree(root, ignore_errors=True)
    found["seconds"] = time.perf_counter() - started
    return found


def _startup_seconds() -> float:
    """Seconds for a step's process to start and import PyTorch and Ultralytics (paid once per step: a fold
    set trains its folds in one process)."""
    code = "import rsna_yolo.offline, torch, ultralytics"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=False, capture_output=True)
    return time.perf_counter() - start


def _films(root: Path) -> int:
    return len(list((root / KAGGLE_DIR / "stage_2_train_images").glob("*.dcm")))


def _gpu_mb(log: Path) -> float | None:
    try:
        values = [float(v) * 1024 for v in GPU_MEM.findall(log.read_text(errors="replace"))]
    except OSError:
        return None
    return max(values) if values else None


def _count_split(dataset: Path) -> dict[str, int]:
    return {s: len(list((dataset / "images" / s).glob("*.png"))) for s in ("train", "val", "test")}


def counts(recipe: dict) -> dict[str, int]:
    """Training and test films of the full recipe."""
    syn = recipe["data"]["synthetic"]
    if syn is not None:
        return {"train": syn["patients"], "test": syn["test_patients"]}
    root = Path(recipe["data"]["kaggle"]).expanduser()
    with open(root / LABEL_CSVS[0], newline="") as fh:
        patients = {r[0] for r in list(csv.reader(fh))[1:]}
    test = len(list((root / TEST_IMAGES).glob("*.dcm"))) if (root / TEST_IMAGES).is_dir() else 0
    return {"train": len(patients), "test": test}


def estimate(recipe: dict, out: Path, found: dict) -> list[dict[str, Any]]:
    """Each step's estimate at the recipe's full size: seconds, bytes written, peak MB (and GPU MB).

    Conversion and generation scale with the films. A training run: its fixed cost (start-up, the model, the
    final rescoring of its val images at the probe's inference speed) plus the epochs at the probe's seconds
    per image. Tuning steps predict every labelled film once more (flip TTA: twice) at that speed; the
    submission predicts each test film with every model (and flip), plus the probe submission's fixed cost."""
    n = counts(recipe)
    folds = recipe["convert"]["folds"]
    runs = max(folds, 1)
    val_share = 1 / folds if folds > 1 else recipe["convert"]["val_fraction"]
    pt, pv = found["converted"]["train"], found["converted"]["val"]
    probe_films = found["probe_train"] + found["probe_test"]
    det, cls = found.get("detector") or {}, found.get("classifier") or {}
    det_infer, cls_infer = det.get("infer") or 0.0, cls.get("infer") or 0.0
    tta = recipe["tuning"]["tta"]
    per_test_film = runs * (det_infer * (2 if tta else 1) + cls_infer)
    decode = (found.get("convert") or {}).get("seconds", 0.0) / max(probe_films, 1)
    rows = []
    for step in build_steps(recipe, out):
        probe_step = found.get(step.name) or {}
        est: dict[str, Any] = {
            "step": step.name,
            "command": step.command(out),
            "seconds": 0.0,
            "bytes": 0.0,
            "peak_mb": probe_step.get("peak_mb"),
            "gpu_mb": probe_step.get("gpu_mb"),
        }
        if step.name in ("data", "convert"):
            films = n["train"] + n["test"]
            est["seconds"] = probe_step["seconds"] * films / max(probe_films, 1)
            est["bytes"] = films * ((found["film_bytes"] or 0) if step.name == "data" else found["png_bytes"])
        elif step.name in ("detector", "classifier"):
            per_image = probe_step["epoch"] / max(pt + pv, 1)  # the probe's epoch: pt trained, pv validated
            infer = probe_step.get("infer") or 0.0
            fixed = probe_step["fixed"] - pv * infer + n["train"] * val_share * infer
            epochs = recipe[step.name]["epochs"]
            startup = found["startup"]  # paid once: a fold set trains its folds in one process
            est["seconds"] = startup + runs * (max(fixed - startup, 0.0) + epochs * per_image * n["train"])
            est["bytes"] = probe_step["weights_bytes"] * runs
        elif step.name == "tta":  # every labelled film predicted with flips, then the fusion tuned
            films = n["train"] if folds > 1 else n["train"] * val_share
            est["seconds"] = found["startup"] + films * (2 * det_infer + decode) + 5 * runs
        elif step.name == "gate" and folds > 1:  # tuning on the saved out-of-fold files: no inference
            est["seconds"] = found["startup"] + 1.0 + 0.01 * n["train"] * (2 if tta else 1)
        elif step.name == "gate":  # one split: the classifier predicts the val images, then the tuning
            probe_gate = (found.get("gate") or {}).get("seconds", 10.0)
            est["seconds"] = probe_gate + max(n["train"] * val_share - pv, 0) * cls_infer
        elif step.name == "submit":
            fixed = probe_step["seconds"] - found["probe_test"] * (per_test_film + decode)
            est["seconds"] = max(fixed, 0.0) + n["test"] * (per_test_film + decode)
        rows.append(est)
    return rows


def fit_hours(recipe: dict, out: Path, found: dict, hours: float) -> tuple[dict, list[str]]:
    """The recipe with epochs (then folds) scaled so the plan's total fits ``hours``; what was changed."""
    budget = hours * 3600
    changed: list[str] = []
    fitted = json.loads(json.dumps(recipe))
    for _ in range(4):
        rows = estimate(fitted, out, found)
        total = sum(r["seconds"] for r in rows)
        if total <= budget:
            return fitted, changed
        trains = [r for r in rows if r["step"] in ("detector", "classifier")]
        fixed = total - sum(r["seconds"] for r in trains)
        factor = max((budget - fixed) / max(sum(r["seconds"] for r in trains), 1e-9), 0.0)
        low = False
        for section in ("detector", "classifier"):
            part = fitted[section]
            if part is None:
                continue
            original = recipe[section]["epochs"]
            new = max(1, math.floor(part["epochs"] * factor))
            if new < original * EPOCH_FLOOR:
                low = True
                new = max(1, math.ceil(original * EPOCH_FLOOR))
            if new != part["epochs"]:
                changed.append(f"{section}.epochs {part['epochs']} -> {new}")
                part["epochs"] = new
        if low and fitted["convert"]["folds"] > 2:
            new_folds = fitted["convert"]["folds"] - 1 if fitted["convert"]["folds"] > 3 else 2
            changed.append(f"convert.folds {fitted['convert']['folds']} -> {new_folds}")
            fitted["convert"]["folds"] = new_folds
        elif not changed or (low and fitted["convert"]["folds"] <= 2):
            break
    rows = estimate(fitted, out, found)
    total = sum(r["seconds"] for r in rows)
    if total > budget:
        changed.append(
            f"still about {total / 3600:.1f} h at the floors (epochs >= {EPOCH_FLOOR:.0%} of the "
            "recipe's, 2 folds): the plan does not fit"
        )
    return fitted, changed


def read_plan(out: Path) -> float | None:
    """The bytes the last ``--plan`` of ``out`` said the steps write (None without one)."""
    try:
        steps = json.loads((out / PLAN_JSON).read_text())["steps"]
    except (OSError, ValueError, KeyError):
        return None
    return sum(r["bytes"] for r in steps)


def write_plan(out: Path, rows: list[dict], found: dict, changed: list[str]) -> Path:
    path = out / PLAN_JSON
    write_json_atomic(
        {"steps": rows, "probe": found, "changed": changed, "total_seconds": sum(r["seconds"] for r in rows)},
        path,
    )
    return path


def plan_lines(rows: list[dict], found: dict, changed: list[str], gpu: bool) -> list[str]:
    """The printed plan: one block per step (its command, time, disk, memory) and the total."""
    lines = [
        f"probe: {found['seconds']:.0f} s on this machine ({found['probe_train']} + {found['probe_test']} "
        f"films, each model {PROBE_EPOCHS} epochs); the estimates scale it to the recipe's size"
    ]
    for change in changed:
        lines.append(f"--hours: {change}")
    for i, row in enumerate(rows, 1):
        mem = "n/a" if row["peak_mb"] is None else f"{row['peak_mb']:,.0f} MB"
        gpu_text = f", GPU {row['gpu_mb']:,.0f} MB" if gpu and row.get("gpu_mb") else ""
        lines.append(
            f"[{i}/{len(rows)}] {row['step']}: ~{_duration(row['seconds'])}, writes "
            f"~{row['bytes'] / 1e6:,.0f} MB, peak {mem}{gpu_text}"
        )
        lines.append(f"    $ {row['command']}")
    total = sum(r["seconds"] for r in rows)
    disk = sum(r["bytes"] for r in rows)
    lines.append(f"total: ~{_duration(total)}, ~{disk / 1e9:.2f} GB on disk; nothing was trained (--plan)")
    return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
