"""Shared fixtures. Importing ``offline`` first keeps every test (and its subprocesses) off the network."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# W&B would go online on a developer machine that has an API key; tests never touch the network.
os.environ.setdefault("WANDB_MODE", "offline")
# Under pytest-xdist (make test runs the suite on every core) each worker has an Ultralytics settings folder
# of its own: a training run switches the W&B setting in that file for its duration, and Ultralytics writes
# the file whole at first import; two workers sharing it would see each other's runs.
# The controlling process has chosen the folder already (offline.py, or the user): workers add their name.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _shared = os.environ.get("YOLO_CONFIG_DIR") or str(Path(tempfile.gettempdir()) / "rsna-yolo-tests")
    os.environ["YOLO_CONFIG_DIR"] = f"{_shared}-{os.environ['PYTEST_XDIST_WORKER']}"

from rsna_yolo import offline

REPO_ROOT = offline.REPO_ROOT
SAMPLE_DIR = Path(os.environ.get("RSNA_SAMPLE_DIR", REPO_ROOT.parent / "shared" / "rsna_sample"))
SAMPLE_FILES = ("stage_2_train_labels.csv", "stage_2_detailed_class_info.csv", "stage_2_train_images")
SKIP_REASON = (
    f"needs real RSNA challenge files (both stage_2 CSVs and some stage_2_train_images/*.dcm from the "
    f"Kaggle download) at {SAMPLE_DIR}: set RSNA_SAMPLE_DIR to such a folder"
)


LONGEST_FIRST = (
    "test_benchmarks_training.py",
    "test_recipe.py",
    "test_recipe_plan.py",
    "test_benchmarks.py",
    "test_folds.py",
    "test_rescore_submit.py",
    "test_installed.py",
    "test_export.py",
    "test_gating_e2e.py",
    "test_convert_resume.py",
)
"""The slowest test files (each a minute or more of one core), scheduled first: with ``-n auto --dist
loadfile`` each file goes whole to one worker in collection order, and a long file collected last (they are
named after what they test, so ``test_recipe*`` sort late) keeps one core busy after the other has
finished."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the real files (``-m real_data`` selects them, ``-m 'not real_data'``
    leaves them out); put the files of :data:`LONGEST_FIRST` first, in that order (the rest keep theirs)."""
    for item in items:
        if "sample_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(
        key=lambda item: rank.get(item.path.name, len(rank))
    )  # stable: a file's tests keep their order


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real challenge files (read-only). Never write here: copy with ``real_kaggle`` first.

    On a bare clone (no ``../shared/rsna_sample`` and no ``RSNA_SAMPLE_DIR``) the tests that need them are
    skipped with :data:`SKIP_REASON`; ``.ci/run`` refuses to run without them.
    """
    if not all((SAMPLE_DIR / name).exists() for name in SAMPLE_FILES):
        pytest.skip(SKIP_REASON)
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def real_labels(sample_dir: Path):
    """The real ``stage_2_train_labels.csv`` as pandas reads it (a DataFrame; read once per session)."""
    import pandas as pd

    return pd.read_csv(sample_dir / "stage_2_train_labels.csv")


@pytest.fixture
def real_kaggle(tmp_path: Path, sample_dir: Path) -> Path:
    """A writable copy of the real sample in the Kaggle layout (CSVs + 12 training DICOMs)."""
    dst = tmp_path / "kaggle"
    shutil.copytree(sample_dir, dst, ignore=shutil.ignore_patterns("README.md"))
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def subprocess_env() -> dict[str, str]:
    """Environment for subprocesses: the offline settings, without pytest's marker variable.

    Ultralytics switches its W&B callback off when ``PYTEST_CURRENT_TEST`` is set; tests of the
    W&B integration need it gone.
    """
    env = dict(os.environ)
    env.pop("PYTEST_CURRENT_TEST", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env
