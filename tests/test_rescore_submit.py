"""``rescore`` and ``submit`` end to end on a tiny model trained here on generated data.

Synthetic Kaggle download (:func:`convert.synth.generate`, 256-px DICOMs) -> converted dataset at 64 px
(:func:`convert.rsna.convert_rsna`, manifest scale 0.25) -> yolov8n from its YAML, 1 epoch on CPU. The model
is barely trained, so the assertions are on what is known whatever it predicts: files and keys, counts,
the score recomputed independently from the cached predictions, frames that must coincide (DICOM vs PNG
inference), one row per test image, the corrupt DICOM's empty row.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.inference.predict import predict_images
from analysis.record.defaults import DEFAULTS
from analysis.scoring.metric import frame_to_preds, frame_to_truth, kaggle_map
from analysis.scoring.submission import read_submission
from analysis.tuning.rescoring import rescore
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import PRED_COLUMNS
from tests.conftest import REPO_ROOT, subprocess_env

pytestmark = pytest.mark.slow
KAGGLE_KEYS = {"split", "weights", "data", "n_images", "score", "conf", "scale", "map50", "map50_95", "sweep"}
KAGGLE_KEYS |= {"breakdown", "predictions"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    from ultralytics import YOLO

    from convert.rsna import convert_rsna
    from convert.synth import generate

    root = tmp_path_factory.mktemp("e2e")
    generate(root / "kaggle", patients=24, test_patients=5, seed=1, imgsz=256)
    convert_rsna(
        root / "kaggle",
        root / "ds",
        imgsz=64,
        val_fraction=0.34,
        workers=1,
        progress=False,
        echo=lambda *a: None,
    )
    data = root / "ds" / "data.yaml"
    YOLO("yolov8n.yaml").train(
        data=str(data), imgsz=64, epochs=1, batch=4, workers=0, device="cpu", project=str(root / "runs"),
        name="tiny", plots=False, val=False, verbose=False, exist_ok=True,
    )  # fmt: skip
    run = root / "runs" / "tiny"
    assert (run / "weights" / "best.pt").is_file()
    manifest = pd.read_csv(root / "ds" / "manifest.csv", dtype={"patientId": str})
    return {"root": root, "data": data, "run": run, "manifest": manifest}


def run_analysis(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_rescore_writes_the_contract_and_the_right_score(project):
    run, manifest = project["run"], project["manifest"]
    result = rescore(run, project["data"], progress=False)
    saved = json.loads((run / "kaggle.json").read_text())
    assert set(saved) >= KAGGLE_KEYS
    assert (run / "kaggle_threshold.png").stat().st_size > 1000
    val = manifest[manifest["split"] == "val"]
    assert saved["n_images"] == len(val) and saved["split"] == "val"
    assert saved["weights"] == str(run / "weights" / "best.pt")
    assert len(saved["sweep"]) == len(DEFAULTS.thresholds) * len(DEFAULTS.box_scales) == 115
    assert 0.0 <= saved["map50"] <= 1.0 and 0.0 <= saved["map50_95"] <= saved["map50"] + 1e-12

    # the cached predictions: val patients only, source pixels (256-px DICOMs), conf >= 0.01
    preds = pd.read_csv(run / saved["predictions"], dtype={"patientId": str})
    assert list(preds.columns) == ["patientId", "conf", "x", "y", "width", "height"]
    assert set(preds["patientId"]) <= set(val["patientId"])
    assert (preds["conf"] >= 0.01).all()
    assert (preds["x"] >= -1e-6).all() and (preds["x"] + preds["width"] <= 256 + 1e-6).all()

    # the best pair is the table's maximum, and its score is what an independent scoring gives
    table = pd.DataFrame(saved["sweep"])
    assert saved["score"] == table["score"].max()
    boxes = pd.read_csv(project["root"] / "ds" / "boxes.csv", dtype={"patientId": str})
    truth = frame_to_truth(boxes, val["patientId"])
    kept = preds[preds["conf"] >= saved["conf"]]
    assert kaggle_map(truth, frame_to_preds(kept), box_scale=saved["scale"]) == pytest.approx(
        saved["score"], abs=1e-12
    )
    for row in table.sample(5, random_state=0).itertuples():
        expected = kaggle_map(truth, frame_to_preds(preds[preds["conf"] >= row.conf]), box_scale=row.scale)
        assert row.score == pytest.approx(expected, abs=1e-12) or (np.isnan(row.score) and np.isnan(expected))

    # breakdown counts come from the manifest
    classes = saved["breakdown"]["classes"]
    assert {k: v["n_images"] for k, v in classes.items()} == val["class"].value_counts().to_dict()
    n_positive_scored = classes.get("Lung Opacity", {}).get("n_scored", 0)
    assert n_positive_scored == (val["class"] == "Lung Opacity").sum()  # positives always count
    assert sum(v["loss"] for v in classes.values()) == pytest.approx(1 - saved["score"])

    # a second rescore reuses the predictions (same weights content, size, TTA) and agrees
    again = rescore(run, project["data"], progress=False, ultralytics_val=False)
    assert again["predictions_reused"] and not result["predictions_reused"]
    assert again["score"] == result["score"] and again["map50"] is None


def test_dicom_and_png_inference_agree_in_source_pixels(project):
    """The same patients from their 256-px DICOMs (decoded + resized like the converter) and from the 64-px
    PNGs (divided by the manifest scale) give the same boxes in source pixels."""
    root, manifest = project["root"], project["manifest"]
    val = manifest[manifest["split"] == "val"]
    weights = project["run"] / "weights" / "best.pt"
    dicoms = [root / "kaggle" / "stage_2_train_images" / f"{p}.dcm" for p in val["patientId"]]
    pngs = [root / "ds" / p for p in val["png"]]
    png_scales = dict(zip(val["patientId"], val["scale"], strict=True))
    from_dcm = predict_images(weights, dicoms, imgsz=64, floor=0.001, progress=False)
    from_png = predict_images(weights, pngs, imgsz=64, floor=0.001, png_scales=png_scales, progress=False)
    assert from_dcm.attrs["failed"] == {} and from_png.attrs["failed"] == {}
    assert len(from_png) > 0  # an untrained net still proposes low-confidence boxes: the check is not vacuous
    pd.testing.assert_frame_equal(from_dcm, from_png, atol=1e-6, rtol=0)


def test_decoding_on_worker_processes_gives_the_same_frame_and_reports_a_corrupt_film(project, tmp_path):
    """``decode_pool``: the films decoded ahead on worker processes (as ``benchmarks/cpu_inference.py``
    measures them) instead of threads: the same boxes to the bit, and a corrupt film still one reason."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    root, manifest = project["root"], project["manifest"]
    val = manifest[manifest["split"] == "val"]
    weights = project["run"] / "weights" / "best.pt"
    dicoms = [root / "kaggle" / "stage_2_train_images" / f"{p}.dcm" for p in val["patientId"]]
    corrupt = tmp_path / "corrupt-patient.dcm"
    corrupt.write_bytes(dicoms[0].read_bytes()[:400])
    films = [*dicoms, corrupt]
    threads = predict_images(weights, films, imgsz=64, floor=0.001, batch=3, progress=False)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
        procs = predict_images(
            weights, films, imgsz=64, floor=0.001, batch=3, progress=False, decode_pool=pool
        )
    assert len(threads) > 0
    pd.testing.assert_frame_equal(threads, procs, check_exact=True)
    assert procs.attrs["failed"] == threads.attrs["failed"]
    assert list(procs.attrs["failed"]) == ["corrupt-patient"]


