"""What the benchmarks share: running one step of theirs as a command of its own, logged; comparing two
submissions row by row.

Not a benchmark itself (``tests/test_benchmarks.py`` runs every ``benchmarks/*.py`` but this one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_logged(
    cmd: list, log: Path, *, prog: str, env: dict[str, str] | None = None, echo: bool = False
) -> tuple[float, float]:
    """Run ``cmd`` in the repository (``echo``: print it first) with its output in ``log`` (its folder made);
    ``(wall seconds, peak resident memory of that process in MB)`` (``wait4``'s own rusage). A failure
    stops the benchmark ``prog`` with one line naming the command and its log."""
    cmd = [str(c) for c in cmd]
    if echo:
        print("$", " ".join(cmd), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        what = " ".join(c for c in cmd[1:4] if c != "-m")
        raise SystemExit(f"{prog}: {what} failed (exit {code}); see {log}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024  # Linux: kilobytes


def matched(a, b, *, iou: float = 0.98, conf: float = 0.02) -> int:
    """How many boxes of ``a`` have a box of ``b`` with IoU >= ``iou`` and a confidence within ``conf``: both
    ``(N, 5)`` arrays of ``conf, x, y, width, height`` of one film."""
    import numpy as np

    from analysis.scoring.metric import iou_xywh

    a, b = np.asarray(a, float).reshape(-1, 5), np.asarray(b, float).reshape(-1, 5)
    if not len(a) or not len(b):
        return 0
    same = (iou_xywh(a[:, 1:], b[:, 1:]) >= iou) & (np.abs(a[:, None, 0] - b[None, :, 0]) <= conf)
    return int(same.any(axis=1).sum())


def runnable_backends(backends: list[str]) -> list[str]:
    """``backends`` without ``openvino-bf16`` where OpenVINO's CPU default is not bfloat16 (the commands
    refuse it there: it would be FP32 under that name), saying so."""
    if "openvino-bf16" not in backends:
        return list(backends)
    from analysis.inference.export import openvino_default_precision

    if (precision := openvino_default_precision()) == "bf16":
        return list(backends)
    print(f"  openvino-bf16 left out: OpenVINO computes in {precision} by default on this CPU")
    return [b for b in backends if b != "openvino-bf16"]


def matched_boxes(a, b) -> tuple[int, int]:
    """``(matched, total)``: the boxes of prediction frame ``a`` (``patientId, conf, x, y, width, height``)
    with a box of ``b`` on the same film at IoU >= 0.98 and a confidence within 0.02 (:func:`matched`)."""
    cols = ["conf", "x", "y", "width", "height"]
    groups = {pid: g[cols].to_numpy(float) for pid, g in b.groupby("patientId")}
    found = sum(matched(g[cols].to_numpy(float), groups.get(pid, [])) for pid, g in a.groupby("patientId"))
    return found, len(a)


def differing_rows(a: Path, b: Path) -> tuple[int, int]:
    """Rows of submission ``b`` whose prediction string is not ``a``'s: ``(any difference, beyond the
    tolerance)``; beyond it is another box count, or a box of ``a`` with no box of ``b`` at IoU >= 0.98 and a
    confidence within 0.02 (:func:`matched`). The strings round confidences to 4 decimals and corners to 0.1
    px, so a difference in the last digit is common."""
    import numpy as np
    import pandas as pd

    x, y = (pd.read_csv(p, dtype=str).fillna("").set_index("patientId")["PredictionString"] for p in (a, b))
    y = y.reindex(x.index).fillna("")
    differ = x[x != y].index
    beyond = 0
    for pid in differ:
        u, v = (np.array(s[pid].split(), float).reshape(-1, 5) for s in (x, y))
        beyond += len(u) != len(v) or matched(u, v) < len(u)
    return len(differ), beyond


def tiny_detector(
    out: Path, *, synth: list, imgsz: int, train: list, name: str, prog: str
) -> tuple[Path, Path, Path]:
    """The benchmarks' shared start, each step reused when its output is there: ``convert synth`` into
    ``out/kaggle`` (``synth``: its arguments after ``--out``), ``convert rsna`` at ``imgsz`` into ``out/ds``,
    and ``python -m train`` (``train``: model, epochs, batch ...; on the CPU, W&B off) into
    ``out/runs/<name>``. Returns ``(kaggle, ds, run_dir)``."""
    kaggle, ds, run_dir = out / "kaggle", out / "ds", out / "runs" / name
    steps = [  # (what the step leaves behind, the command, its log)
        (kaggle / "stage_2_train_labels.csv", ["convert", "synth", "--out", kaggle, *synth], "synth.log"),
        (ds / "data.yaml",
         ["convert", "rsna", "--src", kaggle, "--out", ds, "--imgsz", imgsz, "--no-progress"], "convert.log"),
        (run_dir / "kaggle.json",
         ["train", f"data={ds / 'data.yaml'}", *train, f"imgsz={imgsz}", "workers=0", "plots=False",
          "device=cpu", "wandb=False", "exist_ok=True", f"project={out / 'runs'}", f"name={name}"],
         "train.log"),
    ]  # fmt: skip
    for done, cmd, log in steps:
        if not done.is_file():
            run_logged([sys.executable, "-m", *cmd], out / log, prog=prog)
    return kaggle, ds, run_dir
