"""Atomic file writing: a temporary file in the same folder, then a rename.

A reader (or a rerun after ``kill -9``) sees the old file or the new one, never half of one. Temporary
files are named ``.<name>.<pid>.tmp`` (:func:`temp_path`), so a cleanup can find leftovers by
:data:`TMP_SUFFIX`. No fsync: the files survive a killed process, not a power loss.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def temp_path(path: Path) -> Path:
    """The temporary name :func:`write_atomic` writes ``path`` through: ``.<name>.<pid>.tmp`` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8 with ``\\n`` line ends) to ``path`` atomically.

    The parent folder is created if missing. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)
    return path


def write_csv_atomic(frame, path: str | Path) -> Path:
    """Write a pandas ``frame`` as CSV (no index column) atomically."""
    return write_atomic(path, frame.to_csv(index=False, lineterminator="\n"))


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
