"""Is a run folder resumable? Decided before Ultralytics sees it.

Ultralytics' ``train(resume=True)`` on a finished run (its ``last.pt`` stripped of the optimizer) does not
fail: it warns and starts a brand-new run with the defaults (``coco8.yaml``, 100 epochs), which then tries
to download coco8 (see ../shared/FACTS.md). So we look at the checkpoint first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.runs import LAST_PT, RESULTS_CSV, weights_file


def completed_epochs(results_csv: Path) -> int:
    """Number of epoch rows in an Ultralytics ``results.csv`` (0 when missing)."""
    if not results_csv.is_file():
        return 0
    lines = [line for line in results_csv.read_text().splitlines() if line.strip()]
    return max(len(lines) - 1, 0)  # minus the header


def finished_reason(ckpt: dict[str, Any], done_epochs: int) -> str | None:
    """Why a checkpoint cannot be resumed (None when it can).

    ``ckpt`` is the dict Ultralytics saves: while training ``epoch`` is the last finished epoch (0-based)
    and ``optimizer`` holds state; at the end both are cleared (``epoch=-1``, ``optimizer=None``).

    >>> finished_reason({"epoch": 1, "optimizer": {}, "train_args": {"epochs": 3}}, 2) is None
    True
    >>> finished_reason({"epoch": -1, "optimizer": None, "train_args": {"epochs": 3}}, 3)
    'it finished all 3 planned epochs (weights/last.pt holds no optimizer state)'
    >>> finished_reason({"epoch": 2, "optimizer": {}, "train_args": {"epochs": 3}}, 3)
    'it finished all 3 planned epochs (killed while writing its final weights)'
    """
    planned = int((ckpt.get("train_args") or {}).get("epochs") or 0)
    if ckpt.get("optimizer") is None:
        planned = planned or done_epochs
        return f"it finished all {planned} planned epochs (weights/last.pt holds no optimizer state)"
    if planned and int(ckpt.get("epoch", -1)) + 1 >= planned:
        return f"it finished all {planned} planned epochs (killed while writing its final weights)"
    return None


def check_resumable(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Return ``(last.pt, its training arguments)`` or raise ``UserError`` saying what to do instead."""
    from ultralytics.nn.tasks import torch_safe_load

    run_dir = Path(run_dir)
    last = weights_file(run_dir, LAST_PT)
    if not last.is_file():
        raise UserError(
            f"{last}: not found; `python -m train resume` takes a run folder (runs/detect/<name>)"
        )
    try:
        ckpt, _ = torch_safe_load(str(last), safe_only=False)
    except Exception as exc:
        raise UserError(f"{last}: not a readable Ultralytics checkpoint ({exc})") from None
    train_args = dict(ckpt.get("train_args") or {})
    reason = finished_reason(ckpt, completed_epochs(run_dir / RESULTS_CSV))
    if reason:
        raise UserError(
            f"{run_dir} cannot be resumed: {reason}. Epochs cannot be extended by resuming; to train longer, "
            f"start a new run from its weights: python -m train model={weights_file(run_dir)} "
            f"data={train_args.get('data', '...')} epochs=N. To (re)score it: "
            f"python -m analysis rescore {run_dir}"
        )
    return last, train_args
