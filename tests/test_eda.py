"""``analysis eda`` on the real challenge labels and DICOMs, and on a converted dataset's manifest."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest

from analysis.reports.eda import build_report, run_eda
from analysis.reports.eda_load import CONVERT_CHECK, load
from analysis.reports.eda_stats import age_outliers, class_target_table
from convert.check import check_dataset
from rsna_yolo.core.download import CLASS_FILES, LABEL_FILES, TRAIN_DIRS
from rsna_yolo.core.layout import BOX_COLUMNS, label_text
from tests.conftest import REPO_ROOT, subprocess_env

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_pngs(paths: list[Path]) -> None:
    """Every path is a non-empty PNG that decodes to a real image."""
    assert paths
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE), path
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape[0] > 100 and img.shape[1] > 100, path
        assert img.std() > 0, f"{path} is blank"


@pytest.fixture(scope="module")
def csv_only(tmp_path_factory, sample_dir: Path) -> Path:
    """The two real label CSVs, no images."""
    dst = tmp_path_factory.mktemp("csv_only")
    for name in (LABEL_FILES[0], CLASS_FILES[0]):
        shutil.copyfile(sample_dir / name, dst / name)
    return dst


def test_real_labels_numbers_match_the_readme(csv_only: Path, tmp_path: Path) -> None:
    # Known figures from ../shared/rsna_sample/README.md.
    data = load(csv_only, progress=False)
    assert data.files.set_index("file").loc[LABEL_FILES[0], "rows"] == 30_227
    assert len(data.patients) == 26_684
    assert len(data.boxes) == 9_555
    counts = data.patients["class"].value_counts()
    assert counts["Lung Opacity"] == 6_012
    assert counts["No Lung Opacity / Not Normal"] == 11_821
    assert counts["Normal"] == 8_851
    # Every relation between class and Target holds on the real files.
    assert (data.checks["violations"] == 0).all(), data.checks
    ct = class_target_table(data.patients)
    assert ct.loc["Lung Opacity", 1] == 6_012 and ct.loc["Lung Opacity", 0] == 0
    assert ct.loc["Normal", 0] == 8_851 and ct.loc["Normal", 1] == 0
    # 20,672 negatives have empty box fields: 30,227 rows - 9,555 boxes.
    missing = data.missing.set_index(["file", "field"])
    assert missing.loc[(LABEL_FILES[0], "width"), "empty"] == 30_227 - 9_555
    # Patients with several rows: every box beyond the first adds a row.
    multi = data.patients[data.patients["n_rows"] > 1]
    assert (multi["n_rows"] - 1).sum() == 30_227 - 26_684
    assert (multi["class"] == "Lung Opacity").all()
    assert not data.has_images and not data.has_headers
    # No image folder at all: the report says so, in one sentence.
    assert len(data.notes) == 1 and data.notes[0].startswith("No training-image folder (stage_2_train_images")

    paths = build_report(data, tmp_path / "report", progress=False).write()
    figures = [p for k, p in paths.items() if k not in {"markdown", "html"}]
    assert {p.stem for p in figures} == {"classes", "box_geometry", "coverage"}
    assert_valid_pngs(figures)
    md = paths["markdown"].read_text()
    assert "| measure | mean | std | min | 5% | 50% | 95% | max |" in md and "| index |" not in md
    for number in ("30,227", "26,684", "9,555", "6,012", "11,821", "8,851", "20,672"):
        assert number in md
    assert "11 of 11 consistency checks hold" in md
    assert md.count("No training-image folder") == 1 and "## DICOM header" not in md and "## Pixels" not in md
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 3 and 'src="http' not in html


def test_real_dicoms_headers_and_pixels(real_kaggle: Path, tmp_path: Path) -> None:
    data = load(real_kaggle, progress=False)
    with_image = data.patients[data.patients["image"] != ""].set_index("patientId")
    assert len(with_image) == 12 and data.has_headers and data.has_images and not data.notes
    for dcm in sorted((real_kaggle / TRAIN_DIRS[0]).glob("*.dcm")):
        ds = pydicom.dcmread(dcm, stop_before_pixels=True)
        row = with_image.loc[dcm.stem]
        assert row["PatientAge"] == int(ds.PatientAge)
        assert row["PatientSex"] == ds.PatientSex
        assert row["ViewPosition"] == ds.ViewPosition
        assert (row["rows"], row["cols"]) == (1024, 1024)
    # README: 3 Lung Opacity (6 boxes), 3 Normal, 6 No Lung Opacity / Not Normal.
    assert with_image["class"].value_counts().to_dict() == {
        "No Lung Opacity / Not Normal": 6,
        "Lung Opacity": 3,
        "Normal": 3,
    }
    assert with_image["n_boxes"].sum() == 6

    paths = run_eda(real_kaggle, tmp_path / "out", progress=False)
    figures = [p for k, p in paths.items() if k not in {"markdown", "html"}]
    assert {p.stem for p in figures} == {
        "classes",
        "box_geometry",
        "coverage",
        "headers",
        "intensity",
        "samples",
    }
    assert_valid_pngs(figures)
    md = paths["markdown"].read_text()
    views = with_image["ViewPosition"].value_counts()
    assert f"n = {views['AP']:,} AP, {views['PA']:,} PA" in md
    ages = with_image["PatientAge"].astype(int)
    assert f"median {ages.median():.0f} years" in md
    assert "Intensity statistics from 12 images" in md


def report_text(paths: dict[str, Path], src: Path) -> str:
    """The markdown of a report without its time stamp, with ``src`` written as ``SRC``."""
    lines = paths["markdown"].read_text().replace(str(src), "SRC").splitlines()
    return "\n".join(line for line in lines if not line.startswith("_Generated "))


def test_stage1_names_read_like_stage2(real_kaggle: Path, tmp_path: Path) -> None:
    """The original release's stage-1 names are read as the converter reads them: the 12 DICOMs in
    stage_1_train_images/ give the same header and pixel sections, the same report, as under stage-2 names."""
    stage1 = tmp_path / "stage1"
    stage1.mkdir()
    for names in (LABEL_FILES, CLASS_FILES):
        shutil.copyfile(real_kaggle / names[0], stage1 / names[1])
    shutil.copytree(real_kaggle / TRAIN_DIRS[0], stage1 / TRAIN_DIRS[1])
    assert not any(stage1.glob("stage_2*"))

    one, two = load(stage1, progress=False), load(real_kaggle, progress=False)
    assert one.patients["image"].str.contains(f"/{TRAIN_DIRS[1]}/").sum() == 12 and not one.notes
    pd.testing.assert_frame_equal(one.patients.drop(columns="image"), two.patients.drop(columns="image"))
    assert one.files.set_index("file").loc[f"{TRAIN_DIRS[1]}/", "rows"] == 12

    md1 = report_text(run_eda(stage1, tmp_path / "out1", progress=False), stage1)
    md2 = report_text(run_eda(real_kaggle, tmp_path / "out2", progress=False), real_kaggle)
    assert "## DICOM header fields against the class" in md1 and "Intensity statistics from 12 images" in md1
    for stage2_name, stage1_name in (LABEL_FILES[:2], CLASS_FILES[:2], TRAIN_DIRS[:2]):
        md2 = md2.replace(stage2_name, stage1_name)
    assert md1 == md2


def write_converted(root: Path) -> Path:
    """A converted dataset as docs/ARCHITECTURE.md specifies (`convert check` passes): 4 PNGs (one test),
    label files, manifest, boxes.csv, data.yaml."""
    rows = [
        ("p1", "train", 0, "Lung Opacity", 1, 2, 70, "F", "AP", 1024, 1024),
        ("p2", "train", 1, "Normal", 0, 0, 30, "M", "PA", 1024, 1024),
        ("p3", "val", 0, "No Lung Opacity / Not Normal", 0, 0, None, "M", "PA", 1024, 1024),
        ("t1", "test", None, None, None, None, 150, "F", "AP", 1024, 1024),
    ]
    manifest = pd.DataFrame(
        rows,
        columns=[
            "patientId",
            "split",
            "fold",
            "class",
            "Target",
            "n_boxes",
            "PatientAge",
            "PatientSex",
            "ViewPosition",
            "rows",
            "cols",
        ],
    )
    manifest["png"] = [
        f"images/{s}/{p}.png" for p, s in zip(manifest["patientId"], manifest["split"], strict=True)
    ]
    manifest["scale"] = 0.25
    # Whole numbers as the converter writes them ("1", not "1.0"): an empty test cell makes pandas use floats.
    manifest = manifest.astype({c: "Int64" for c in ("fold", "Target", "n_boxes", "PatientAge")})
    rng = np.random.default_rng(0)
    for png in manifest["png"]:
        (root / png).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / png), rng.integers(0, 256, (256, 256), dtype=np.uint8))
    manifest.to_csv(root / "manifest.csv", index=False)
    boxes = pd.DataFrame(
        {
            "patientId": ["p1", "p1"],
            "x": [100.0, 600.0],
            "y": [200.0, 250.0],
            "width": [200.0, 220.0],
            "height": [300.0, 310.0],
        }
    )
    boxes.to_csv(root / "boxes.csv", index=False)
    for pid, split in zip(manifest["patientId"], manifest["split"], strict=True):
        if split != "test":
            mine = boxes.loc[boxes["patientId"] == pid, list(BOX_COLUMNS)].to_numpy()
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{pid}.txt").write_text(label_text(mine, 1024, 1024))
    (root / "data.yaml").write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames: {{0: opacity}}\n"
    )
    return root


def test_converted_dataset(tmp_path: Path) -> None:
    root = write_converted(tmp_path / "ds")
    data = load(root / "data.yaml", progress=False)
    assert data.kind == "converted" and len(data.patients) == 4 and len(data.boxes) == 2
    assert (data.checks["violations"] == 0).all(), data.checks
    missing = data.missing.set_index("field")
    assert missing.loc["PatientAge", "empty"] == 1 and missing.loc["PatientAge", "which rows"] == "1 val"
    assert missing.loc["class", "which rows"] == "1 test"
    # n_boxes is empty for test images by contract (docs/ARCHITECTURE.md): explained, not "unexpected".
    assert missing.loc["n_boxes", "empty"] == 1
    assert missing.loc["n_boxes", "why"] == "test images have no labels"
    assert age_outliers(data.patients)["patientId"].tolist() == ["t1"]
    paths = run_eda(root, tmp_path / "out", progress=False)
    assert_valid_pngs([p for k, p in paths.items() if k not in {"markdown", "html"}])
    md = paths["markdown"].read_text()
    assert "Images per split and class" in md
    assert "1 above 100 years (150), flagged as implausible" in md


def test_converted_dataset_is_checked_by_convert_check(tmp_path: Path) -> None:
    """A converted dataset is verified by `convert check` itself: its problems are counted and listed."""
    root = write_converted(tmp_path / "ds")
    (root / "labels" / "val" / "p3.txt").unlink()
    manifest = (root / "manifest.csv").read_text()
    (root / "manifest.csv").write_text(manifest.replace(",Normal,0,0,", ",Normal,1,0,"))  # p2: Target 1
    data = load(root, progress=False)
    checks = data.checks.set_index("check")["violations"]
    assert checks[CONVERT_CHECK] == 2 and checks["test images carry no class or Target"] == 0
    problems = next(t for caption, t in data.extra_tables.items() if "convert check" in caption)
    assert problems["problem"].tolist() == check_dataset(root).problems
    assert any("p2): Target '1', class 'Normal'" in p for p in problems["problem"])
    assert any("labels/val/p3.txt missing" in p for p in problems["problem"])
    md = report_text(run_eda(root, tmp_path / "out", progress=False), root)
    assert "1 of 2 consistency checks hold on every row" in md and "labels/val/p3.txt missing" in md


def test_cli(csv_only: Path, tmp_path: Path) -> None:
    run = [sys.executable, "-m", "analysis", "eda", "--quiet"]
    ok = subprocess.run(
        [*run, "--src", str(csv_only), "--out", str(tmp_path / "o")],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o" / "report.html").stat().st_size > 10_000
    bad = subprocess.run(
        [*run, "--src", str(tmp_path), "--out", str(tmp_path / "x")],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "neither a Kaggle-layout folder" in bad.stderr
    for args, message in (
        (["--src", str(tmp_path / "nowhere")], "nowhere: no such folder"),
        (["--src", str(csv_only), "--samples-per-class", "-1"], "must be at least 1 (got -1 and 150)"),
    ):
        cmd = [*run, *args, "--out", str(tmp_path / "x")]
        done = subprocess.run(
            cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and message in done.stderr


def test_dataset_written_by_the_converter(real_kaggle: Path, tmp_path: Path) -> None:
    """EDA of `convert rsna`'s own output for the 12 real DICOMs agrees with their headers and boxes."""
    from convert.rsna import convert_rsna

    convert_rsna(real_kaggle, tmp_path / "ds", imgsz=128, workers=1, progress=False, echo=lambda *a: None)
    data = load(tmp_path / "ds", progress=False)
    assert data.kind == "converted" and len(data.patients) == 12 and len(data.boxes) == 6
    assert (data.checks["violations"] == 0).all(), data.checks
    for dcm in sorted((real_kaggle / TRAIN_DIRS[0]).glob("*.dcm")):
        ds = pydicom.dcmread(dcm, stop_before_pixels=True)
        row = data.patients.set_index("patientId").loc[dcm.stem]
        assert (row["PatientAge"], row["PatientSex"], row["ViewPosition"]) == (
            int(ds.PatientAge), ds.PatientSex, ds.ViewPosition)  # fmt: skip
    paths = run_eda(tmp_path / "ds", tmp_path / "out", progress=False)
    assert {"samples", "headers", "intensity"} <= set(paths)
    assert_valid_pngs([p for k, p in paths.items() if k not in {"markdown", "html"}])