def test_submit_and_validate_on_test_dicoms_with_a_corrupt_file(project, tmp_path):
    root, run = project["root"], project["run"]
    test_dir = tmp_path / "test_images"
    shutil.copytree(root / "kaggle" / "stage_2_test_images", test_dir)
    first = sorted(test_dir.glob("*.dcm"))[0]
    (test_dir / "corrupt-patient.dcm").write_bytes(first.read_bytes()[:400])  # truncated: header only
    out = tmp_path / "submission.csv"
    res = run_analysis(
        "submit", "--weights", run, "--images", test_dir, "--out", out, "--from-run", run, "--quiet"
    )
    assert res.returncode == 0, res.stderr
    assert "corrupt-patient" in res.stdout and "empty row" in res.stdout and "validated" in res.stdout
    sub = read_submission(out)
    assert sorted(sub.ids) == sorted(p.stem for p in test_dir.glob("*.dcm")) and len(sub.ids) == 6
    assert (sub.boxes["patientId"] != "corrupt-patient").all()
    tuned = json.loads((run / "kaggle.json").read_text())
    assert (sub.boxes["conf"] >= tuned["conf"] - 5e-5).all()  # 4 decimals written
    ok = run_analysis("validate", out, "--images", test_dir)
    assert ok.returncode == 0 and "valid, 6 patients" in ok.stdout
    (test_dir / "extra-patient.dcm").write_bytes(b"")
    bad = run_analysis("validate", out, "--images", test_dir)
    assert bad.returncode == 2 and "missing, e.g. extra-patient" in bad.stderr


