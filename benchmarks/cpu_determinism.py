"""Does CPU training give the same numbers on another machine? The same tiny training under the CPU kernel
settings PyTorch and oneDNN document, with the time each costs against the default, in one run.

Training on the CPU is deterministic on one machine but not across machines: PyTorch's convolutions go
through oneDNN, which picks its kernels by the instruction sets the processor has (AVX2, AVX-512, AMX), and
kernels of different widths add in different orders. Capping the instruction set through the documented
environment variables makes every machine that has at least that set run the same kernels:

- ``ONEDNN_MAX_CPU_ISA=AVX2`` (oneDNN: the widest instruction set it may use);
- ``ATEN_CPU_CAPABILITY=avx2`` (PyTorch's own vectorised CPU kernels).

Steps (in ``--out``, reused when present): ``convert synth`` (``--patients``, seed 3), ``convert rsna``
(``--imgsz``), then for each setting a fresh ``python -m train`` of ``--model`` for ``--epochs`` epochs
(batch 8, W&B off). It prints the dataset's fingerprint (SHA-256 over the PNGs and labels), and per setting
the train losses (box, cls, dfl) of every epoch as ``results.csv`` has them, the training seconds and
their ratio to the default, and whether its losses equal the default's. Two machines that print the same
losses for a setting train identically under it. The last line is JSON. Synthetic data: only the
reproducibility and the times mean anything.

    python benchmarks/cpu_determinism.py --out /tmp/determinism [--patients 60] [--epochs 3] [--imgsz 128]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._steps import run_logged  # noqa: E402

PROG = "cpu_determinism"

SETTINGS = {
    "default": {},
    "onednn_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "onednn_aten_avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}
CAP_VARS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def dataset_fingerprint(ds: Path) -> str:
    """The dataset's PNGs and labels as one hash, the same as ``cd DS && find . -type f -name '*.png' -o -type
    f -name '*.txt' | sort | xargs sha256sum | sha256sum`` (first 16 hex digits), so that a figure taken by
    hand on another machine compares."""
    files = sorted(
        "./" + p.relative_to(ds).as_posix()
        for p in ds.rglob("*")
        if p.is_file() and p.suffix in {".png", ".txt"}
    )
    listing = "".join(f"{hashlib.sha256((ds / f).read_bytes()).hexdigest()}  {f}\n" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def train_losses(run_dir: Path) -> list[list[str]]:
    """``[[box, cls, dfl], ...]`` per epoch, as written in ``results.csv`` (strings: digits are the point)."""
    with open(run_dir / "results.csv") as fh:
        rows = [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(fh)]
    return [[row["train/box_loss"], row["train/cls_loss"], row["train/dfl_loss"]] for row in rows]


def cpu_flags() -> str:
    """The widest vector instruction sets this processor reports (Linux), e.g. ``avx2 avx512f amx_tile``."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next(line for line in fh if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile") if f in flags)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "runs" / "cpu_determinism", help="work folder")
    p.add_argument("--patients", type=int, default=60)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--imgsz", type=int, default=128, help="training image size (the PNGs are converted at it)"
    )
    p.add_argument("--model", default="yolov8n.yaml")
    p.add_argument(
        "--settings", default=",".join(SETTINGS), help=f"comma-separated, of {', '.join(SETTINGS)}"
    )
    a = p.parse_args()
    names = [s for s in a.settings.split(",") if s]
    unknown = sorted(set(names) - set(SETTINGS))
    if unknown or "default" not in names:
        raise SystemExit(
            f"--settings: needs 'default' and only known ones (unknown: {', '.join(unknown) or '-'})"
        )
    out = a.out.resolve()
    base_env = {k: v for k, v in os.environ.items() if k not in CAP_VARS}
    base_env |= {"WANDB_MODE": "disabled", "PYTHONHASHSEED": "0"}
    kaggle, ds = out / "kaggle", out / "ds"
    if not (kaggle / "stage_2_train_labels.csv").is_file():
        synth = ["convert", "synth", "--out", kaggle, "--patients", a.patients, "--test-patients", 2,
                 "--seed", 3, "--imgsz", 256]  # fmt: skip
        run_logged([sys.executable, "-m", *synth], out / "synth.log", prog=PROG, env=base_env)
    if not (ds / "data.yaml").is_file():
        convert = ["convert", "rsna", "--src", kaggle, "--out", ds, "--imgsz", a.imgsz, "--no-progress"]
        run_logged([sys.executable, "-m", *convert], out / "convert.log", prog=PROG, env=base_env)
    import torch

    print(
        f"CPU training across machines: {platform.processor() or platform.machine()} ({cpu_flags()}), "
        f"{os.cpu_count()} cores, torch {torch.__version__}; dataset {dataset_fingerprint(ds)} "
        f"({a.patients} synthetic patients at {a.imgsz} px); {a.model}, {a.epochs} epochs"
    )
    results: dict[str, dict] = {}
    for name in names:
        run_dir = out / "runs" / name
        env = base_env | SETTINGS[name]
        cmd = [sys.executable, "-m", "train", f"data={ds / 'data.yaml'}", f"model={a.model}",
               f"epochs={a.epochs}", f"imgsz={a.imgsz}", "batch=8", "workers=0", "plots=False", "device=cpu",
               "wandb=False", "exist_ok=True", f"project={out / 'runs'}", f"name={name}"]  # fmt: skip
        seconds, _ = run_logged(cmd, out / f"train_{name}.log", prog=PROG, env=env)
        results[name] = {"env": SETTINGS[name], "seconds": round(seconds, 1), "losses": train_losses(run_dir)}
    base = results["default"]
    print(
        f"  {'setting':<17} {'seconds':>8} {'ratio':>6}  same as default  "
        "train losses (box,cls,dfl) per epoch"
    )
    for name, r in results.items():
        r["ratio"] = round(r["seconds"] / base["seconds"], 2)
        r["same_as_default"] = r["losses"] == base["losses"]
        losses = " / ".join(",".join(e) for e in r["losses"])
        print(f"  {name:<17} {r['seconds']:8.1f} {r['ratio']:6.2f}  {r['same_as_default']!s:<15}  {losses}")
    print(json.dumps({"dataset": dataset_fingerprint(ds), "cpu": cpu_flags(), "settings": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
