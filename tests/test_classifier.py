"""Classifiers on the three classes: metrics in closed form, `python -m train task=classify` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import subprocess_env

from analysis.inference.classifier import classification_metrics, opacity_index
from rsna_yolo.core.cli import UserError

CLASSES = ["lung_opacity", "normal", "not_normal"]


def test_metrics_of_hand_made_probabilities():
    labels = ["lung_opacity", "lung_opacity", "normal", "not_normal", "not_normal"]
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.4, 0.1, 0.5], [0.2, 0.3, 0.5]])
    probs = pd.DataFrame(p, columns=[f"p_{c}" for c in CLASSES]).assign(p_opacity=p[:, 0])
    m = classification_metrics(labels, probs, CLASSES)
    # predicted: lung_opacity, normal, normal, not_normal, not_normal -> 4 of 5 right
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["classes"]["lung_opacity"] == {"precision": 1.0, "recall": 0.5, "n_images": 2}
    assert m["classes"]["normal"] == {"precision": 0.5, "recall": 1.0, "n_images": 1}
    assert m["classes"]["not_normal"] == {"precision": 1.0, "recall": 1.0, "n_images": 2}
    assert m["confusion"]["matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 2]]
    # AUC of p_opacity, positives {0.7, 0.3} against negatives {0.1, 0.4, 0.2}: pairs won 3 + 2 of 6
    assert m["auc_opacity"] == pytest.approx(5 / 6)


def test_class_names_must_be_the_rsna_classes():
    assert opacity_index({0: "normal", 1: "not_normal", 2: "lung_opacity"}, "m") == 2
    assert opacity_index({0: "no_opacity", 1: "opacity"}, "m") == 1
    with pytest.raises(UserError, match=r"classifier m\.pt: class names \['cat', 'dog'\] are not the RSNA"):
        opacity_index({0: "cat", 1: "dog"}, "m.pt")


def _run_train(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "train", *args]
    return subprocess.run(cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def view(tmp_path_factory) -> Path:
    from tiny_yolo_data import make_synthetic_dataset

    from convert.classify import write_classify_view

    data = make_synthetic_dataset(tmp_path_factory.mktemp("cls"), patients=24, imgsz=64)
    write_classify_view(data.parent)
    return data.parent / "classify"


def test_classify_arguments_are_checked_before_training(view: Path, tmp_path: Path, monkeypatch, capsys):
    dataset = view.parent
    """In this process (``main`` as ``python -m train`` calls it: the exit code and the one line on stderr;
    a subprocess each would cost a start-up of PyTorch per case)."""
    from rsna_yolo.train.__main__ import main

    monkeypatch.chdir(tmp_path)
    for args, message in [
        (["task=classify", f"data={dataset / 'data.yaml'}"], f"data={dataset / 'classify'}, made by"),
        (["task=classify", f"data={view}", "kaggle_every=1"], "kaggle_every: the Kaggle metric scores boxes"),
        (["task=segment", f"data={view}"], "task=segment: python -m train trains detectors"),
        ([f"data={view}", "model=yolo11n.yaml"], "a folder; a detector trains on a data YAML"),
    ]:
        code = main([*args, "model=yolo11n-cls.yaml", "epochs=1", f"project={tmp_path}"])
        err = capsys.readouterr().err
        assert code == 2 and message in err, err[-1500:]
        assert len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_train_a_basic_cnn_classifier_writes_classify_json(view: Path, tmp_path: Path):
    """The baseline YAML (found from any working directory), one epoch, then classify.json on val."""
    done = _run_train(
        "task=classify", f"data={view}", "model=yolo_configs/models/basic_cnn_cls.yaml", "epochs=1",
        "imgsz=32", "batch=8", "workers=0", "wandb=False", "plots=False", f"project={tmp_path}", "name=cls",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run = tmp_path / "cls"
    result = json.loads((run / "classify.json").read_text())
    n_val = sum(1 for _ in (view / "val").glob("*/*.png"))
    assert result["n_images"] == n_val and 0.0 <= result["accuracy"] <= 1.0
    assert sum(map(sum, result["confusion"]["matrix"])) == n_val
    assert sorted(result["classes"]) == CLASSES
    preds = pd.read_csv(run / "classifier_val.csv")
    assert list(preds.columns) == ["patientId", "p_opacity"] and len(preds) == n_val
    assert preds["p_opacity"].between(0, 1).all() and (run / "classify_confusion.png").is_file()
    assert "classifier (val): accuracy" in done.stdout
