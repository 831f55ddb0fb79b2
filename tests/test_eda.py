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

from analysis import eda
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
    for name in (eda.LABELS_CSV, eda.CLASS_CSV):
        shutil.copyfile(sample_dir / name, dst / name)
    return dst


def test_real_labels_numbers_match_the_readme(csv_only: Path, tmp_path: Path) -> None:
    # Known figures from ../shared/rsna_sample/README.md.
    data = eda.load(csv_only, progress=False)
    assert data.files.set_index("file").loc[eda.LABELS_CSV, "rows"] == 30_227
    assert len(data.patients) == 26_684
    assert len(data.boxes) == 9_555
    counts = data.patients["class"].value_counts()
    assert counts["Lung Opacity"] == 6_012
    assert counts["No Lung Opacity / Not Normal"] == 11_821
    assert counts["Normal"] == 8_851
    # Every relation between class and Target holds on the real files.
    assert (data.checks["violations"] == 0).all(), data.checks
    ct = eda.class_target_table(data.patients)
    assert ct.loc["Lung Opacity", 1] == 6_012 and ct.loc["Lung Opacity", 0] == 0
    assert ct.loc["Normal", 0] == 8_851 and ct.loc["Normal", 1] == 0
    # 20,672 negatives have empty box fields: 30,227 rows - 9,555 boxes.
    missing = data.missing.set_index(["file", "field"])
    assert missing.loc[(eda.LABELS_CSV, "width"), "empty"] == 30_227 - 9_555
    # Patients with several rows: every box beyond the first adds a row.
    multi = data.patients[data.patients["n_rows"] > 1]
    assert (multi["n_rows"] - 1).sum() == 30_227 - 26_684
    assert (multi["class"] == "Lung Opacity").all()
    assert not data.has_images and not data.has_headers

    paths = eda.build_report(data, tmp_path / "report", progress=False).write()
    figures = [p for k, p in paths.items() if k not in {"markdown", "html"}]
    assert {p.stem for p in figures} == {"classes", "box_geometry", "coverage"}
    assert_valid_pngs(figures)
    md = paths["markdown"].read_text()
    assert "| measure | mean | std | min | 5% | 50% | 95% | max |" in md and "| index |" not in md
    for number in ("30,227", "26,684", "9,555", "6,012", "11,821", "8,851", "20,672"):
        assert number in md
    assert "11 of 11 consistency checks hold" in md
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 3 and 'src="http' not in html


def test_real_dicoms_headers_and_pixels(real_kaggle: Path, tmp_path: Path) -> None:
    data = eda.load(real_kaggle, progress=False)
    with_image = data.patients[data.patients["image"] != ""].set_index("patientId")
    assert len(with_image) == 12 and data.has_headers and data.has_images
    for dcm in sorted((real_kaggle / eda.TRAIN_DICOM_DIR).glob("*.dcm")):
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

    paths = eda.run_eda(real_kaggle, tmp_path / "out", progress=False)
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


def test_coverage_heatmap_closed_form() -> None:
    full = eda.coverage_heatmap(np.array([[0, 0, 1024, 1024]]))
    assert full.shape == (256, 256) and (full == 1).all()
    left = eda.coverage_heatmap(np.array([[0, 0, 512, 1024], [0, 0, 512, 512]]))
    assert (left[:, :128] >= 1).all() and (left[:, 128:] == 0).all()
    assert left[:128, :128].sum() == 2 * 128 * 128 and left[128:, :128].sum() == 128 * 128
    # Boxes reaching past the frame are clipped, not wrapped.
    past = eda.coverage_heatmap(np.array([[1000, -50, 100, 100]]))
    assert past.sum() == 6 * 12 and past[0, 255] == 1 and past[0, 0] == 0


def test_box_geometry_sides_and_sizes() -> None:
    boxes = pd.DataFrame(
        {
            "patientId": ["a", "b"],
            "x": [100.0, 600.0],
            "y": [0.0, 10.0],
            "width": [200.0, 100.0],
            "height": [400.0, 50.0],
        }
    )
    geom = eda.box_geometry(boxes)
    assert geom["area"].tolist() == [80_000.0, 5_000.0]
    assert geom["aspect"].tolist() == [2.0, 0.5]
    assert geom["side"].tolist() == ["image left", "image right"]
    # With header sizes, each box is judged in its own image (a 256-px image's middle is x = 128).
    small = pd.DataFrame({"patientId": ["a", "b"], "rows": [256, 1024], "cols": [256, 1024]})
    geom = eda.box_geometry(boxes, small)
    assert geom["side"].tolist() == ["image right", "image right"]
    assert eda.boxes_in_native_frame(geom)[0].tolist() == [400.0, 0.0, 800.0, 1600.0]


