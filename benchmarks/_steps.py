"""What the benchmarks share: running one step of theirs as a command of its own, logged; comparing two
submissions row by row.

Not a benchmark itself (``tests/test_benchmarks.py`` runs every ``benchmarks/*.py`` but this one).
"""

from __future__ import annotations

import os
import subprocess
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


def differing_rows(a: Path, b: Path) -> tuple[int, int]:
    """Rows of submission ``b`` whose prediction string is not ``a``'s: ``(any difference, beyond the
    tolerance)``; the tolerance is another box count, a confidence off by more than 0.02 or a corner by more
    than 2 px (the strings round confidences to 4 decimals, so a difference in the last one is common)."""
    import numpy as np
    import pandas as pd

    x, y = (pd.read_csv(p, dtype=str).fillna("").set_index("patientId")["PredictionString"] for p in (a, b))
    y = y.reindex(x.index).fillna("")
    differ = x[x != y].index
    beyond = 0
    for pid in differ:
        u, v = (np.array(s[pid].split(), float).reshape(-1, 5) for s in (x, y))
        if (
            u.shape != v.shape
            or np.abs(u[:, 0] - v[:, 0]).max() > 0.02
            or np.abs(u[:, 1:] - v[:, 1:]).max() > 2
        ):
            beyond += 1
    return len(differ), beyond
