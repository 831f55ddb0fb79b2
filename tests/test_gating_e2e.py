"""Gating end to end: a tiny detector and a tiny classifier trained here, `rescore --classifier`, then
`submit --classifier` applying the same gate; and the bad-input cases of a classifier, one line each."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, subprocess_env

from analysis.inference.submit import make_submission
from analysis.record.gate import apply_gate, p_opacity_map
from analysis.scoring.submission import read_submission, select_boxes
from analysis.tuning.rescoring import rescore
from rsna_yolo.core.cli import UserError

pytestmark = pytest.mark.slow


def _quiet(*_a, **_k) -> None:
    return None


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    from ultralytics import YOLO

    from convert.classify import write_classify_view
    from convert.rsna import convert_rsna
    from convert.synth import generate

    root = tmp_path_factory.mktemp("gate")
    generate(root / "kaggle", 36, 0, seed=5, imgsz=256, difficulty="hard")
    convert_rsna(
        root / "kaggle", root / "ds", imgsz=64, val_fraction=0.34, workers=1, progress=False, echo=_quiet
    )
    write_classify_view(root / "ds")
    common = dict(epochs=1, batch=4, workers=0, device="cpu", project=str(root / "runs"), plots=False,
                  verbose=False, exist_ok=True)  # fmt: skip
    YOLO("yolov8n.yaml").train(data=str(root / "ds" / "data.yaml"), imgsz=64, name="det", val=False, **common)
    YOLO("yolo11n-cls.yaml").train(data=str(root / "ds" / "classify"), imgsz=32, name="cls", **common)
    return {"root": root, "data": root / "ds" / "data.yaml", "det": root / "runs" / "det",
            "cls": root / "runs" / "cls"}  # fmt: skip


def test_rescore_with_a_classifier_tunes_a_gate_never_below_the_detector(trained):
    result = rescore(trained["det"], trained["data"], classifier=trained["cls"], ultralytics_val=False,
                     progress=False)  # fmt: skip
    out = trained["det"] / "kaggle_gated"
    assert Path(result["out_dir"]) == out and (out / "kaggle.json").is_file()
    assert not (trained["det"] / "kaggle.json").exists()  # the run's own file is not the gated one
    saved = json.loads((out / "kaggle.json").read_text())
    assert saved["score"] >= saved["ungated"]["score"]
    assert saved["gate"]["mode"] in ("hard", "soft") and len(saved["gates"]) == 21
    no_gate = next(g for g in saved["gates"] if g["mode"] == "hard" and g["gate"] == 0.0)
    assert no_gate["score"] == saved["ungated"]["score"]  # gate 0 = the detector alone
    manifest = pd.read_csv(trained["root"] / "ds" / "manifest.csv", dtype={"patientId": str})
    val_ids = set(manifest.loc[manifest["split"] == "val", "patientId"])
    probs = pd.read_csv(out / "classifier_val.csv", dtype={"patientId": str})
    assert set(probs["patientId"]) == val_ids and probs["p_opacity"].between(0, 1).all()
    effect = saved["gate_effect"]
    loss_gated = saved["breakdown"]["loss"]
    assert loss_gated == pytest.approx(
        saved["ungated"]["breakdown"]["loss"] + effect["loss_change"], abs=1e-9
    )
    again = rescore(trained["det"], trained["data"], classifier=trained["cls"], ultralytics_val=False,
                    progress=False)  # fmt: skip
    assert again["classifier_reused"] and again["predictions_reused"] and again["score"] == result["score"]


def test_submit_applies_the_gate_rescoring_tuned(trained, tmp_path):
    gated = trained["det"] / "kaggle_gated"
    if not (gated / "kaggle.json").is_file():
        rescore(
            trained["det"], trained["data"], classifier=trained["cls"], ultralytics_val=False, progress=False
        )
    tuned = json.loads((gated / "kaggle.json").read_text())
    val_png = trained["root"] / "ds" / "images" / "val"
    out = tmp_path / "sub.csv"
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "submit", "--weights", str(trained["det"]), "--images",
         str(val_png), "--out", str(out), "--from-run", str(gated), "--classifier", str(trained["cls"]),
         "--quiet"],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    no_gate = tuned["gate"]["mode"] == "hard" and not tuned["gate"]["gate"]
    said = "no gate" if no_gate else f"{tuned['gate']['mode']} gate"
    assert f"gated by the classifier: {said}" in done.stdout
    # What rescoring scored: its cached predictions, gated by its cached probabilities, at its threshold and
    # box scale. The submission must hold exactly those boxes; at the tuned threshold and at 0.01 (where a
    # barely trained detector surely has boxes).
    preds = pd.read_csv(gated / "predictions_val.csv", dtype={"patientId": str})
    p = p_opacity_map(pd.read_csv(gated / "classifier_val.csv", dtype={"patientId": str}))
    kept = apply_gate(preds, p, mode=tuned["gate"]["mode"], gate=tuned["gate"]["gate"] or 0.0)
    low = tmp_path / "low.csv"
    make_submission([trained["det"]], val_png, low, conf=0.01, from_run=gated, classifier=[trained["cls"]],
                    progress=False, echo=_quiet)  # fmt: skip
    for path, conf in ((out, tuned["conf"]), (low, 0.01)):
        expected = select_boxes(kept, conf=conf, box_scale=tuned["scale"])
        got = read_submission(path).boxes
        a = got.sort_values(["patientId", "conf"]).reset_index(drop=True)
        b = expected.sort_values(["patientId", "conf"]).reset_index(drop=True)
        assert len(a) == len(b) and (a["patientId"] == b["patientId"]).all()
        cols = ["conf", "x", "y", "width", "height"]
        assert np.allclose(a[cols].to_numpy(float), b[cols].to_numpy(float), atol=0.01)
    assert len(read_submission(low).boxes) > 0


def test_bad_classifiers_are_one_clear_line(trained, tmp_path):
    with pytest.raises(UserError, match="a detect model, not a classifier"):
        rescore(trained["det"], trained["data"], classifier=trained["det"], ultralytics_val=False,
                out_dir=tmp_path / "a", progress=False)  # fmt: skip
    # A classifier whose view (its args.yaml data) holds other val images: trained on another dataset.
    other = tmp_path / "other_cls"
    shutil.copytree(trained["cls"], other)
    view = tmp_path / "view"
    shutil.copytree(trained["root"] / "ds" / "classify", view, symlinks=True)
    next((view / "val").glob("*/*.png")).unlink()
    args = (other / "args.yaml").read_text().replace(str(trained["root"] / "ds" / "classify"), str(view))
    (other / "args.yaml").write_text(args)
    with pytest.raises(UserError, match=r"whose val images differ from the detector's \(1 of"):
        rescore(trained["det"], trained["data"], classifier=other, ultralytics_val=False,
                out_dir=tmp_path / "b", progress=False)  # fmt: skip
    assert not (tmp_path / "b" / "kaggle.json").exists()
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "submit", "--weights", str(trained["det"]), "--images",
         str(tmp_path), "--out", str(tmp_path / "s.csv"), "--classifier", str(trained["cls"])],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "--classifier needs the tuned gate" in done.stderr


def test_ablation_rows_are_the_equivalent_rescore_scores(trained, tmp_path):
    import pandas as pd

    from analysis.reports.ablation import run_ablation

    paths, table = run_ablation(trained["det"], trained["data"], tmp_path / "abl", classifier=trained["cls"],
                                progress=False)  # fmt: skip
    steps = list(table["step"])
    assert steps == ["detector, default conf 0.25", "+ tuned threshold", "+ box scale", "+ flip TTA",
                     "+ WBF of folds or sizes", "+ classifier gate"]  # fmt: skip
    score = dict(zip(table["step"], table["Kaggle mAP"], strict=True))
    alone = rescore(trained["det"], trained["data"], ultralytics_val=False, progress=False)
    sweep = pd.DataFrame(alone["sweep"])
    assert (
        score["detector, default conf 0.25"] == sweep.query("conf == 0.25 and scale == 1.0")["score"].iloc[0]
    )
    assert score["+ tuned threshold"] == sweep.query("scale == 1.0")["score"].max()
    assert score["+ box scale"] == alone["score"]
    tta = rescore(trained["det"], trained["data"], tta=True, ultralytics_val=False, progress=False)
    assert score["+ flip TTA"] == tta["score"]
    with_tta = tta["score"] >= alone["score"]
    gated = rescore(trained["det"], trained["data"], tta=with_tta, classifier=trained["cls"],
                    ultralytics_val=False, progress=False)  # fmt: skip
    assert score["+ classifier gate"] == gated["score"]
    wbf = table.set_index("step").loc["+ WBF of folds or sizes"]  # no ensemble given: said, not dropped
    assert pd.isna(wbf["Kaggle mAP"]) and wbf["how"].startswith("not computed")
    assert (table["images/s"].dropna() > 0).all() and Path(paths["markdown"]).is_file()
    assert "not computed: no --ensemble" in Path(paths["markdown"]).read_text()
    with pytest.raises(UserError, match="has no labels"):
        run_ablation(trained["det"], trained["data"], tmp_path / "t", split="test", progress=False)
