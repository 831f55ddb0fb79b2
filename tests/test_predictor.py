"""The inference door's setting (:class:`analysis.inference.TunedSetting`): read back from what tuning
wrote, and one clear line when it does not match its weights. (That a Predictor reproduces a rescored run's
score and rows is in ``test_rescore_submit.py``, which trains a tiny model.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from analysis.inference import TunedSetting
from rsna_yolo.core.cli import UserError


def tuned_run(tmp_path: Path, **extra) -> Path:
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    weights = run / "weights" / "best.pt"
    weights.write_bytes(b"weights v1")
    signature = {"weights": [{"path": str(weights.resolve()), "size": 10,
                              "sha1": hashlib.sha1(b"weights v1").hexdigest()}]}  # fmt: skip
    kaggle = {"split": "val", "weights": str(weights), "conf": 0.35, "scale": 0.9, "imgsz": 96, "tta": True,
              "wbf": {"iou_thr": 0.45, "skip_box_thr": 0.05, "conf_type": "max"}, "score": 0.4,
              "prediction_signature": signature, **extra}  # fmt: skip
    (run / "kaggle.json").write_text(json.dumps(kaggle))
    return run


def test_every_part_of_the_setting_is_read_back(tmp_path):
    run = tuned_run(tmp_path)
    s = TunedSetting.from_run(run)
    assert s.weights == (run / "weights" / "best.pt",)
    assert (s.conf, s.box_scale, s.sizes, s.tta) == (0.35, 0.9, (96,), True)
    assert s.wbf == {"iou_thr": 0.45, "skip_box_thr": 0.05, "conf_type": "max"}
    assert s.gate is None and s.classifiers == ()
    assert s.source == run / "kaggle.json" and TunedSetting.from_run(run / "kaggle.json") == s
    assert s.fused and s.floor == 0.01  # fused boxes are predicted at the floor they were tuned from
    assert "conf >= 0.35, box scale 0.9" in s.describe()


def test_a_gated_setting_reads_its_classifier_and_gate(tmp_path):
    cls = tmp_path / "cls.pt"
    cls.write_bytes(b"classifier")
    s = TunedSetting.from_run(tuned_run(tmp_path, gate={"mode": "hard", "gate": 0.3}, classifier=[str(cls)]))
    assert s.gate == {"mode": "hard", "gate": 0.3} and s.classifiers == (cls,)


def test_a_missing_model_is_one_line(tmp_path):
    run = tuned_run(tmp_path)
    (run / "weights" / "best.pt").unlink()
    with pytest.raises(UserError, match=r"the model it was tuned with is missing: .*best\.pt"):
        TunedSetting.from_run(run)


def test_weights_changed_since_tuning_are_one_line(tmp_path):
    run = tuned_run(tmp_path)
    (run / "weights" / "best.pt").write_bytes(b"weights v2, retrained")
    with pytest.raises(UserError, match="changed since it was tuned"):
        TunedSetting.from_run(run)


def test_a_gate_without_its_classifier_is_one_line(tmp_path):
    run = tuned_run(tmp_path, gate={"mode": "soft", "gate": None}, classifier=[str(tmp_path / "gone.pt")])
    with pytest.raises(UserError, match="classifier it was tuned with is missing"):
        TunedSetting.from_run(run)


def test_no_tuning_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no tuned conf/scale \\(no such file\\)"):
        TunedSetting.from_run(tmp_path)


def test_a_fold_set_tuned_on_other_folds_is_one_line(tmp_path):
    for k in range(2):
        (tmp_path / f"fold{k}" / "weights").mkdir(parents=True)
        (tmp_path / f"fold{k}" / "weights" / "best.pt").write_bytes(b"w")
    folds = {str(k): {"weights": "x"} for k in range(3)}
    (tmp_path / "kaggle_oof.json").write_text(json.dumps({"split": "oof", "conf": 0.4, "scale": 1.0,
                                                          "folds": folds}))  # fmt: skip
    with pytest.raises(UserError, match=r"tuned on 3 folds, but .* has 2"):
        TunedSetting.from_run(tmp_path)
    folds.pop("2")
    (tmp_path / "kaggle_oof.json").write_text(json.dumps({"split": "oof", "conf": 0.4, "scale": 1.0,
                                                          "folds": folds}))  # fmt: skip
    s = TunedSetting.from_run(tmp_path)
    assert len(s.weights) == 2 and s.wbf == {"iou_thr": 0.55, "skip_box_thr": 0.01, "conf_type": "max"}
