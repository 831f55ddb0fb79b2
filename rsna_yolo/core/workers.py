"""Worker processes: how many cores this process may use, and workers that die with their parent."""

from __future__ import annotations

import os
import signal


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under ``taskset`` or a container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def die_with_parent(parent: int) -> None:
    """Linux: have the kernel kill this worker when its parent dies (a pool initializer).

    Without it a ``kill -9`` of the parent leaves its pool workers behind, asleep forever on a queue
    nobody writes to (and, until then, still writing the files of their chunk beside a rerun).
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: workers then end when the pool shuts down
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
