"""The one place that decides what Ultralytics and W&B may reach over the network.

Import this module before anything imports ``ultralytics`` or ``wandb`` (every package of the
project does so in its ``__init__``, and ``tests/conftest.py`` does so for the tests). Importing it
only sets environment variables, hides OpenVINO's telemetry (below) and, once, copies a font; it imports
neither library and opens no socket.

Ultralytics is offline by default (``RSNA_YOLO_ONLINE`` unset or ``0``):

- ``YOLO_OFFLINE=1`` stops Ultralytics' online probe at import and its hub downloads;
- ``YOLO_AUTOINSTALL=False`` stops pip installs of missing packages;
- ``YOLO_CONFIG_DIR`` points at ``~/.config/rsna-yolo/ultralytics`` (:data:`CONFIG_DIR`) so the
  project's settings (``sync``, ``wandb``) never touch the user's own Ultralytics settings;
- a TTF font (matplotlib's DejaVuSans) is placed where Ultralytics looks for ``Arial.ttf`` so plotting
  never downloads one (``YOLO_OFFLINE`` does not stop that download).

``RSNA_YOLO_ONLINE=1`` (users with internet who want hub weights such as ``yolo11s.pt``) leaves
Ultralytics' network switches alone.

W&B: ``WANDB_MODE=offline`` unless an API key is configured (``WANDB_API_KEY`` or a ``~/.netrc`` entry),
then ``online``; without a key an online W&B run would crash. A key without a network would make W&B
hang for minutes: ``rsna_yolo.train.wandb_log`` checks that the server answers (:func:`wandb_reachable`)
before
it starts an online run that this module chose, and falls back to offline. The tests and the synthetic
demo set ``WANDB_MODE=offline`` themselves. Variables the user set explicitly always win
(:data:`USER_SET` names them).

OpenVINO (``rsna-yolo export --format openvino``): its model converter and NNCF (INT8) send usage telemetry
to Google Analytics through ``openvino_telemetry`` unless a consent file in ``~/intel`` says no; both fall
back to a stub when that package cannot be imported. Offline, this module makes it unimportable
(``sys.modules["openvino_telemetry"] = None``), which sends nothing and writes nothing in the user's home.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The clone (or, installed, the folder above the package): where ``yolo_configs/`` is looked up."""
CONFIG_DIR = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "rsna-yolo" / "ultralytics"
"""Ultralytics' settings and font for this project: the user's config folder, not the clone (a command run
from any folder writes nothing into the clone) and not Ultralytics' own (its ``sync``/``wandb`` settings are
the project's)."""
ONLINE_ENV = "RSNA_YOLO_ONLINE"
DECIDED = ("YOLO_CONFIG_DIR", "YOLO_AUTOINSTALL", "YOLO_OFFLINE", "MPLBACKEND", "WANDB_MODE", "WANDB_SILENT")
USER_SET = frozenset(name for name in DECIDED if name in os.environ)
"""The variables of :data:`DECIDED` that were set before this module decided anything."""


def is_online() -> bool:
    """True when the user opted in to network access with ``RSNA_YOLO_ONLINE=1``."""
    return os.environ.get(ONLINE_ENV, "0").strip().lower() in {"1", "true", "yes", "on"}


def wandb_key_configured() -> bool:
    """True when W&B has an API key (environment variable or ``~/.netrc``); reads no network."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def wandb_reachable(timeout: float = 3.0) -> bool:
    """True when the W&B server (``WANDB_BASE_URL``, default api.wandb.ai) accepts a TCP connection.

    This opens a socket: call it only where an online W&B run is about to start anyway.
    """
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((url.hostname or "api.wandb.ai", port), timeout=timeout):
            return True
    except OSError:
        return False


def _install_font(config_dir: Path) -> None:
    """Put a TTF where Ultralytics looks for Arial.ttf, so plots never download a font."""
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    # Ultralytics appends "Ultralytics" to YOLO_CONFIG_DIR on some versions and not on others.
    for folder in (config_dir, config_dir / "Ultralytics"):
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            dst = folder / name
            if not dst.exists():
                folder.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_suffix(f".tmp{os.getpid()}")
                shutil.copyfile(src, tmp)
                tmp.replace(dst)


def configure() -> dict[str, str]:
    """Set the environment (idempotent) and return the variables this module decided."""
    decided: dict[str, str] = {}

    def default(name: str, value: str) -> None:
        os.environ.setdefault(name, value)
        decided[name] = os.environ[name]

    default("YOLO_CONFIG_DIR", str(CONFIG_DIR))
    default("YOLO_AUTOINSTALL", "False")
    default("MPLBACKEND", "Agg")
    if not is_online():
        default("YOLO_OFFLINE", "1")
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]  # import -> ImportError
    default("WANDB_MODE", "online" if wandb_key_configured() else "offline")
    default("WANDB_SILENT", "true")
    _install_font(Path(os.environ["YOLO_CONFIG_DIR"]))
    return decided


ENVIRONMENT = configure()


def ultralytics_settings(**updates) -> None:
    """Pin Ultralytics' project-local settings (``sync`` off always) plus ``updates``, e.g. ``wandb=True``.

    Call this only where Ultralytics is about to be used anyway: it imports it (about a second).
    """
    from ultralytics.utils import SETTINGS

    wanted = {"sync": False, **updates}
    if any(SETTINGS.get(k) != v for k, v in wanted.items()):
        SETTINGS.update(wanted)
