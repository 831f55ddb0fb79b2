"""The project never reaches the network: environment set by ``rsna_yolo/offline.py``, and a traced real
run."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rsna_yolo import offline
from tests.conftest import REPO_ROOT, subprocess_env
from tests.tiny_yolo_data import make_tiny_dataset


def _fresh_env(**extra: str) -> dict[str, str]:
    """The current environment without any variable rsna_yolo/offline.py decides (as on a new shell)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "WANDB_", "RSNA_YOLO_"))}
    env.pop("MPLBACKEND", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update(extra)
    return env


def _decided(env: dict[str, str]) -> dict[str, str]:
    code = "import json; from rsna_yolo import offline; print(json.dumps(offline.ENVIRONMENT))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def test_default_is_offline_for_ultralytics_and_wandb(tmp_path: Path):
    decided = _decided(_fresh_env(YOLO_CONFIG_DIR=str(tmp_path / "cfg")))
    assert decided["YOLO_OFFLINE"] == "1"
    assert decided["YOLO_AUTOINSTALL"] == "False"
    assert decided["WANDB_MODE"] == "offline"
    # the font Ultralytics would otherwise download for its plots is in place
    assert (tmp_path / "cfg" / "Ultralytics" / "Arial.ttf").stat().st_size > 100_000


def test_wandb_goes_online_only_with_a_key(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    env = _fresh_env(HOME=str(home), YOLO_CONFIG_DIR=str(tmp_path / "cfg"))
    assert _decided(env)["WANDB_MODE"] == "offline"  # no key: online W&B would crash after ~4 s
    assert _decided({**env, "WANDB_API_KEY": "x" * 40})["WANDB_MODE"] == "online"
    (home / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "x" * 40 + "\n")
    assert _decided(env)["WANDB_MODE"] == "online"


def test_rsna_yolo_online_lets_ultralytics_reach_the_hub(tmp_path: Path):
    decided = _decided(_fresh_env(RSNA_YOLO_ONLINE="1", YOLO_CONFIG_DIR=str(tmp_path / "cfg")))
    assert "YOLO_OFFLINE" not in decided
    assert decided["WANDB_MODE"] == "offline"


def _closed_loopback_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_online_wandb_without_a_server_falls_back_to_offline(monkeypatch):
    from rsna_yolo.train.wandb_log import choose_mode

    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{_closed_loopback_port()}")
    monkeypatch.setenv("WANDB_MODE", "online")
    assert offline.wandb_reachable(timeout=1) is False
    assert choose_mode(user_set=frozenset()) == "offline"
    assert os.environ["WANDB_MODE"] == "offline"
    # a mode the user chose is kept as it is
    monkeypatch.setenv("WANDB_MODE", "online")
    assert choose_mode(user_set=frozenset({"WANDB_MODE"})) == "online"


def test_wandb_reachable_sees_a_listening_server(monkeypatch):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert offline.wandb_reachable(timeout=1) is True


def test_user_choices_win(tmp_path: Path):
    decided = _decided(_fresh_env(WANDB_MODE="disabled", YOLO_CONFIG_DIR=str(tmp_path / "cfg")))
    assert decided["WANDB_MODE"] == "disabled"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed (.ci/run installs it)")
def test_training_with_wandb_and_rescoring_opens_no_network_socket(tmp_path: Path):
    """A whole `python -m train` run (W&B on, Kaggle rescoring, plots) traced with strace: every
    connect() of every process must be to a local (AF_UNIX) socket."""
    data = make_tiny_dataset(tmp_path / "data", n_train=8, n_val=4)
    trace = tmp_path / "trace.txt"
    cmd = [
        "strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=connect", "-o", str(trace),
        sys.executable, "-m", "train", f"data={data}", "model=yolov8n.yaml", "imgsz=64", "epochs=1",
        "batch=4", "workers=0", "device=cpu", f"project={tmp_path / 'runs'}", "name=traced",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "runs" / "traced" / "kaggle.json").exists()
    assert list((tmp_path / "runs" / "traced" / "wandb").glob("offline-run-*"))
    connects = [line for line in trace.read_text().splitlines() if "connect(" in line]
    network = [line for line in connects if not re.search(r"sa_family=AF_UNIX", line)]
    assert connects, "strace recorded no connect() at all: the trace did not work"
    assert network == [], "network connections attempted:\n" + "\n".join(network[:10])


def test_offline_module_is_what_packages_import_first():
    for package in ("convert", "analysis", "rsna_yolo", "rsna_yolo/train"):
        init = (REPO_ROOT / package / "__init__.py").read_text()
        first_import = next(line for line in init.splitlines() if line.startswith(("import", "from")))
        assert first_import.startswith("from rsna_yolo import offline"), package
    assert offline.ENVIRONMENT["YOLO_OFFLINE"] == os.environ["YOLO_OFFLINE"]