def write_converted(root: Path) -> Path:
    """A converted dataset as docs/ARCHITECTURE.md specifies: 4 PNGs (one test), manifest, boxes.csv."""
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
    rng = np.random.default_rng(0)
    for png in manifest["png"]:
        (root / png).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / png), rng.integers(0, 256, (256, 256), dtype=np.uint8))
    manifest.to_csv(root / "manifest.csv", index=False)
    pd.DataFrame(
        {
            "patientId": ["p1", "p1"],
            "x": [100.0, 600.0],
            "y": [200.0, 250.0],
            "width": [200.0, 220.0],
            "height": [300.0, 310.0],
        }
    ).to_csv(root / "boxes.csv", index=False)
    (root / "data.yaml").write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames: {{0: opacity}}\n"
    )
    return root


def test_converted_dataset(tmp_path: Path) -> None:
    root = write_converted(tmp_path / "ds")
    data = eda.load(root / "data.yaml", progress=False)
    assert data.kind == "converted" and len(data.patients) == 4 and len(data.boxes) == 2
    assert (data.checks["violations"] == 0).all(), data.checks
    missing = data.missing.set_index("field")
    assert missing.loc["PatientAge", "empty"] == 1 and missing.loc["PatientAge", "which rows"] == "1 val"
    assert missing.loc["class", "which rows"] == "1 test"
    # n_boxes is empty for test images by contract (docs/ARCHITECTURE.md): explained, not "unexpected".
    assert missing.loc["n_boxes", "empty"] == 1
    assert missing.loc["n_boxes", "why"] == "test images have no labels"
    assert eda.age_outliers(data.patients)["patientId"].tolist() == ["t1"]
    paths = eda.run_eda(root, tmp_path / "out", progress=False)
    assert_valid_pngs([p for k, p in paths.items() if k not in {"markdown", "html"}])
    md = paths["markdown"].read_text()
    assert "Images per split and class" in md
    assert "1 above 100 years (150), flagged as implausible" in md


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
    data = eda.load(tmp_path / "ds", progress=False)
    assert data.kind == "converted" and len(data.patients) == 12 and len(data.boxes) == 6
    assert (data.checks["violations"] == 0).all(), data.checks
    for dcm in sorted((real_kaggle / eda.TRAIN_DICOM_DIR).glob("*.dcm")):
        ds = pydicom.dcmread(dcm, stop_before_pixels=True)
        row = data.patients.set_index("patientId").loc[dcm.stem]
        assert (row["PatientAge"], row["PatientSex"], row["ViewPosition"]) == (
            int(ds.PatientAge), ds.PatientSex, ds.ViewPosition)  # fmt: skip
    paths = eda.run_eda(tmp_path / "ds", tmp_path / "out", progress=False)
    assert {"samples", "headers", "intensity"} <= set(paths)
    assert_valid_pngs([p for k, p in paths.items() if k not in {"markdown", "html"}])


def test_checks_find_violations() -> None:
    """The class/Target checks are computed: a broken pair of files fails exactly the statements it breaks."""
    labels = pd.DataFrame({
        "patientId": ["a", "a", "b", "c", "d"], "x": [1.0, None, None, 5.0, None],
        "y": [1.0, None, None, 5.0, None], "width": [9.0, None, None, 9.0, None],
        "height": [9.0, None, None, 9.0, None], "Target": [1, 1, 0, 1, 0],
    })  # fmt: skip
    lo, normal = "Lung Opacity", "Normal"
    classes = pd.DataFrame({"patientId": labels["patientId"], "class": [lo, lo, normal, normal, lo]})
    checks = eda.kaggle_checks(labels, classes).set_index("check")["violations"]
    # a's second row is Target=1 without a box; c is Target=1 but Normal; d is Lung Opacity with Target=0.
    assert checks["every Target=1 row has all four box fields"] == 1
    assert checks["every Target=1 row is Lung Opacity"] == 1
    assert checks["every Lung Opacity row has Target=1"] == 1
    assert checks["patients with several rows are all Lung Opacity with one box per row"] == 1
    assert checks["every Target=0 row has all four box fields empty"] == 0
    assert checks["one class per patient"] == 0
