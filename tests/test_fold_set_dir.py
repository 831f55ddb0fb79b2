"""Where ``python -m train folds`` puts a set without ``name=``: detectors and classifiers of one dataset
in two folders (``runs/folds/<dataset>`` and ``runs/folds/<dataset>_cls``), under the current folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsna_yolo.train.args import TrainOptions
from rsna_yolo.train.folds import default_set_dir, run_folds


class Stop(Exception):
    """Raised by the stand-in trainer: the test needs the first fold's arguments, not a training."""


@pytest.fixture(scope="module")
def folded(tmp_path_factory) -> Path:
    from convert.classify import write_classify_view
    from convert.rsna import convert_rsna
    from convert.synth import generate

    root = tmp_path_factory.mktemp("setdir")
    generate(root / "kaggle", 12, 0, seed=5, imgsz=64)
    convert_rsna(
        root / "kaggle", root / "rsna64", imgsz=32, folds=2, workers=1, progress=False, echo=lambda *a: None
    )
    write_classify_view(root / "rsna64")
    return root / "rsna64"


def first_fold_project(folded: Path, args: dict, monkeypatch) -> Path:
    """The ``project`` (the set's folder) that :func:`run_folds` gives the trainer for fold 0."""
    import rsna_yolo.train.run

    seen: list[dict] = []

    def record(fold_args, options=None, **kw):
        seen.append(fold_args)
        raise Stop

    monkeypatch.setattr(rsna_yolo.train.run, "train", record)
    with pytest.raises(Stop):
        run_folds(folded / "folds", dict(args), TrainOptions(wandb=False), progress=False)
    assert seen[0]["name"] == "fold0"
    return Path(seen[0]["project"])


def test_detector_and_classifier_sets_default_to_two_folders(folded, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    detector = first_fold_project(folded, {"model": "yolo11n.yaml"}, monkeypatch)
    classifier = first_fold_project(folded, {"model": "yolo11n-cls.yaml", "task": "classify"}, monkeypatch)
    assert detector == tmp_path / "runs" / "folds" / "rsna64"
    assert classifier == tmp_path / "runs" / "folds" / "rsna64_cls"
    # name= and project= still say exactly where, for either task
    named = first_fold_project(
        folded, {"task": "classify", "project": str(tmp_path / "p"), "name": "mine"}, monkeypatch
    )
    assert named == tmp_path / "p" / "mine"
    assert default_set_dir(folded, "detect", name="x") == tmp_path / "runs" / "folds" / "x"
