"""Multi-GPU training (DDP): how many processes Ultralytics starts, what changes then, and which process is
the main one. Ultralytics runs the epochs in child processes it starts itself (``ultralytics.utils.dist``);
our hooks travel with the trainer (``tests/test_ddp.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rsna_yolo.train.args import TrainOptions

# on_epoch(epoch (1-based), value) -> True to stop training now (a pruned sweep trial)
EpochHook = Callable[[int, float], bool]


def ddp_world_size(device: Any) -> int:
    """How many processes Ultralytics starts for ``device=`` (``0,1`` or ``[0, 1]`` -> 2; one device -> 1).

    >>> [ddp_world_size(d) for d in (None, "cpu", 0, "0", "0,1", [0, 1, 2], "-1,-1")]
    [1, 1, 1, 1, 2, 3, 2]
    """
    if isinstance(device, (list, tuple)):
        return len(device)
    parts = [p for p in str(device or "").replace(" ", "").split(",") if p]
    return len(parts) if len(parts) > 1 else 1


def ddp_notes(world_size: int, options: TrainOptions, on_epoch: EpochHook | None) -> list[str]:
    """What changes when training runs in ``world_size`` DDP processes, one line each (printed before
    training starts)."""
    if world_size <= 1:
        return []
    notes = [
        f"DDP on {world_size} devices: our hooks run in rank 0 of the DDP processes (W&B run"
        + (f", kaggle/mAP every {options.kaggle_every} epochs" if options.kaggle_every else "")
        + "); the final Kaggle rescoring runs once, in this process, into the same W&B run id"
    ]
    if on_epoch is not None:
        notes.append(
            "DDP: a sweep trial cannot be pruned epoch by epoch across processes; this trial runs all its "
            "epochs and reports its final score"
        )
    return notes


def is_main_rank() -> bool:
    """True outside DDP and in DDP's rank 0 (``RANK`` as torch.distributed.run sets it)."""
    return int(os.environ.get("RANK", -1)) in (-1, 0)
