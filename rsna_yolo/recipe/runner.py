"""Running a recipe's steps: skip what is done, redo what changed, resume what was interrupted; record it all.

``DIR/recipe.json`` holds, per step: its command line, key, status (``running``, ``done``, ``failed``),
seconds, peak resident memory (the step's process and the processes it waited for, from ``wait4``), and its
tuned and held-out score where it has one. It is written before a step starts and after it ends, so a run
killed at any moment (``kill -9`` included) leaves a record that says which step was interrupted:

- a step ``done`` under the same key, its outputs present: skipped;
- a step whose key changed (a recipe key it uses, its command, a file it reads, an earlier step): its outputs
  are removed and it runs again, and the line says what changed;
- an interrupted step: run again; a ``rerun`` step finishes the job itself (the converter keeps finished
  films, a fold set keeps finished folds and starts the killed one again), a ``restart`` step starts from
  nothing. Either way the outputs are the bytes of an uninterrupted run.

Each step runs as its own process (``python -m rsna_yolo <argv>``, the command recorded), which dies with the
recipe (``PR_SET_PDEATHSIG``); its output goes to ``DIR/logs/<step>.log``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_json_atomic
from rsna_yolo.core.workers import die_with_parent
from rsna_yolo.recipe.steps import LOGS_DIR, RECIPE_JSON, Step

RECORD_VERSION = 1


def read_record(out: Path) -> dict[str, Any]:
    """``DIR/recipe.json`` (an empty record when missing or unreadable)."""
    try:
        record = json.loads((out / RECIPE_JSON).read_text())
    except (OSError, ValueError):
        return {"version": RECORD_VERSION, "steps": {}}
    record.setdefault("steps", {})
    return record


def run_command(argv: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[int, float, float]:
    """Run ``python -m rsna_yolo <argv>`` with its output in ``log``: ``(exit code, seconds, peak MB)``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    parent = os.getpid()
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rsna_yolo", *argv],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=lambda: die_with_parent(parent),
        )
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024  # Linux: kilobytes


def last_line(log: Path) -> str:
    """The log's last non-empty line that says something (for a failed step's one line)."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if "error" in ln.lower() or ln.startswith(("rsna-yolo", "python -m"))]
    return (errors or lines or [""])[-1][:300]


def step_scores(step: Step) -> dict[str, Any]:
    """A step's tuned and held-out score (or a classifier's AUC), read from its JSON."""
    if step.score is None or not step.score.is_file():
        return {}
    data = json.loads(step.score.read_text())
    if "score" in data:
        return {"score": data["score"], "score_heldout": data.get("score_heldout")}
    auc = data.get("auc_opacity")
    return (
        {"auc_opacity": auc, "accuracy": data.get("accuracy")}
        if auc is not None or "accuracy" in data
        else {}
    )


def _remove(paths) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _changed(step: Step, before: dict, out: Path) -> str:
    """What changed since the recorded run of ``step``: the words of its command, else its inputs."""
    old, new = before.get("argv_words") or [], _words(step, out)
    gone, added = [w for w in old if w not in new], [w for w in new if w not in old]
    if gone or added:
        return "; ".join(
            filter(
                None,
                [" ".join(gone) and f"was {' '.join(gone)}", " ".join(added) and f"now {' '.join(added)}"],
            )
        )[:300]
    upstream = [n for n, k in (before.get("after") or {}).items() if k != step.after_keys.get(n)]
    return f"{', '.join(upstream)} changed" if upstream else "an input file changed"


def _words(step: Step, out: Path | None = None) -> list[str]:
    words = list(step.argv or [step.title])
    return words if out is None else [w.replace(str(out), "$OUT") for w in words]


class Runner:
    """Runs ``steps`` into ``out``, keeping ``DIR/recipe.json`` true at every moment."""

    def __init__(self, steps: list[Step], out: Path, meta: dict[str, Any], echo=print, report=None):
        self.steps, self.out, self.echo, self.report = steps, out, echo, report
        self.record = read_record(out)
        self.record.update(meta)
        self.record["version"] = RECORD_VERSION
        keys = {s.name: s.key for s in steps}
        for step in steps:
            step.after_keys = {n: keys[n] for n in step.after}

    def save(self) -> None:
        self.record["order"] = [s.name for s in self.steps]
        write_json_atomic(self.record, self.out / RECIPE_JSON)

    def run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        for i, step in enumerate(self.steps, 1):
            self._one(step, f"[{i}/{len(self.steps)}]")
        self.record["seconds_this_run"] = round(time.perf_counter() - started, 1)
        self.save()
        return self.record

    def _one(self, step: Step, tag: str) -> None:
        before = self.record["steps"].get(step.name) or {}
        present = all(p.exists() for p in step.outputs)
        if before.get("status") == "done" and before.get("key") == step.key and present:
            self.echo(f"{tag} {step.name}: done before, kept ({step.title})")
            return
        if before and before.get("key") != step.key:
            self.echo(f"{tag} {step.name}: changed ({_changed(step, before, self.out)}): running it again")
            _remove(step.outputs)
        elif before.get("status") == "done":
            self.echo(f"{tag} {step.name}: its outputs are gone: running it again")
            _remove(step.outputs)
        elif before:
            how = "finishing it" if step.resume == "rerun" else "starting it again"
            self.echo(f"{tag} {step.name}: interrupted ({before.get('status')}): {how}")
            if step.resume == "restart":
                _remove(step.outputs)
        else:
            self.echo(f"{tag} {step.name}: {step.title}")
        entry = {
            "title": step.title,
            "command": step.command(self.out),
            "argv_words": _words(step, self.out),
            "key": step.key,
            "after": step.after_keys,
            "status": "running",
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.record["steps"][step.name] = entry
        self.save()
        log = self.out / LOGS_DIR / f"{step.name}.log"
        if step.argv is None:
            t0 = time.perf_counter()
            self.report(self.out)
            code, seconds, peak = 0, time.perf_counter() - t0, None
        else:
            self.echo(f"    $ {entry['command']}")
            code, seconds, peak = run_command(step.argv, log)
        entry.update(seconds=round(seconds, 1), peak_mb=None if peak is None else round(peak, 1))
        if code:
            entry["status"] = "failed"
            entry["log"] = str(log)
            self.save()
            raise UserError(
                f"step {step.name} failed (exit {code}): {last_line(log)} (whole log: {log}; "
                "fix it and run the same command again: finished steps are kept)"
            )
        entry.update(status="done", **step_scores(step))
        self.save()
        score = entry.get("score")
        extra = (
            "" if score is None else f", Kaggle mAP {score:.4f} (held out {_fmt(entry.get('score_heldout'))})"
        )
        peak_text = "" if peak is None else f", peak {peak:,.0f} MB"
        self.echo(f"    done in {seconds:.1f} s{peak_text}{extra}")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