def test_ensemble_tta_submission_scores_like_its_predictions(project, tmp_path):
    """Two weights + flip TTA on the val PNGs: the submission's score (``analysis score --subset``) equals the
    metric on the fused prediction frame it was written from."""
    root, run, manifest = project["root"], project["run"], project["manifest"]
    val = manifest[manifest["split"] == "val"]
    images = tmp_path / "val_png"
    shutil.copytree(root / "ds" / "images" / "val", images)
    weights = [run / "weights" / "best.pt", run / "weights" / "last.pt"]
    out = tmp_path / "val_submission.csv"
    args = ["--weights", weights[0], "--weights", weights[1], "--tta", "--conf", "0.01"]
    res = run_analysis(
        "submit",
        *args,
        "--images",
        images,
        "--out",
        out,
        "--scales-from",
        root / "ds" / "manifest.csv",
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    sub = read_submission(out)
    assert sorted(sub.ids) == sorted(val["patientId"])
    scored = run_analysis(
        "score", "--truth", project["data"], "--split", "val", "--submission", out, "--subset"
    )
    assert scored.returncode == 0, scored.stderr
    printed = float(re.search(r"Kaggle score ([0-9.]+|nan)", scored.stdout).group(1))
    frame = predict_images(
        weights, sorted(images.glob("*.png")), imgsz=64, floor=0.01, tta=True, keep_parts=True,
        png_scales=dict(zip(val["patientId"], val["scale"], strict=True)), progress=False,
    )  # fmt: skip
    # predict_images fuses a batch at a time (fusion.fuse_batch): the same boxes as ensemble_boxes image by
    # image (predict.fuse) on the 2 models x flip parts it kept
    from analysis.inference.predict import fuse

    parts, counts = frame.attrs["parts"], []
    for pid, own in parts.groupby("patientId", sort=False):
        sets = [own[own["part"] == k] for k in range(4)]
        width, height = int(own["png_width"].iloc[0]), int(own["png_height"].iloc[0])
        xyxy, conf = fuse([(g[["x1", "y1", "x2", "y2"]].to_numpy(), g["conf"].to_numpy()) for g in sets],
                          width, height, conf=0.01)  # fmt: skip
        counts.append(len(xyxy))
        got = frame[frame["patientId"] == pid]
        np.testing.assert_array_equal(got["conf"].to_numpy(), conf)
        np.testing.assert_allclose(
            got["x"].to_numpy(), xyxy[:, 0] / own["png_scale"].iloc[0], rtol=0, atol=1e-9
        )
    assert sum(counts) == len(frame) > 0
    boxes = pd.read_csv(root / "ds" / "boxes.csv", dtype={"patientId": str})
    expected = kaggle_map(frame_to_truth(boxes, val["patientId"]), frame_to_preds(frame))
    assert printed == pytest.approx(expected, abs=2e-6) or (np.isnan(printed) and np.isnan(expected))
    assert len(sub.boxes) == len(frame)

    # rescore of the same combination goes to a subfolder and caches exactly these predictions
    own = (run / "kaggle.json").read_text()
    result = rescore(weights, project["data"], tta=True, ultralytics_val=False, progress=False)
    assert Path(result["out_dir"]) == run / "kaggle_ensemble2_tta"
    assert (run / "kaggle.json").read_text() == own
    assert result["weights"] == [str(w) for w in weights] and result["tta"] is True
    from analysis.tuning.wbf import fuse_parts

    folder = run / "kaggle_ensemble2_tta"
    by_id = ["patientId", "conf", "x", "y"]

    def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
        pd.testing.assert_frame_equal(
            a.sort_values(by_id).reset_index(drop=True)[PRED_COLUMNS],
            b.sort_values(by_id).reset_index(drop=True)[PRED_COLUMNS], atol=1e-6,
        )  # fmt: skip

    # Each model's and flip's own boxes are kept: fused with the default setting they are the submission's.
    parts = pd.read_csv(folder / "predictions_val_parts.csv", dtype={"patientId": str})
    same(fuse_parts(parts, iou_thr=0.55, skip_box_thr=0.01, conf_type="avg"), frame)
    # The fusion is tuned by the metric (the default setting is in the grid, so never worse than it) and
    # the cached predictions are the tuned fusion's.
    wbf = result["wbf"]
    default = next(r for r in result["wbf_sweep"] if (r["iou_thr"], r["skip_box_thr"], r["conf_type"]) ==
                   (0.55, 0.01, "avg"))  # fmt: skip
    assert result["score"] >= default["score"]
    cached = pd.read_csv(folder / "predictions_val.csv", dtype={"patientId": str})
    same(cached, fuse_parts(parts, **wbf))
    # submit with that folder's tuning fuses the same way.
    from analysis.inference.submit import make_submission

    again = tmp_path / "tuned.csv"
    make_submission(weights, images, again, conf=0.01, from_run=folder, tta=True, progress=False,
                    png_scales_from=root / "ds" / "manifest.csv", echo=lambda *a: None)  # fmt: skip
    tuned = fuse_parts(parts, **wbf)
    assert len(read_submission(again).boxes) == len(tuned[tuned["conf"] >= 0.01])


def test_rescore_again_runs_no_inference(project, monkeypatch):
    """With the predictions cached, a rescore with Ultralytics' validation reuses mAP50 / mAP50-95 too."""
    run = project["run"]
    first = rescore(run, project["data"], progress=False)  # computes (or reuses) both
    assert first["map50"] is not None

    def no_inference(*args, **kwargs):
        raise AssertionError("inference ran")

    monkeypatch.setattr("analysis.inference.predict.predict_images", no_inference)
    monkeypatch.setattr("analysis.tuning.rescoring.ultralytics_map", no_inference)
    again = rescore(run, project["data"], progress=False)
    assert again["predictions_reused"]
    assert (again["map50"], again["map50_95"], again["score"]) == (
        first["map50"],
        first["map50_95"],
        first["score"],
    )


def test_rescore_of_a_fold_yaml_scores_its_own_val_list(project, tmp_path):
    """A fold YAML names its val images in a .txt list: those are predicted and scored (not the manifest's
    val split), and a different list is not served from the cache of the first."""
    root, manifest = project["root"], project["manifest"]
    val = manifest[manifest["split"] == "val"]
    out = tmp_path / "out"
    results = []
    for k, chosen in enumerate([val.iloc[:3], val.iloc[3:5]]):
        lst = tmp_path / f"fold{k}_val.txt"
        lst.write_text("".join(f"{root / 'ds' / p}\n" for p in chosen["png"]))
        data = tmp_path / f"fold{k}.yaml"
        data.write_text(f"path: {root / 'ds'}\ntrain: images/train\nval: {lst}\nnames:\n  0: opacity\n")
        result = rescore(project["run"], data, ultralytics_val=False, out_dir=out, progress=False)
        preds = pd.read_csv(out / "predictions_val.csv", dtype={"patientId": str})
        assert result["n_images"] == len(chosen)
        assert set(preds["patientId"]) <= set(chosen["patientId"])
        assert sum(c["n_images"] for c in result["breakdown"]["classes"].values()) == len(chosen)
        results.append(result)
    assert not results[1]["predictions_reused"]

    # A list of images the weights trained on (as the other folds of a set did on this fold's val images)
    # gives no validation score: counts, naming the weights and how many of the images they saw.
    train = manifest[manifest["split"] == "train"]
    lst = tmp_path / "seen_val.txt"
    lst.write_text("".join(f"{root / 'ds' / p}\n" for p in train["png"].iloc[:3]))
    data = tmp_path / "seen.yaml"
    data.write_text(f"path: {root / 'ds'}\ntrain: images/train\nval: {lst}\nnames:\n  0: opacity\n")
    with pytest.raises(
        UserError, match=r"best\.pt trained on 3 of the 3 val images scored here .*train folds"
    ):
        rescore(project["run"], data, ultralytics_val=False, out_dir=tmp_path / "seen", progress=False)
    assert not (tmp_path / "seen" / "kaggle.json").exists()
    # Scoring the train split itself is asked for on purpose.
    assert rescore(project["run"], data, split="train", ultralytics_val=False, out_dir=tmp_path / "tr",
                   progress=False)["n_images"] == len(train)  # fmt: skip


def test_submit_on_converted_pngs_finds_the_manifest(project, tmp_path):
    """PNGs of a converted dataset (64 px from 256-px sources): ``submit`` takes their PNG scale from the
    dataset's manifest by itself, so boxes land in the 256-px source frame, as with ``--scales-from``."""
    root, run = project["root"], project["run"]
    val_dir = root / "ds" / "images" / "val"
    copy = tmp_path / "val_png"
    shutil.copytree(val_dir, copy)
    auto, explicit = tmp_path / "auto.csv", tmp_path / "explicit.csv"
    common = ["--weights", run, "--conf", "0.01", "--quiet"]
    res = run_analysis("submit", *common, "--images", val_dir, "--out", auto)
    assert res.returncode == 0, res.stderr
    assert f"PNG scales from {root / 'ds' / 'manifest.csv'}" in res.stdout
    res = run_analysis(
        "submit", *common, "--images", copy, "--out", explicit, "--scales-from", root / "ds" / "manifest.csv"
    )
    assert res.returncode == 0, res.stderr
    assert auto.read_text() == explicit.read_text()
    boxes = read_submission(auto).boxes
    assert len(boxes) > 0 and (boxes["x"] + boxes["width"]).max() <= 256 + 0.05


def test_an_ensemble_of_sizes_predicts_each_model_at_its_own_size(project, tmp_path, monkeypatch):
    """WBF of models trained at different sizes: each predicts at the size it learned (unless --imgsz sets
    one size for all), and kaggle.json records both sizes."""
    import torch
    from ultralytics import YOLO

    from analysis.inference.predict import resolve_imgsz

    run = project["run"]
    other = tmp_path / "big" / "weights" / "best.pt"
    other.parent.mkdir(parents=True)
    ckpt = torch.load(run / "weights" / "best.pt", map_location="cpu", weights_only=False)
    ckpt["train_args"]["imgsz"] = 96  # as if trained at 96 px
    torch.save(ckpt, other)
    assert (resolve_imgsz(run / "weights" / "best.pt"), resolve_imgsz(other)) == (64, 96)
    real_predict, sizes = YOLO.predict, []

    def recording(self, *args, **kwargs):
        sizes.append(kwargs["imgsz"])
        return real_predict(self, *args, **kwargs)

    monkeypatch.setattr(YOLO, "predict", recording)
    images = sorted((project["root"] / "ds" / "images" / "val").glob("*.png"))[:2]
    own = run / "weights" / "best.pt"
    predict_images([own, other], images, batch=2, progress=False)
    assert sizes == [64, 96]
    sizes.clear()
    predict_images([own, other], images, imgsz=80, batch=2, progress=False)
    assert sizes == [80, 80]
    result = rescore(
        [run, other], project["data"], ultralytics_val=False, out_dir=tmp_path / "ens", progress=False
    )
    assert result["imgsz"] == [64, 96] and result["prediction_signature"]["imgsz"] == [64, 96]


def test_the_predictor_reproduces_the_tuned_score_and_rows(project):
    """The inference door built from the rescored run predicts the val images exactly as tuned: the rows
    of predictions_val.csv at the tuned threshold and box scale, and the tuned score."""
    from analysis.inference import Predictor
    from analysis.inference.predict import manifest_png_scales
    from analysis.scoring.submission import select_boxes
    from analysis.tuning import read_truth

    run, manifest = project["run"], project["manifest"]
    result = rescore(run, project["data"], progress=False, ultralytics_val=False)
    val = manifest[manifest["split"] == "val"]
    predictor = Predictor.from_run(run)
    assert predictor.setting.conf == result["conf"] and predictor.setting.box_scale == result["scale"]
    images = [project["root"] / "ds" / p for p in val["png"]]
    got = predictor.predict(images, png_scales=manifest_png_scales(val), progress=False)
    saved = pd.read_csv(run / "predictions_val.csv", dtype={"patientId": str})
    expected = select_boxes(saved, conf=result["conf"], box_scale=result["scale"])
    order = ["patientId", "conf"]
    a = got.boxes.sort_values(order, kind="stable").reset_index(drop=True)
    b = expected.sort_values(order, kind="stable").reset_index(drop=True)
    assert len(a) == len(b) and list(a["patientId"]) == list(b["patientId"])
    np.testing.assert_allclose(
        a[PRED_COLUMNS[1:]].to_numpy(float), b[PRED_COLUMNS[1:]].to_numpy(float), rtol=1e-5, atol=1e-3
    )  # fmt: skip  (the CSV keeps 6 significant digits)
    truth = read_truth(project["data"], split="val").truth
    assert kaggle_map(truth, frame_to_preds(got.boxes)) == pytest.approx(result["score"], abs=1e-9)
    assert got.removed.empty and got.failed == {} and got.ids == [Path(p).stem for p in images]
