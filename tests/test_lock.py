"""The locked environment: the lock satisfies pyproject.toml, the venv holds exactly the lock, and no test or
lint tool is a runtime dependency of the package (``scripts/lock_check.py``, ``scripts/pip_sources.py``)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_synth_hard_fingerprint import PINNED_WITH


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


lock_check = _load("lock_check")
pip_sources = _load("pip_sources")
DEV_TOOLS = {"pytest", "pytest-timeout", "pytest-xdist", "ruff", "uv", "setuptools"}


def test_the_lock_satisfies_pyproject():
    pins = lock_check.read_lock()
    lock_check.check_lock(pins, lock_check.project_requirements())
    assert {p.name for p in pins} >= {"torch", "ultralytics", "pydicom", *DEV_TOOLS}


def test_the_lock_pins_what_the_hard_level_was_pinned_with():
    """The hard level's bytes depend on these versions: the lock must hold exactly them."""
    pins = {p.name: p.version for p in lock_check.read_lock()}
    assert {name: pins.get(name) for name in PINNED_WITH} == PINNED_WITH


def test_a_range_the_lock_leaves_is_one_line_naming_it(tmp_path: Path):
    pins = lock_check.read_lock()
    with pytest.raises(
        lock_check.LockError,
        match=r"pins numpy==2\.4\.6, outside pyproject.toml's dependencies range numpy>=3",
    ):
        lock_check.check_lock(pins, [("dependencies", Requirement("numpy>=3"))])
    with pytest.raises(
        lock_check.LockError, match=r"has no tensorflow, which pyproject\.toml's dependency-groups\.dev"
    ):
        lock_check.check_lock(pins, [("dependency-groups.dev", Requirement("tensorflow>=1"))])
    # a requirement for another platform only is not asked of this one
    lock_check.check_lock(pins, [("dependencies", Requirement("pywin32>=1; sys_platform == 'win32'"))])
    # the command line: exit 1 and one line on stderr
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["pandas<2"]\n')
    script = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "lock_check.py"),
        "lock",
        "--pyproject",
        str(pyproject),
    ]
    proc = subprocess.run(script, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "pandas" in proc.stderr and "make lock" in proc.stderr


def test_the_venv_check_names_each_difference():
    pins = [lock_check.Pin("numpy", "2.4.6", None), lock_check.Pin("torch", "2.14.1", None),
            lock_check.Pin("pywin32", "311", lock_check.Marker("sys_platform == 'win32'"))]  # fmt: skip
    lock_check.check_venv(pins, {"numpy": "2.4.6", "torch": "2.14.1", "rsna-yolo": "0.1.0", "pip": "23.2.1"},
                          {"sys_platform": "linux"})  # fmt: skip
    with pytest.raises(lock_check.LockError) as err:
        lock_check.check_venv(pins, {"numpy": "2.5.0", "requests": "2.0"}, {"sys_platform": "linux"})
    msg = str(err.value)
    assert "numpy 2.5.0 (locked 2.4.6)" in msg and "missing: torch==2.14.1" in msg
    assert "not in the lock: requests 2.0" in msg and "pywin32" not in msg and "\n" not in msg


def test_this_venv_holds_exactly_the_lock():
    """What `make venv` installed is the lock, nothing more or less (run under the project's .venv)."""
    venv = REPO_ROOT / ".venv"
    if Path(sys.prefix).resolve() != venv.resolve():
        pytest.skip(f"runs under the project's venv ({venv}, made by make venv); this is {sys.prefix}")
    lock_check.check_venv(lock_check.read_lock(), lock_check.installed())


def test_no_test_or_lint_tool_is_a_runtime_dependency():
    runtime = {canonicalize_name(Requirement(r).name) for r in _pyproject()["project"]["dependencies"]}
    assert not runtime & DEV_TOOLS
    try:
        installed = metadata.requires("rsna-yolo") or []
    except metadata.PackageNotFoundError:
        pytest.skip("needs the project installed (make venv)")
    names = {canonicalize_name(Requirement(r).name) for r in installed if "extra ==" not in r}
    assert names == runtime, "the installed package's metadata is not pyproject.toml's dependencies"
    assert not names & DEV_TOOLS


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_uv_gets_the_package_sources_pip_is_set_to_use(tmp_path: Path):
    """uv reads no pip configuration: make venv hands it pip's find-links and extra indexes."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    index = tmp_path / "simple"
    index.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no pip.conf: pip reports no settings
    script = [sys.executable, str(REPO_ROOT / "scripts" / "pip_sources.py")]
    assert subprocess.check_output(script, env=env, text=True, timeout=60).strip() == ""
    env |= {"PIP_FIND_LINKS": f"{wheels} {tmp_path / 'gone'}", "PIP_EXTRA_INDEX_URL": f"file://{index}"}
    out = subprocess.check_output(script, env=env, text=True, timeout=60).split()
    assert out == ["--find-links", str(wheels), "--extra-index-url", f"file://{index}",
                   "--index-strategy", "unsafe-best-match"]  # fmt: skip
