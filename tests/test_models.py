"""yolo_configs/models/: every model YAML builds what its comment says and trains one epoch offline with
plain Ultralytics (``YOLO(yaml).train``, not this project's wrapper); detectors also train through
`python -m train`.

The YAMLs are globbed, so a model added later is covered. Files named ``basic_*`` are the plain-CNN baselines:
only strided ``Conv`` layers before the head, none of YOLO's blocks (C2f/C3k2, SPPF, C2PSA) and no neck.
Each YAML states its parameter count on a ``# parameters: N`` line; the built model must have exactly N.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT, subprocess_env
from tiny_yolo_data import make_tiny_dataset

MODELS = sorted((REPO_ROOT / "yolo_configs" / "models").glob("*.yaml"))
HEAD_TASK = {"Detect": "detect", "Classify": "classify"}  # the last layer's module -> Ultralytics task
YOLO_PARTS = {"C2f", "C3k2", "C3", "C2PSA", "SPPF", "SPP", "Concat", "Upsample"}  # what a baseline leaves out
CLASSES = ("lung_opacity", "not_normal", "normal")  # the challenge's three classes, as folder names
TINY = {"epochs": 1, "batch": 4, "workers": 0, "plots": False, "device": "cpu"}
# A stride-32 detector needs a grid of >= 10 anchors (the assigner's top 10): imgsz 128 gives 4 x 4.
IMGSZ = {"detect": 128, "classify": 64}


def task_of(path: Path) -> str:
    return HEAD_TASK[yaml.safe_load(path.read_text())["head"][-1][2]]


def stated_parameters(path: Path) -> int:
    match = re.search(r"^# parameters: ([\d,]+)", path.read_text(), re.MULTILINE)
    assert match, f"{path.name}: no '# parameters: N' comment line"
    return int(match.group(1).replace(",", ""))


def make_class_folders(
    root: Path, *, n_train: int = 4, n_val: int = 2, size: int = 64, seed: int = 0
) -> Path:
    """``root/{train,val}/<class>/*.png`` for `yolo classify train data=root`: dark noise (normal), plus a
    bright rectangle (lung_opacity) or bright horizontal lines (not_normal)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 40, (size, size), dtype=np.uint8)
                if name == "lung_opacity":
                    x, y = rng.integers(4, size // 2, 2)
                    img[y : y + size // 3, x : x + size // 4] = 220
                elif name == "not_normal":
                    img[rng.integers(0, size, 4)] = 160
                cv2.imwrite(str(root / split / name / f"{i}.png"), img)
    return root


def layer_names(model) -> list[str]:
    """Module type names of the model's top-level layers, in order (``model.model`` in Ultralytics)."""
    return [type(m).__name__ for m in model.model]


def check_architecture(path: Path, model) -> int:
    """Assert a built model matches its YAML's promises; return its parameter count."""
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == stated_parameters(path)
    if path.stem.startswith("basic_"):
        all_types = {type(m).__name__ for m in model.modules()}
        assert not all_types & YOLO_PARTS, f"{path.name} builds YOLO parts: {all_types & YOLO_PARTS}"
        *body, head = layer_names(model)
        assert set(body) == {"Conv"} and head in HEAD_TASK
    return n_params


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_model_yaml_builds_what_its_comment_says(path: Path, record_property):
    from ultralytics import YOLO

    text = path.read_text()
    assert text.startswith("# "), "each model YAML starts with a comment saying what it is and why"
    assert "/work/" not in text and "/home/" not in text
    model = YOLO(path)
    assert model.task == task_of(path)
    n_params = check_architecture(path, model.model)
    record_property("parameters", n_params)
    print(f"{path.name}: {n_params:,} parameters")
    if path.stem.startswith("basic_") and model.task == "detect":
        assert model.model.stride.tolist() == [32.0]  # one scale, chosen for RSNA's large boxes (see YAML)


def test_the_baselines_exist():
    models = {p.stem: p for p in MODELS}
    for stem, task, nc in (("basic_cnn_det", "detect", 1), ("basic_cnn_cls", "classify", 3)):
        assert stem in models, f"yolo_configs/models/{stem}.yaml is missing"
        assert (task_of(models[stem]), yaml.safe_load(models[stem].read_text())["nc"]) == (task, nc)
        assert "leaves out" in models[stem].read_text(), "the comment says what the baseline leaves out"


@pytest.mark.slow
@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_one_epoch_with_plain_ultralytics(path: Path, tmp_path: Path):
    from ultralytics import YOLO

    task = task_of(path)
    if task == "detect":
        data = make_tiny_dataset(tmp_path / "data", n_train=8, n_val=4, size=IMGSZ[task])
    else:
        data = make_class_folders(tmp_path / "data", size=IMGSZ[task])
    YOLO(path).train(data=str(data), imgsz=IMGSZ[task], project=str(tmp_path / "runs"), name="run", **TINY)

    run = tmp_path / "runs" / "run"
    results = pd.read_csv(run / "results.csv")
    results.columns = results.columns.str.strip()
    assert results["epoch"].tolist() == [1]
    metric = "metrics/mAP50(B)" if task == "detect" else "metrics/accuracy_top1"
    assert 0.0 <= results[metric].iloc[0] <= 1.0
    for name in ("best.pt", "last.pt"):
        trained = YOLO(run / "weights" / name)
        assert trained.task == task
        check_architecture(path, trained.model)  # the saved weights are this architecture, not a default one
    if task == "classify":
        assert sorted(trained.names.values()) == sorted(CLASSES)


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in MODELS if task_of(p) == "detect"], ids=lambda p: p.name)
def test_detector_trains_through_python_m_train(path: Path, tmp_path: Path):
    data = make_tiny_dataset(tmp_path / "data", n_train=8, n_val=4, size=IMGSZ["detect"])
    argv = [f"{k}={v}" for k, v in {**TINY, "imgsz": IMGSZ["detect"]}.items()]
    proc = subprocess.run(
        [sys.executable, "-m", "train", f"data={data}", f"model={path}", *argv, "wandb=False",
         f"project={tmp_path / 'runs'}", "name=run"],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "runs" / "run"
    result = json.loads((run / "kaggle.json").read_text())
    assert 0.0 <= result["score"] <= 1.0 and result["n_images"] == 4
    assert Path(result["weights"]) == run / "weights" / "best.pt"
    assert yaml.safe_load((run / "args.yaml").read_text())["model"] == str(path)
