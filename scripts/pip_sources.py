"""Print uv's options for the package sources pip is configured with (find-links, extra indexes).

uv reads no pip configuration. On a machine whose pip is set to use local folders or a mirror (the build
machines keep the large wheels, torch among them, on their own disk), ``make venv`` hands uv the same places
so that it reads them instead of downloading. Nothing is printed where pip has no such settings. The lock's
hashes decide what may be installed, so the best match across sources is safe to take.
"""

from __future__ import annotations

import os
import subprocess
import sys


def pip_setting(key: str, env: str) -> list[str]:
    """A pip setting from the environment (``PIP_*``), else from pip's configuration files."""
    value = os.environ.get(env, "")
    if not value:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "config", "get", f"global.{key}"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            value = proc.stdout if proc.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            value = ""
    return value.split()


def uv_options() -> list[str]:
    options = []
    for place in pip_setting("find-links", "PIP_FIND_LINKS"):
        if "://" in place or os.path.isdir(place):
            options += ["--find-links", place]
    for index in pip_setting("extra-index-url", "PIP_EXTRA_INDEX_URL"):
        if not index.startswith("file://") or os.path.isdir(index[len("file://") :]):
            options += ["--extra-index-url", index]
    if options:
        options += ["--index-strategy", "unsafe-best-match"]
    return options


if __name__ == "__main__":
    print(" ".join(uv_options()))
