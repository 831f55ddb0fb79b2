"""``analysis submit``'s settings: the tuned threshold and box scale, their checks, and the PNG manifest."""

from __future__ import annotations

import json

import pytest

from analysis.inference.submit import find_manifest, tuned_settings
from analysis.scoring.checks import check_settings
from analysis.scoring.submission import image_ids
from rsna_yolo.core.cli import UserError
from tests.fake_dataset import fake_dataset


def test_submit_settings_and_png_manifest(tmp_path):
    check_settings(0.0, 0.8)
    check_settings(1.0, 1.0)
    with pytest.raises(UserError, match=r"--conf 1\.5: a confidence threshold is between 0 and 1"):
        check_settings(1.5, 1.0)
    with pytest.raises(UserError, match="--scale 0: the box scale must be positive"):
        check_settings(0.5, 0.0)
    root = fake_dataset(tmp_path / "ds")
    val = root / "images" / "val"
    assert find_manifest(val, image_ids(val)) == root.resolve() / "manifest.csv"
    dicoms = tmp_path / "dicoms"
    dicoms.mkdir()
    (dicoms / "p.dcm").write_bytes(b"")
    assert find_manifest(dicoms, image_ids(dicoms)) is None  # DICOMs carry their own frame
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "p.png").write_bytes(b"")
    assert find_manifest(loose, image_ids(loose)) is None


def test_tuned_settings_from_a_run_folder_or_its_kaggle_json(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "kaggle.json").write_text(json.dumps({"conf": 0.3, "scale": 0.9, "tta": False, "weights": "w.pt"}))
    said = []
    assert tuned_settings(run, echo=said.append) == (0.3, 0.9)
    assert tuned_settings(run / "kaggle.json", echo=said.append) == (0.3, 0.9)
    assert said == []
    assert tuned_settings(run, tta=True, echo=said.append) == (0.3, 0.9)  # still used, with a warning
    assert said == [
        f"warning: {run / 'kaggle.json'} was tuned with 1 model(s), TTA False; this submission uses 1, TTA "
        "True (rescore the same combination with --tta / several weights)"
    ]
    (run / "kaggle.json").write_text(json.dumps({"scale": 0.9}))
    with pytest.raises(UserError, match=r"kaggle\.json: no tuned conf/scale \('conf'\); run `python -m"):
        tuned_settings(run)
    (run / "kaggle.json").write_text("{not json")
    with pytest.raises(UserError, match=r"kaggle\.json: not valid JSON .*; delete it to rescore"):
        tuned_settings(run)
    with pytest.raises(UserError, match=r"elsewhere/kaggle\.json: no tuned conf/scale \(no such file\)"):
        tuned_settings(tmp_path / "elsewhere")


def test_check_settings_names_the_flag():
    with pytest.raises(UserError, match=r"^--scale -1: the box scale must be positive$"):
        check_settings(0.5, -1.0, hint=False)
