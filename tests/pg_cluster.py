"""A throwaway PostgreSQL server for tests: a cluster in a temporary folder, on a loopback port and a
private Unix socket, removed at the end (also when the test fails). Needs Debian's ``postgresql`` server
binaries (``.ci/run`` installs them); the caller skips with the reason when :func:`server_bin` is None."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def server_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl``, or None."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(root.glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    found = [b for b in versions if (b / "initdb").is_file() and (b / "pg_ctl").is_file()]
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster; yield its SQLAlchemy URL for Optuna (``postgresql+psycopg://postgres@127.0.0.1:P/postgres``).

    As root (CI, the build machines) the server runs as the ``postgres`` user, which PostgreSQL requires.
    """
    bindir = server_bin()
    assert bindir is not None, "no PostgreSQL server binaries"
    root = Path(tempfile.mkdtemp(prefix="rsna-yolo-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    log = root / "server.log"
    env = {**os.environ, "LC_ALL": "C"}
    try:
        initdb = [
            *as_postgres,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
        ]
        subprocess.run(initdb, check=True, capture_output=True, env=env, timeout=120)
        options = f"-k {root} -h 127.0.0.1 -p {port}"
        start = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w"]
        subprocess.run([*start, "-t", "60", "start"], check=True, capture_output=True, env=env, timeout=120)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                            "stop"], capture_output=True, env=env, timeout=60)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
