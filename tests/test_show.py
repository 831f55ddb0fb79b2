"""``analysis show``: hand-made predictions with known per-image scores, then a tiny real run end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from analysis.reports import show
from rsna_yolo.core.boxes import scale_about_centre
from rsna_yolo.core.cli import UserError
from tests.conftest import REPO_ROOT, subprocess_env

CONF, BOX_SCALE = 0.5, 0.8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A converted synthetic dataset: 24 patients at 64 px (19 train with 6 positives, 5 val)."""
    from convert.rsna import convert_rsna
    from convert.synth import generate

    root = tmp_path_factory.mktemp("show")
    generate(root / "kaggle", patients=24, test_patients=0, seed=0, imgsz=256)
    convert_rsna(root / "kaggle", root / "ds", imgsz=64, workers=1, progress=False, echo=lambda *a: None)
    return root / "ds"


def handmade_run(dataset: Path, run: Path) -> dict[str, str]:
    """A run folder with kaggle.json (conf 0.5, box scale 0.8) and predictions_train.csv built from the truth.

    Returns the role of each patient used: A perfect (boxes grown by 1/0.8, so the tuned box scale restores
    them exactly), B no box, C only a box below the threshold, D its first box only (1 of n matched at every
    IoU threshold: score 1/n), E and F negatives with false boxes at conf 0.8 and 0.6, G a negative whose
    only box is below the threshold (a true negative).
    """
    manifest = pd.read_csv(dataset / "manifest.csv", dtype={"patientId": str})
    boxes = pd.read_csv(dataset / "boxes.csv", dtype={"patientId": str})
    train = manifest[manifest["split"] == "train"]
    pos = train[train["Target"] == 1].sort_values(["n_boxes", "patientId"], ascending=[False, True])
    neg = train[train["Target"] == 0].sort_values("patientId")
    roles = {"D": pos["patientId"].iloc[0], "A": pos["patientId"].iloc[1], "B": pos["patientId"].iloc[2],
             "C": pos["patientId"].iloc[3], "E": neg["patientId"].iloc[0], "F": neg["patientId"].iloc[1],
             "G": neg["patientId"].iloc[2]}  # fmt: skip
    gt = {p: g[["x", "y", "width", "height"]].to_numpy(float) for p, g in boxes.groupby("patientId")}
    rows = []
    for x, y, w, h in scale_about_centre(gt[roles["A"]], 1 / BOX_SCALE):
        rows.append((roles["A"], 0.9, x, y, w, h))
    rows.append((roles["C"], 0.3, *gt[roles["C"]][0]))
    rows.append((roles["D"], 0.7, *scale_about_centre(gt[roles["D"]][:1], 1 / BOX_SCALE)[0]))
    rows += [
        (roles["E"], 0.8, 10, 10, 50, 80),
        (roles["F"], 0.6, 100, 20, 60, 60),
        (roles["G"], 0.2, 5, 5, 9, 9),
    ]
    run.mkdir(parents=True)
    pd.DataFrame(rows, columns=["patientId", "conf", "x", "y", "width", "height"]).to_csv(
        run / "predictions_train.csv", index=False
    )
    kaggle = {"split": "train", "data": str(dataset / "data.yaml"), "score": None, "conf": CONF,
              "scale": BOX_SCALE, "predictions": "predictions_train.csv"}  # fmt: skip
    (run / "kaggle.json").write_text(json.dumps(kaggle))
    return {**roles, "n_D": len(gt[roles["D"]])}


def test_ranking_and_sections_match_hand_computed_scores(dataset: Path, tmp_path: Path) -> None:
    roles = handmade_run(dataset, tmp_path / "run")
    paths, table = show.run_show(tmp_path / "run", "train", worst=6, progress=False)
    t = table.set_index("patientId")
    assert len(t) == 19
    assert t.loc[roles["A"], "score"] == pytest.approx(1.0) and t.loc[roles["A"], "kind"] == "perfect"
    assert t.loc[roles["B"], "score"] == 0.0 and t.loc[roles["B"], "kind"] == "miss"
    assert t.loc[roles["C"], "score"] == 0.0 and t.loc[roles["C"], "n_pred"] == 0  # below conf 0.5
    assert (
        t.loc[roles["D"], "score"] == pytest.approx(1 / roles["n_D"])
        and t.loc[roles["D"], "kind"] == "partial"
    )
    assert t.loc[roles["E"], "kind"] == "false positive" and t.loc[roles["E"], "score"] == 0.0
    assert t.loc[roles["G"], "kind"] == "true negative" and np.isnan(t.loc[roles["G"], "score"])
    # Every negative without a box above the threshold is a true negative (left out of the mean).
    assert (t["kind"] == "true negative").sum() == 13 - 2
    sections = show.worst_sections(table, 6)
    assert sections["false positives"]["patientId"].tolist() == [roles["E"], roles["F"]]
    opac = sections["opacities"]["patientId"].tolist()
    # 6 positives: the 4 scoring 0 (B, C and two without any box), then D (1/n), then A (1).
    assert opac[-2:] == [roles["D"], roles["A"]] and {roles["B"], roles["C"]} <= set(opac[:4])
    # Files: the two grids, the report pages and the per-image CSV.
    for name in ("worst_false_positives", "worst_opacities"):
        img = cv2.imread(str(paths[name]))
        assert img is not None and img.shape[0] > 200 and img.std() > 0
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 2
    md = paths["markdown"].read_text()
    assert f"conf >= {CONF:g} and box scale {BOX_SCALE:g}" in md
    mean = np.mean([1.0, 1 / roles["n_D"], 0, 0, 0, 0, 0, 0])  # 4 positives + 2 remaining positives + E + F
    assert f"Kaggle mAP {mean:.4f} over 8 scored images of 19" in md
    assert pd.read_csv(paths["images"])["patientId"].nunique() == 19


