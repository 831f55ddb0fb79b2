"""convert.rsna + convert.check: the real sample, geometry, bad input, folds, reruns, the CLIs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest

from convert.check import check_dataset
from convert.rsna import convert_rsna
from convert.synth import generate
from convert.synth_dicom import read_pixels, write_dicom
from rsna_yolo.core.boxes import cxcywh_norm_to_xywh_px
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import MANIFEST_COLUMNS
from tests.conftest import REPO_ROOT, subprocess_env

LABELS_CSV = "stage_2_train_labels.csv"
CLASSES_CSV = "stage_2_detailed_class_info.csv"
TRAIN = "stage_2_train_images"
LOST = "; no valid box left, patient left out"

# The three real positive patients. Expected lines computed by hand from their CSV rows
# (x, y, w, h) -> ((x + w/2) / 1024, (y + h/2) / 1024, w / 1024, h / 1024), 6 decimals, exact halves
# rounded to even as Python's format does (104/1024 = 0.1015625 -> 0.101562;
# 776/1024 = 0.7578125 -> 0.757812).
REAL_POSITIVE_LABELS = {
    # 264,152,213,379 and 562,152,256,453
    "00436515-870c-4b36-a041-de91049b9ab4": "0 0.361816 0.333496 0.208008 0.370117\n"
    "0 0.673828 0.369629 0.250000 0.442383\n",
    # 323,577,160,104 and 695,575,162,137
    "00704310-78a8-4b38-8475-49f4573b2dbb": "0 0.393555 0.614258 0.156250 0.101562\n"
    "0 0.757812 0.628418 0.158203 0.133789\n",
    # 288,322,94,135 and 547,299,119,165
    "00aecb01-a116-45a2-956c-08d2fa55433f": "0 0.327148 0.380371 0.091797 0.131836\n"
    "0 0.592285 0.372559 0.116211 0.161133\n",
}


def quiet(*_args, **_kwargs) -> None:
    """An ``echo`` that prints nothing."""


def convert(src: Path, out: Path, **kwargs) -> dict:
    kwargs.setdefault("workers", 1)
    return convert_rsna(src, out, progress=False, echo=quiet, **kwargs)


def read_manifest(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False).set_index("patientId")


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_real_sample(real_kaggle: Path, tmp_path: Path):
    out = tmp_path / "out"
    report = convert(real_kaggle, out)
    assert report["check"] == {"ok": True, "problems": []}
    assert report["counts"]["converted"] == 12 and report["counts"]["boxes"] == 6
    # The sample holds 12 of the 26,684 labelled patients' DICOMs: the others are reported, not lost.
    assert report["skipped_by_reason"] == {"no DICOM in stage_2_train_images/": 26684 - 12}
    assert json.loads((out / "report.json").read_text()) == report

    manifest = read_manifest(out)
    assert tuple(["patientId", *manifest.columns]) == MANIFEST_COLUMNS
    assert manifest["class"].value_counts().to_dict() == {
        "No Lung Opacity / Not Normal": 6,
        "Lung Opacity": 3,
        "Normal": 3,
    }
    first = manifest.loc["0004cfab-14fd-4e49-80ba-63a80b6bddd6"]
    assert (first["PatientAge"], first["PatientSex"], first["ViewPosition"]) == ("51", "F", "PA")
    assert (first["rows"], first["cols"], first["scale"]) == ("1024", "1024", "1.0")
    assert set(manifest["split"]) == {"train", "val"}

    for pid, row in manifest.iterrows():
        label = (out / "labels" / row["split"] / f"{pid}.txt").read_text()
        assert label == REAL_POSITIVE_LABELS.get(pid, ""), pid
        png = cv2.imread(str(out / row["png"]), cv2.IMREAD_UNCHANGED)
        source = read_pixels(real_kaggle / TRAIN / f"{pid}.dcm")  # Pillow, as the converter decodes
        assert png.dtype == np.uint8 and np.array_equal(png, source)  # native size: lossless copy

    boxes = pd.read_csv(out / "boxes.csv")
    assert boxes.columns.tolist() == ["patientId", "x", "y", "width", "height"]
    truth = pd.read_csv(real_kaggle / LABELS_CSV).dropna()
    truth = truth[truth["patientId"].isin(manifest.index)]
    assert np.array_equal(boxes.iloc[:, 1:].to_numpy(), truth.iloc[:, 1:5].to_numpy())
    for pid, grp in boxes.groupby("patientId"):
        lines = [line.split()[1:] for line in REAL_POSITIVE_LABELS[pid].splitlines()]
        back = cxcywh_norm_to_xywh_px(np.array(lines, dtype=float), 1024, 1024)
        assert np.abs(back - grp.iloc[:, 1:].to_numpy()).max() <= 0.5


def test_real_sample_resized(real_kaggle: Path, tmp_path: Path):
    out = tmp_path / "out"
    convert(real_kaggle, out, imgsz=256, workers=2)
    manifest = read_manifest(out)
    assert set(manifest["scale"]) == {"0.25"}
    for pid, row in manifest.iterrows():
        png = cv2.imread(str(out / row["png"]), cv2.IMREAD_UNCHANGED)
        source = read_pixels(real_kaggle / TRAIN / f"{pid}.dcm")  # Pillow, as the converter decodes
        assert np.array_equal(png, cv2.resize(source, (256, 256), interpolation=cv2.INTER_AREA))
        label = (out / "labels" / row["split"] / f"{pid}.txt").read_text()
        assert label == REAL_POSITIVE_LABELS.get(pid, "")  # normalised labels do not depend on imgsz


def write_csvs(src: Path, rows: list[tuple], classes: list[tuple]) -> None:
    pd.DataFrame(rows, columns=["patientId", "x", "y", "width", "height", "Target"]).to_csv(
        src / LABELS_CSV, index=False
    )
    pd.DataFrame(classes, columns=["patientId", "class"]).to_csv(src / CLASSES_CSV, index=False)


def test_geometry_non_square_clipping_and_pixel_mapping(tmp_path: Path):
    src = tmp_path / "src"
    (src / TRAIN).mkdir(parents=True)
    wide = np.tile(np.arange(300, dtype=np.uint8) % 251, (200, 1))  # rows 200, cols 300
    write_dicom(src / TRAIN / "wide.dcm", wide, patient_id="wide", transfer_syntax="explicit")
    # 12-bit MONOCHROME1 with a window: y = (x - 2000) / 4 + 127.5, then inverted.
    stored = np.full((100, 80), 2002, np.uint16)
    stored[:50] = 1000
    write_dicom(
        src / TRAIN / "mono1.dcm",
        stored,
        patient_id="mono1",
        transfer_syntax="explicit",
        photometric="MONOCHROME1",
        bits_stored=12,
        window_center=2000.5,
        window_width=1021,
    )
    write_dicom(src / TRAIN / "tall.dcm", wide.T.copy(), patient_id="tall")  # JPEG, rows 300, cols 200
    write_csvs(
        src,
        [
            ("wide", 250, 150, 100, 100, 1),  # reaches past the right and bottom edges
            ("wide", 10, 20, 30, 40, 1),
            ("mono1", None, None, None, None, 0),
            ("tall", None, None, None, None, 0),
        ],
        [("wide", "Lung Opacity"), ("wide", "Lung Opacity"), ("mono1", "Normal"), ("tall", "Normal")],
    )
    out = tmp_path / "out"
    report = convert(src, out, imgsz=150, val_fraction=0.5)
    assert report["check"]["ok"], report["check"]
    manifest = read_manifest(out)
    assert manifest.loc["wide", ["rows", "cols", "scale"]].tolist() == ["200", "300", "0.5"]
    assert manifest.loc["mono1", "scale"] == "1.5"  # smaller sources are scaled up to imgsz
    split = manifest.loc["wide", "split"]
    png = cv2.imread(str(out / "images" / split / "wide.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (100, 150)
    assert cv2.imread(str(out / manifest.loc["tall", "png"]), cv2.IMREAD_UNCHANGED).shape == (150, 100)
    mono = cv2.imread(str(out / manifest.loc["mono1", "png"]), cv2.IMREAD_UNCHANGED)
    assert mono.shape == (150, 120) and mono[0, 0] == 255 - 0 and mono[-1, -1] == 255 - 128

    # Clipped box: (250, 150, 50, 50) in a 300 x 200 image.
    lines = (out / "labels" / split / "wide.txt").read_text().splitlines()
    assert lines == ["0 0.916667 0.875000 0.166667 0.250000", "0 0.083333 0.200000 0.100000 0.200000"]
    back = cxcywh_norm_to_xywh_px(np.array([ln.split()[1:] for ln in lines], dtype=float), 300, 200)
    assert np.abs(back - [[250, 150, 50, 50], [10, 20, 30, 40]]).max() <= 0.5
    boxes = pd.read_csv(out / "boxes.csv")
    assert boxes.iloc[:, 1:].to_numpy().tolist() == [[250, 150, 100, 100], [10, 20, 30, 40]]  # unclipped


def test_box_wholly_outside_the_image_is_reported(tmp_path: Path):
    src = tmp_path / "src"
    (src / TRAIN).mkdir(parents=True)
    for pid in ("small", "n1", "n2"):
        write_dicom(src / TRAIN / f"{pid}.dcm", np.full((100, 80), 90, np.uint8), patient_id=pid)
    write_csvs(
        src,
        [
            ("small", 10, 20, 30, 40, 1),
            ("small", 500, 20, 30, 40, 1),  # a 1024-frame box beyond the 80-px-wide image
            ("n1", None, None, None, None, 0),
            ("n2", None, None, None, None, 0),
        ],
        [("small", "Lung Opacity"), ("small", "Lung Opacity"), ("n1", "Normal"), ("n2", "Normal")],
    )
    out = tmp_path / "out"
    report = convert(src, out, imgsz=64, val_fraction=0.5)
    why = "box lies wholly outside the image: left out of the label file (kept in boxes.csv)"
    assert report["skips"] == [{"file": LABELS_CSV, "row": 3, "patientId": "small", "reason": why}]
    assert report["check"] == {"ok": True, "problems": []}
    manifest = read_manifest(out)
    assert manifest.loc["small", "n_boxes"] == "2"  # the Kaggle truth keeps both boxes
    label = out / "labels" / manifest.loc["small", "split"] / "small.txt"
    assert label.read_text() == "0 0.312500 0.400000 0.375000 0.400000\n"


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    generate(src, 14, 3, seed=1, imgsz=128)
    return src


def test_bad_input_is_skipped_and_reported(synthetic: Path, tmp_path: Path):
    src = synthetic
    labels = pd.read_csv(src / LABELS_CSV, dtype=str, keep_default_na=False)
    classes = pd.read_csv(src / CLASSES_CSV, dtype=str, keep_default_na=False)
    negatives = sorted(labels.loc[labels["Target"] == "0", "patientId"])
    positive = sorted(labels.loc[labels["Target"] == "1", "patientId"])[0]
    truncated, not_dicom, no_pixels, no_dicom, donor = negatives[:5]
    data = (src / TRAIN / f"{truncated}.dcm").read_bytes()
    (src / TRAIN / f"{truncated}.dcm").write_bytes(data[: len(data) // 2])
    (src / TRAIN / f"{not_dicom}.dcm").write_text("this is not a DICOM file\n")
    ds = pydicom.dcmread(src / TRAIN / f"{no_pixels}.dcm")
    del ds.PixelData
    ds.save_as(src / TRAIN / f"{no_pixels}.dcm")
    (src / TRAIN / f"{no_dicom}.dcm").unlink()
    shutil.copy(src / TRAIN / f"{donor}.dcm", src / TRAIN / "orphan.dcm")
    shutil.copy(src / TRAIN / f"{donor}.dcm", src / TRAIN / "bad name.dcm")
    shutil.copy(src / TRAIN / f"{donor}.dcm", src / TRAIN / "nobox.dcm")
    shutil.copy(src / TRAIN / f"{donor}.dcm", src / TRAIN / "negbox.dcm")
    shutil.copy(src / TRAIN / f"{donor}.dcm", src / "stage_2_test_images" / "x;y.dcm")
    shutil.copy(src / TRAIN / f"{donor}.dcm", src / TRAIN / f"{donor}.DCM")  # sorts first: it is kept
    dup = labels[labels["patientId"] == positive].iloc[[0]]
    extra = pd.DataFrame(
        [
            ["../../escape", "1", "2", "3", "4", "1"],
            ["nobox", "", "", "", "", "1"],
            ["negbox", "10", "20", "30", "40", "1"],
            ["negbox", "10", "20", "-30", "40", "1"],
            ["negbox", "nan", "20", "30", "40", "1"],
        ],
        columns=labels.columns,
    )
    n = len(labels)
    pd.concat([labels, dup, extra]).to_csv(src / LABELS_CSV, index=False)
    extra_classes = pd.DataFrame(
        [[pid, "Lung Opacity"] for pid in ["../../escape", "nobox", "negbox", "negbox", "negbox"]],
        columns=classes.columns,
    )
    pd.concat([classes, classes[classes["patientId"] == positive].iloc[[0]], extra_classes]).to_csv(
        src / CLASSES_CSV, index=False
    )
    before = files_under(tmp_path)
    out = tmp_path / "out"

    report = convert(src, out, workers=2)

    first_row = {pid: i + 2 for i, pid in reversed(list(enumerate(labels["patientId"])))}
    expected = {
        (f"{TRAIN}/{truncated}.dcm", None, truncated, "truncated DICOM (pixel data incomplete)"),
        (f"{TRAIN}/{not_dicom}.dcm", None, not_dicom, "not a DICOM file"),
        (f"{TRAIN}/{no_pixels}.dcm", None, no_pixels, "no pixel data"),
        (LABELS_CSV, first_row[no_dicom], no_dicom, "no DICOM in stage_2_train_images/"),
        (f"{TRAIN}/orphan.dcm", None, "orphan", "no row in stage_2_train_labels.csv"),
        (f"{TRAIN}/bad name.dcm", None, "bad name", "file name is not a plain patientId"),
        ("stage_2_test_images/x;y.dcm", None, "x;y", "file name is not a plain patientId"),
        (f"{TRAIN}/{donor}.dcm", None, donor, f"second DICOM of this patientId, kept '{TRAIN}/{donor}.DCM'"),
        (LABELS_CSV, n + 2, positive, f"duplicate of row {first_row[positive]}"),
        (LABELS_CSV, n + 3, "../../escape", "patientId is not a plain identifier"),
        (LABELS_CSV, n + 4, "nobox", "Target=1 row with a missing or NaN box value" + LOST),
        (f"{TRAIN}/nobox.dcm", None, "nobox", "its CSV rows were skipped"),
        (LABELS_CSV, n + 6, "negbox", "Target=1 row with a negative box value"),
        (LABELS_CSV, n + 7, "negbox", "Target=1 row with a missing or NaN box value"),
    }  # fmt: skip
    got = {(s["file"], s["row"], s["patientId"], s["reason"]) for s in report["skips"]}
    # DICOM reasons carry the library's detail after the fixed part: compare on that prefix.
    got = {(f, r, p, next((e[3] for e in expected if e[:3] == (f, r, p) and reason.startswith(e[3])), reason))
           for f, r, p, reason in got}  # fmt: skip
    assert got == expected
    assert report["counts"]["skipped"] == len(expected)
    assert report["check"] == {"ok": True, "problems": []}

    manifest = read_manifest(out)
    n_train = labels["patientId"].nunique() - 4 + 1  # 4 broken or missing, negbox added
    assert report["counts"]["converted"] == len(manifest) == n_train + 3  # + 3 test images
    assert manifest.loc["negbox", "n_boxes"] == "1"
    assert manifest.loc[positive, "n_boxes"] == str((labels["patientId"] == positive).sum())
    assert (
        (manifest.loc[manifest["split"] == "test", ["fold", "class", "Target", "n_boxes"]] == "").all().all()
    )
    # Nothing was written outside --out.
    assert {p for p in files_under(tmp_path) - before if not p.is_relative_to(out)} == set()
    assert not any("escape" in p.name for p in files_under(tmp_path))


def test_folds_and_ultralytics_label_mapping(synthetic: Path, tmp_path: Path):
    from ultralytics.data.utils import check_det_dataset, img2label_paths

    out = tmp_path / "out"
    report = convert(synthetic, out, folds=3, seed=5)
    assert report["check"]["ok"], report["check"]
    manifest = read_manifest(out)
    labelled = manifest[manifest["split"] != "test"]
    assert (labelled["split"] == np.where(labelled["fold"] == "0", "val", "train")).all()
    all_images = sorted(str(out / p) for p in labelled["png"])
    val_lists = []
    for k in range(3):
        data = check_det_dataset(str(out / "folds" / f"fold{k}.yaml"))
        train = Path(data["train"]).read_text().splitlines()
        val = Path(data["val"]).read_text().splitlines()
        assert sorted(train + val) == all_images
        assert sorted(val) == sorted(str(out / p) for p in labelled.loc[labelled["fold"] == str(k), "png"])
        for image, label in zip(val, img2label_paths(val), strict=True):
            assert Path(label).is_file() and Path(label).stem == Path(image).stem
        val_lists.append(set(val))
        assert Path(data["test"]) == out / "images" / "test"
    assert set.union(*val_lists) == set(all_images) and sum(map(len, val_lists)) == len(all_images)


def test_rerun_reuses_and_cleans_up(synthetic: Path, tmp_path: Path):
    out = tmp_path / "out"
    convert(synthetic, out, imgsz=64)
    first = {p: p.read_bytes() for p in files_under(out)}
    lines: list[str] = []
    convert_rsna(synthetic, out, imgsz=64, workers=1, progress=False, echo=lines.append)
    assert {p: p.read_bytes() for p in files_under(out)} == first
    n = len(read_manifest(out))
    assert any(line.startswith(f"0 images converted and {n} reused") for line in lines), lines

    # A DICOM replaced after its conversion is converted again, and only that one.
    manifest = read_manifest(out)
    pid = manifest.index[manifest["split"] == "train"][0]
    dicom = synthetic / TRAIN / f"{pid}.dcm"
    write_dicom(dicom, np.full((80, 40), 7, np.uint8), patient_id=pid, transfer_syntax="explicit")
    lines.clear()
    convert_rsna(synthetic, out, imgsz=64, workers=1, progress=False, echo=lines.append)
    assert any(line.startswith(f"1 images converted and {n - 1} reused") for line in lines), lines
    png = cv2.imread(str(out / "images" / "train" / f"{pid}.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (64, 32) and (png == 7).all()

    # Another split (a new seed) is refused: it would move patients between splits under the runs trained
    # on them; nothing is touched.
    before = {p: p.read_bytes() for p in files_under(out)}
    with pytest.raises(
        UserError, match=r"split with --folds 0 --seed 0 --val-fraction 0.2, not --folds 0 --seed 9"
    ):
        convert(synthetic, out, imgsz=64, seed=9, workers=2)
    assert {p: p.read_bytes() for p in files_under(out)} == before
    # A new imgsz redoes every image; nothing stale stays.
    report = convert(synthetic, out, imgsz=96, workers=2)
    assert report["check"] == {"ok": True, "problems": []}
    manifest = read_manifest(out)
    pngs = {p.relative_to(out).as_posix() for p in (out / "images").rglob("*.png")}
    assert pngs == set(manifest["png"])
    assert len({p.name for p in (out / "labels").rglob("*.txt")}) == (manifest["split"] != "test").sum()


def test_check_finds_problems(synthetic: Path, tmp_path: Path):
    out = tmp_path / "out"
    convert(synthetic, out, imgsz=64)
    manifest = read_manifest(out)
    positive = manifest.index[manifest["Target"] == "1"][0]
    negative = manifest.index[manifest["Target"] == "0"][0]
    pos_split, neg_split = manifest.loc[positive, "split"], manifest.loc[negative, "split"]
    (out / "labels" / pos_split / f"{positive}.txt").write_text("0 0.5 1.5 0.2 0.2\n")
    (out / "labels" / neg_split / f"{negative}.txt").unlink()
    other = "val" if neg_split == "train" else "train"
    shutil.copy(out / "images" / neg_split / f"{negative}.png", out / "images" / other / f"{negative}.png")
    problems = check_dataset(out).problems
    assert any(f"labels/{pos_split}/{positive}.txt line 1: coordinate outside [0, 1]" in p for p in problems)
    assert any(
        f"({positive}): labels/{pos_split}/{positive}.txt does not match its boxes.csv" in p for p in problems
    )
    assert any(f"label file labels/{neg_split}/{negative}.txt missing" in p for p in problems)
    assert any(f"patient {negative} has images in several splits" in p for p in problems)

    proc = subprocess.run(
        [sys.executable, "-m", "convert", "check", str(out)],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"problem(s) in {out}" in proc.stdout and "coordinate outside [0, 1]" in proc.stdout


def test_check_accounts_for_every_patient(synthetic: Path, tmp_path: Path):
    out = tmp_path / "out"
    report = convert(synthetic, out, imgsz=64)
    assert check_dataset(out).ok  # reads report.json and the source named there
    # A patient removed from the dataset without a trace: manifest row, image, label and boxes gone.
    manifest = read_manifest(out)
    pid = manifest.index[manifest["Target"] == "1"][0]
    n_boxes = int(manifest.loc[pid, "n_boxes"])
    split = manifest.loc[pid, "split"]
    manifest.drop(index=pid).reset_index().to_csv(out / "manifest.csv", index=False)
    boxes = pd.read_csv(out / "boxes.csv", dtype=str, keep_default_na=False)
    boxes[boxes["patientId"] != pid].to_csv(out / "boxes.csv", index=False)
    (out / "images" / split / f"{pid}.png").unlink()
    (out / "labels" / split / f"{pid}.txt").unlink()
    problems = check_dataset(out).problems
    c = report["counts"]
    assert sorted(problems) == sorted(
        [
            f"report.json: {split} {c[split]}, but the dataset has {c[split] - 1}",
            f"report.json: converted {c['converted']}, but the dataset has {c['converted'] - 1}",
            f"report.json: boxes {c['boxes']}, but the dataset has {c['boxes'] - n_boxes}",
            "1 valid patient(s) of the source CSVs neither in manifest.csv nor among report.json's skips, "
            f"e.g. {pid}",
        ]
    )
    # Listed among the skips, the patient is accounted for; the counts still have to agree.
    skipped = {**report, "skips": [{"file": "x", "row": None, "patientId": pid, "reason": "r"}]}
    assert len(check_dataset(out, report=skipped).problems) == 3
    fixed = {**skipped, "counts": {**c, split: c[split] - 1, "converted": c["converted"] - 1,
                                   "boxes": c["boxes"] - n_boxes}}  # fmt: skip
    assert check_dataset(out, report=fixed).problems == []


def test_cli_errors_are_one_line(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    (src / LABELS_CSV).write_text("patientId,x,y,width,height,Target\n")
    proc = subprocess.run(
        [sys.executable, "-m", "convert", "rsna", "--src", str(src), "--out", str(tmp_path / "o")],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "none of stage_2_detailed_class_info.csv" in proc.stderr
    assert "Traceback" not in proc.stderr
    with pytest.raises(UserError, match="not a folder"):
        convert(tmp_path / "missing", tmp_path / "o")
    with pytest.raises(UserError, match="--folds must be 0"):
        convert(tmp_path / "src", tmp_path / "o", folds=1)


def test_stage1_layout(synthetic: Path, tmp_path: Path):
    for stage2, stage1 in [
        (LABELS_CSV, "stage_1_train_labels.csv"),
        (CLASSES_CSV, "stage_1_detailed_class_info.csv"),
        (TRAIN, "stage_1_train_images"),
        ("stage_2_test_images", "stage_1_test_images"),
    ]:
        (synthetic / stage2).rename(synthetic / stage1)
    report = convert(synthetic, tmp_path / "out", imgsz=64)
    assert report["source"]["labels"] == "stage_1_train_labels.csv"
    assert report["source"]["test_images"] == "stage_1_test_images"
    assert report["counts"]["converted"] == 14 + 3 and report["counts"]["skipped"] == 0
    assert report["check"]["ok"]


def test_default_workers_are_the_cores_this_process_may_use():
    import os

    from rsna_yolo.core.workers import available_cpus

    assert available_cpus() == len(os.sched_getaffinity(0)) and 1 <= available_cpus() <= os.cpu_count()
