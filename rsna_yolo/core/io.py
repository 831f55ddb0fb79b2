"""Atomic file writing: a temporary file in the same folder, then a rename.

A reader (or a rerun after ``kill -9``) sees the old file or the new one, never half of one. Temporary
files are named ``.<name>.<pid>.tmp`` (:func:`temp_path`), so a cleanup can find leftovers by
:data:`TMP_SUFFIX`. No fsync: the files survive a killed process, not a power loss.

A full disk (:func:`is_disk_full`) is the one write error a user can fix without a code change: the
writers remove their temporary file and raise it naming the file that could not be written, and
:func:`rsna_yolo.core.cli.call_reporting_errors` turns it into one line (:func:`disk_full_message`).
"""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""``No space left on device`` and ``Disk quota exceeded``: freeing space is the fix for both."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed because the disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def disk_full_message(exc: OSError) -> str:
    """One line for a full disk: the file that could not be written, that finished work is kept, what to
    do."""
    where = f"could not write {exc.filename}" if exc.filename else "could not write a file"
    return (
        f"the disk is full ({exc.strerror or os.strerror(exc.errno)}): {where}. Work finished before this "
        "is kept and a rerun of the same command reuses it: free some space and run it again"
    )


def temp_path(path: Path, tag: str = "") -> Path:
    """The temporary name :func:`write_atomic` writes ``path`` through: ``.<name>.<pid>.tmp`` beside it
    (``.<name>.<pid>.<tag>.tmp`` with a ``tag``, for a second temporary of the same path: a folder being
    replaced keeps its old self there until the new one is in place)."""
    return path.with_name(f".{path.name}.{os.getpid()}{'.' + tag if tag else ''}{TMP_SUFFIX}")


def stale_temps(path: Path) -> list[Path]:
    """The temporaries of ``path`` that interrupted runs (any process) left beside it."""
    return sorted(path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"))


def _replace_atomic(path: str | Path, fill: Callable[[Path], object]) -> Path:
    """``fill(tmp)`` writes the new file at ``path``'s temporary name, then it replaces ``path`` in one
    rename. The parent folder is created if missing; on any failure the temporary is removed and ``path`` is
    left as it was; a full disk is raised as ``OSError(ENOSPC, ..., path)`` (the file meant, not its
    temporary name)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path)
        try:
            fill(tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # half a file, and on a full disk the space the user needs
            raise
    except OSError as exc:
        if is_disk_full(exc):
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise
    return path


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8 with ``\\n`` line ends) to ``path`` atomically.

    The parent folder is created if missing. Returns ``path``. On any failure the temporary file is
    removed and ``path`` is left as it was; a full disk is raised as ``OSError(ENOSPC, ..., path)`` (the
    file meant, not its temporary name).
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data

    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # not tmp.write_bytes: an AtomicPath's temporary is an AtomicPath
            fh.write(payload)

    return _replace_atomic(path, fill)


def copy_atomic(src: str | Path, dst: str | Path) -> Path:
    """Copy the file ``src`` to ``dst`` atomically (a temporary beside ``dst``, then a rename): ``dst`` is
    the old file or the whole new one, never half a copy; a full disk names ``dst``."""
    import shutil

    return _replace_atomic(dst, lambda tmp: shutil.copyfile(src, tmp))


class AtomicPath(type(Path())):
    """A path whose ``write_bytes`` / ``write_text`` go through :func:`write_atomic`: handed to code that
    writes with those methods (Ultralytics' checkpoints, ``trainer.last.write_bytes``), so an interrupted
    or failed write leaves the previous file whole and a full disk names the file. Paths derived from it
    (``/``, ``parent``) are atomic too."""

    def write_bytes(self, data) -> int:
        write_atomic(self, bytes(data))
        return len(data)

    def write_text(self, data: str, encoding=None, errors=None, newline=None) -> int:
        write_atomic(self, data)
        return len(data)


def write_csv_atomic(frame, path: str | Path) -> Path:
    """Write a pandas ``frame`` as CSV (no index column) atomically."""
    return write_atomic(path, frame.to_csv(index=False, lineterminator="\n"))


def write_figure_atomic(fig, path: str | Path, **savefig: Any) -> Path:
    """Save a Matplotlib figure atomically, in the format of ``path``'s suffix (``savefig``: its keyword
    arguments, e.g. ``dpi``)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", **savefig)
    return write_atomic(path, buffer.getvalue())


def json_ready(value: Any) -> Any:
    """``value`` with NaN as None and NumPy scalars as Python numbers, recursively (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_ready(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(x) for x in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return json_ready(value.item())  # a NumPy scalar
    return value


def write_json_atomic(obj: Any, path: str | Path, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (NaN as null, NumPy scalars as numbers) atomically."""
    return write_atomic(path, json.dumps(json_ready(obj), indent=indent) + "\n")