def test_empty_section_is_a_sentence_not_a_blank_figure(dataset: Path, tmp_path: Path) -> None:
    """At conf 0.85 only A's boxes (0.9) survive: no false positive, so that section says why in numbers."""
    roles = handmade_run(dataset, tmp_path / "run")
    kaggle = json.loads((tmp_path / "run" / "kaggle.json").read_text())
    (tmp_path / "run" / "kaggle.json").write_text(json.dumps({**kaggle, "conf": 0.85}))
    paths, table = show.run_show(tmp_path / "run", "train", worst=4, progress=False)
    assert (table["kind"] == "false positive").sum() == 0 and table.set_index("patientId").loc[
        roles["E"], "kind"] == "true negative"  # fmt: skip
    assert "worst_false_positives" not in paths and not (tmp_path / "run" / "show_train" /
                                                         "worst_false_positives.png").exists()  # fmt: skip
    md = paths["markdown"].read_text()
    # 13 train negatives; E's box at 0.8 is the most confident one on them.
    assert (
        "No false positive: none of the 13 images without opacity has a box at conf >= 0.85; "
        "the most confident box on them, 0.800, is below the threshold." in md
    )
    assert paths["html"].read_text().count("data:image/png;base64,") == 1  # the opacities only


def test_end_to_end_on_a_trained_run(dataset: Path, tmp_path: Path) -> None:
    """A 1-epoch run without kaggle.json: show rescores it through the CLI, then draws the val split."""
    from ultralytics import YOLO

    YOLO("yolo11n.yaml").train(
        data=str(dataset / "data.yaml"), epochs=1, imgsz=64, batch=8, workers=0, device="cpu", plots=False,
        project=str(tmp_path), name="r", verbose=False,
    )  # fmt: skip
    run = tmp_path / "r"
    cmd = [sys.executable, "-m", "analysis", "show", str(run), "--split", "val", "--worst", "3", "--quiet"]
    done = subprocess.run(
        cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    kaggle = json.loads((run / "kaggle.json").read_text())
    assert kaggle["split"] == "val" and (run / "predictions_val.csv").is_file()
    images = pd.read_csv(run / "show_val" / "images.csv")
    assert len(images) == 5 and (run / "show_val" / "report.html").stat().st_size > 5_000
    # The page's overall score is the metric's mean over the images it scores: the rescore's own score.
    scored = images["score"].dropna()
    if len(scored):
        assert scored.mean() == pytest.approx(kaggle["score"], abs=1e-9)
    # Another split is scored into kaggle_train/: the run's own val kaggle.json is left exactly as it was.
    before = (run / "kaggle.json").read_bytes()
    _, table = show.run_show(run, "train", worst=2, progress=False)
    assert (run / "kaggle.json").read_bytes() == before
    own = json.loads((run / "kaggle_train" / "kaggle.json").read_text())
    assert (
        own["split"] == "train"
        and len(table) == 19
        and (run / "kaggle_train" / "predictions_train.csv").is_file()
    )
    assert (run / "show_train" / "report.html").is_file()


def test_missing_inputs_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "-m", "analysis", "show", str(tmp_path / "empty")], cwd=REPO_ROOT,
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "no kaggle.json" in done.stderr and done.stderr.count("\n") == 1
    with pytest.raises(UserError, match="--worst must be at least 1"):
        show.run_show(tmp_path / "empty", worst=0)


def test_a_gated_setting_shows_the_boxes_it_would_submit(dataset: Path, tmp_path: Path) -> None:
    """A gated kaggle.json (hard gate 0.5): E's false box goes with its low P(opacity), F's stays."""
    run = tmp_path / "run"
    roles = handmade_run(dataset, run)
    manifest = pd.read_csv(dataset / "manifest.csv", dtype={"patientId": str})
    ids = manifest.loc[manifest["split"] == "train", "patientId"]
    p = pd.DataFrame({"patientId": ids, "p_opacity": [0.1 if i == roles["E"] else 0.9 for i in ids]})
    p.to_csv(run / "classifier_train.csv", index=False)
    kaggle = json.loads((run / "kaggle.json").read_text())
    kaggle.update(gate={"mode": "hard", "gate": 0.5}, classifier=["cls.pt"],
                  classifier_predictions="classifier_train.csv")  # fmt: skip
    (run / "kaggle.json").write_text(json.dumps(kaggle))
    paths, table = show.run_show(run, "train", worst=4, progress=False)
    t = table.set_index("patientId")
    assert t.loc[roles["E"], "n_pred"] == 0 and t.loc[roles["E"], "kind"] == "true negative"
    assert t.loc[roles["F"], "kind"] == "false positive" and t.loc[roles["A"], "kind"] == "perfect"
    assert "hard gate 0.5 on P(opacity)" in paths["markdown"].read_text()
    (run / "classifier_train.csv").unlink()
    with pytest.raises(UserError, match=r"classifier_train\.csv: missing"):
        show.run_show(run, "train", worst=4, progress=False)
