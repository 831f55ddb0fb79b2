"""Tests of ``convert.synth``: DICOM writing, the Kaggle layout, sampling and rendering."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import REPO_ROOT, subprocess_env

from convert import synth
from convert.synth import write_dicom
from core.boxes import xywh_to_xyxy

UUID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real PatientAge "51" is not a valid AS value
        ds = pydicom.dcmread(path)
        ds.pixel_array_options(decoding_plugin="pillow")
        _ = ds.pixel_array
    return ds


def _tag_vrs(ds: pydicom.Dataset) -> dict[str, str]:
    return {el.keyword: el.VR for el in ds}


def _gradient(rows: int, cols: int) -> np.ndarray:
    """A smooth uint8 test image ``(rows, cols)`` that JPEG keeps nearly intact."""
    y, x = np.mgrid[0:rows, 0:cols]
    return (40 + 150 * (x / cols) * 0.6 + 150 * (y / rows) * 0.4).astype(np.uint8)


@pytest.fixture(scope="module")
def real_dicom(sample_dir: Path) -> pydicom.Dataset:
    return _read(sorted((sample_dir / "stage_2_train_images").glob("*.dcm"))[0])


def test_jpeg_dicom_reads_back_like_the_real_files(tmp_path: Path, real_dicom: pydicom.Dataset):
    pixels = _gradient(1024, 1024)
    path = tmp_path / f"{UUID}.dcm"
    write_dicom(path, pixels, patient_id=UUID, age="51", sex="F", view="AP")
    ds = _read(path)

    jpeg_baseline = "1.2.840.10008.1.2.4.50"
    assert ds.file_meta.TransferSyntaxUID == real_dicom.file_meta.TransferSyntaxUID == jpeg_baseline
    assert ds.preamble == b"\0" * 128
    assert _tag_vrs(ds) == _tag_vrs(real_dicom)  # same tags, same VRs
    assert _tag_vrs(ds.file_meta) == _tag_vrs(real_dicom.file_meta)
    assert ds.PatientID == ds.PatientName == UUID
    assert (ds.PatientAge, ds.PatientSex, ds.ViewPosition) == ("51", "F", "AP")
    assert ds.SeriesDescription == "view: AP"
    assert (ds.Modality, ds.PhotometricInterpretation, ds.BitsStored) == ("CR", "MONOCHROME2", 8)
    assert ds["PixelData"].is_undefined_length  # encapsulated, like the real files
    got = ds.pixel_array
    assert got.shape == real_dicom.pixel_array.shape == (1024, 1024)
    assert got.dtype == real_dicom.pixel_array.dtype == np.uint8
    assert np.abs(got.astype(np.int16) - pixels).mean() < 1.0


def test_jpeg_dicom_non_square(tmp_path: Path):
    pixels = _gradient(300, 517)
    write_dicom(tmp_path / "a.dcm", pixels, patient_id=UUID)
    ds = _read(tmp_path / "a.dcm")
    assert (ds.Rows, ds.Columns) == (300, 517)
    assert ds.pixel_array.shape == (300, 517)
    assert np.abs(ds.pixel_array.astype(np.int16) - pixels).mean() < 1.0


def test_explicit_dicom_keeps_pixels_and_optional_tags(tmp_path: Path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, size=(200, 150), dtype=np.uint16)
    path = tmp_path / "b.dcm"
    write_dicom(
        path,
        pixels,
        patient_id=UUID,
        age=None,
        sex=None,
        view=None,
        transfer_syntax="explicit",
        photometric="MONOCHROME1",
        bits_stored=12,
        rescale_slope=2.0,
        rescale_intercept=-1024.0,
        window_center=40.0,
        window_width=400.0,
        pixel_spacing=(0.143, 0.143),
    )
    ds = _read(path)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (2.0, -1024.0)
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40.0, 400.0)
    assert [float(v) for v in ds.PixelSpacing] == [0.143, 0.143]
    for missing in ("PatientAge", "PatientSex", "ViewPosition", "SeriesDescription"):
        assert missing not in ds
    assert ds.pixel_array.dtype == np.uint16
    np.testing.assert_array_equal(ds.pixel_array, pixels)


def test_explicit_dicom_8bit_identical(tmp_path: Path):
    pixels = np.arange(64 * 80, dtype=np.int64).reshape(64, 80).astype(np.uint8)
    write_dicom(tmp_path / "c.dcm", pixels, patient_id=UUID, transfer_syntax="explicit")
    ds = _read(tmp_path / "c.dcm")
    assert (ds.BitsAllocated, ds.BitsStored) == (8, 8)
    np.testing.assert_array_equal(ds.pixel_array, pixels)
    np.testing.assert_array_equal(synth.read_pixels(tmp_path / "c.dcm"), pixels)


def test_write_dicom_rejects_what_jpeg_cannot_hold(tmp_path: Path):
    with pytest.raises(ValueError, match="8-bit"):
        write_dicom(tmp_path / "d.dcm", np.zeros((8, 8), np.uint16), patient_id=UUID, bits_stored=12)
    with pytest.raises(ValueError, match="do not fit"):
        write_dicom(
            tmp_path / "d.dcm",
            np.full((8, 8), 5000, np.uint16),
            patient_id=UUID,
            transfer_syntax="explicit",
            bits_stored=12,
        )


def test_write_dicom_is_deterministic(tmp_path: Path):
    pixels = _gradient(64, 64)
    write_dicom(tmp_path / "1.dcm", pixels, patient_id=UUID)
    write_dicom(tmp_path / "2.dcm", pixels, patient_id=UUID)
    assert (tmp_path / "1.dcm").read_bytes() == (tmp_path / "2.dcm").read_bytes()


# ----------------------------------------------------------------------------------------------------
# The Kaggle layout written by generate()
# ----------------------------------------------------------------------------------------------------

N_TRAIN, N_TEST = 50, 10
COORD = re.compile(r"^\d+\.\d+$")  # "264.0", as the real labels file writes coordinates


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    summary = synth.generate(out, N_TRAIN, N_TEST, seed=7)
    assert summary["train_patients"] == N_TRAIN and summary["test_patients"] == N_TEST
    return out


@pytest.fixture(scope="module")
def real_labels(sample_dir: Path) -> pd.DataFrame:
    return pd.read_csv(sample_dir / synth.LABELS_CSV)


def _real_box_tuples(labels: pd.DataFrame) -> set[tuple[float, ...]]:
    pos = labels[labels["Target"] == 1]
    return set(map(tuple, pos[["x", "y", "width", "height"]].to_numpy(float)))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_generate_writes_the_kaggle_layout(synth_dir: Path):
    assert sorted(p.name for p in synth_dir.iterdir()) == sorted(
        [
            "README.md",
            synth.TRAIN_IMAGES,
            synth.TEST_IMAGES,
            synth.LABELS_CSV,
            synth.CLASS_CSV,
            synth.SUBMISSION_CSV,
        ]
    )
    train_ids = sorted(p.stem for p in (synth_dir / synth.TRAIN_IMAGES).glob("*.dcm"))
    test_ids = sorted(p.stem for p in (synth_dir / synth.TEST_IMAGES).glob("*.dcm"))
    assert len(train_ids) == N_TRAIN and len(test_ids) == N_TEST
    assert not set(train_ids) & set(test_ids)
    for pid in train_ids + test_ids:
        assert uuid.UUID(pid).version == 4 and str(uuid.UUID(pid)) == pid
    labels = pd.read_csv(synth_dir / synth.LABELS_CSV)
    assert sorted(labels["patientId"].unique()) == train_ids
    submission = pd.read_csv(synth_dir / synth.SUBMISSION_CSV)
    assert sorted(submission["patientId"]) == test_ids
    assert "SYNTHETIC" in (synth_dir / "README.md").read_text()
    assert "--seed 7" in (synth_dir / "README.md").read_text()


def test_labels_csv_has_the_real_structure(synth_dir: Path, sample_dir: Path, real_labels: pd.DataFrame):
    real_lines = _lines(sample_dir / synth.LABELS_CSV)
    lines = _lines(synth_dir / synth.LABELS_CSV)
    assert lines[0] == real_lines[0] == "patientId,x,y,width,height,Target"
    for line in lines[1:]:
        _, *coords, target = line.split(",")
        if target == "0":
            assert coords == ["", "", "", ""]  # negatives: empty box fields, as in the real file
        else:
            assert target == "1" and all(COORD.match(c) for c in coords), line
    assert any(COORD.match(c) for line in real_lines[1:] for c in line.split(",")[1:5])  # same float style
    labels = pd.read_csv(synth_dir / synth.LABELS_CSV)
    assert list(labels.dtypes) == list(real_labels.dtypes)  # pandas reads both the same way
    assert list(labels["patientId"]) == sorted(labels["patientId"])  # sorted, like the real file
    # Every patient's rows are consecutive and negatives have exactly one row.
    runs = (labels["patientId"] != labels["patientId"].shift()).sum()
    assert runs == labels["patientId"].nunique()
    assert (labels[labels["Target"] == 0].groupby("patientId").size() == 1).all()


def test_class_csv_is_row_aligned_with_labels(synth_dir: Path, sample_dir: Path):
    assert (
        _lines(synth_dir / synth.CLASS_CSV)[0] == _lines(sample_dir / synth.CLASS_CSV)[0] == "patientId,class"
    )
    labels = pd.read_csv(synth_dir / synth.LABELS_CSV)
    classes = pd.read_csv(synth_dir / synth.CLASS_CSV)
    assert len(labels) == len(classes)
    assert (labels["patientId"] == classes["patientId"]).all()
    assert set(classes["class"]) <= set(synth.CLASSES)
    assert ((classes["class"] == synth.LUNG_OPACITY) == (labels["Target"] == 1)).all()


def test_sample_submission_format(synth_dir: Path):
    lines = _lines(synth_dir / synth.SUBMISSION_CSV)
    assert lines[0] == "patientId,PredictionString"
    assert all(line.endswith(",0.5 0 0 100 100") for line in lines[1:])
    assert len(lines) == N_TEST + 1


def test_generated_dicoms_read_back_like_the_real_files(synth_dir: Path, real_dicom: pydicom.Dataset):
    real_vrs = _tag_vrs(real_dicom)
    for path in sorted((synth_dir / synth.TRAIN_IMAGES).glob("*.dcm"))[:12]:
        ds = _read(path)
        assert ds.file_meta.TransferSyntaxUID == real_dicom.file_meta.TransferSyntaxUID
        assert _tag_vrs(ds) == real_vrs, path.name
        assert ds.PatientID == ds.PatientName == path.stem
        assert ds.PatientAge.isdigit() and ds.PatientSex in ("M", "F") and ds.ViewPosition in ("AP", "PA")
        assert ds.SeriesDescription == f"view: {ds.ViewPosition}"
        assert ds.pixel_array.shape == (1024, 1024) and ds.pixel_array.dtype == np.uint8


def test_generated_boxes_are_real_boxes(synth_dir: Path, real_labels: pd.DataFrame):
    labels = pd.read_csv(synth_dir / synth.LABELS_CSV)
    boxes = labels[labels["Target"] == 1][["x", "y", "width", "height"]].to_numpy(float)
    assert len(boxes) > 0
    real = _real_box_tuples(real_labels)
    assert all(tuple(b) in real for b in boxes)


def test_shipped_box_sets_are_the_real_files_sets(sample_dir: Path):
    """The shipped table is exactly what --labels-csv makes of the real stage-2 labels file."""
    shipped = synth.load_box_sets()
    real = synth.load_box_sets(sample_dir / synth.LABELS_CSV)
    assert len(shipped) == len(real) == 6012 and sum(len(s) for s in shipped) == 9555
    assert all(np.array_equal(a, b) for a, b in zip(shipped, real, strict=True))
    assert synth.box_source() == "shipped" and synth.box_source(sample_dir) == str(sample_dir)


def test_shipped_box_sets_are_whole_pixels_in_the_frame():
    sets = synth.load_box_sets()
    boxes = np.concatenate(sets)
    assert boxes.shape == (9555, 4) and (boxes == np.round(boxes)).all()
    assert (boxes[:, 2:] > 0).all() and (boxes[:, :2] >= 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= 1024).all() and (boxes[:, 1] + boxes[:, 3] <= 1024).all()
    assert {len(s) for s in sets} == {1, 2, 3, 4}


def test_box_sets_from_a_given_labels_csv(tmp_path: Path):
    csv = tmp_path / "labels.csv"
    csv.write_text(
        "patientId,x,y,width,height,Target\n"
        "b,10.0,20.0,30.0,40.0,1\n"
        "a,,,,,0\n"
        "c,1.0,2.0,3.0,4.0,1\n"
        "c,100.0,200.0,300.0,400.0,1\n"
    )
    sets = synth.load_box_sets(csv)
    assert [s.tolist() for s in sets] == [[[10, 20, 30, 40]], [[1, 2, 3, 4], [100, 200, 300, 400]]]
    (tmp_path / "bad.csv").write_text("patientId,x\n")
    with pytest.raises(ValueError, match="missing column"):
        synth.load_box_sets(tmp_path / "bad.csv")


# ----------------------------------------------------------------------------------------------------
# Sampling (pure; no rendering)
# ----------------------------------------------------------------------------------------------------


def test_class_fractions_match_the_real_file(sample_dir: Path):
    classes = pd.read_csv(sample_dir / synth.CLASS_CSV).drop_duplicates("patientId")["class"]
    real = classes.value_counts(normalize=True)
    for cls in synth.CLASSES:
        assert synth.CLASS_FRACTIONS[cls] == pytest.approx(real[cls], abs=1e-9)


def test_sampled_patients_follow_the_real_distributions(real_labels: pd.DataFrame):
    n = 20_000
    specs = synth.sample_patients(np.random.default_rng(0), n, synth.load_box_sets())
    counts = {cls: sum(s.cls == cls for s in specs) / n for cls in synth.CLASSES}
    for cls in synth.CLASSES:  # binomial standard error at n=20000 is under 0.0036
        assert counts[cls] == pytest.approx(synth.CLASS_FRACTIONS[cls], abs=0.015)
    # Boxes per positive image: the real distribution (about 43% one box, 54% two, 2% three).
    real_k = real_labels[real_labels["Target"] == 1].groupby("patientId").size().value_counts(normalize=True)
    pos = [s for s in specs if s.cls == synth.LUNG_OPACITY]
    k = pd.Series([len(s.boxes_xywh_px) for s in pos]).value_counts(normalize=True)
    for boxes in (1, 2, 3):
        assert k[boxes] == pytest.approx(real_k[boxes], abs=0.02)
    assert all(len(s.boxes_xywh_px) == 0 for s in specs if s.cls != synth.LUNG_OPACITY)
    # No two boxes of one image overlap heavily (whole real box sets never exceed IoU 0.06).
    for spec in pos:
        xyxy = xywh_to_xyxy(spec.boxes_xywh_px)
        for i in range(len(xyxy)):
            for j in range(i + 1, len(xyxy)):
                lo, hi = np.maximum(xyxy[i, :2], xyxy[j, :2]), np.minimum(xyxy[i, 2:], xyxy[j, 2:])
                inter = np.prod(np.clip(hi - lo, 0, None))
                union = np.prod(spec.boxes_xywh_px[i, 2:]) + np.prod(spec.boxes_xywh_px[j, 2:]) - inter
                assert inter / union < 0.1
    # Not Normal patients carry a finding, Normal ones none; AP more common among positives.
    assert all(s.findings for s in specs if s.cls == synth.NOT_NORMAL)
    assert not any(s.findings for s in specs if s.cls == synth.NORMAL)

    def ap(cls):
        return np.mean([s.view == "AP" for s in specs if s.cls == cls])

    assert ap(synth.LUNG_OPACITY) > 0.65 > ap(synth.NOT_NORMAL) > ap(synth.NORMAL)
    ages = np.array([int(s.age) for s in specs])
    assert ages.min() >= 1 and 40 < np.median(ages) < 60
    assert len({s.patient_id for s in specs}) == n


def test_format_coord_matches_the_real_file():
    assert synth.format_coord(264) == "264.0"
    assert synth.format_coord(53.25) == "53.25"


# ----------------------------------------------------------------------------------------------------
# Determinism and the command line
# ----------------------------------------------------------------------------------------------------


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generate_is_byte_identical_for_a_seed(tmp_path: Path):
    a = synth.generate(tmp_path / "a", 8, 3, seed=11, imgsz=256)
    b = synth.generate(tmp_path / "b", 8, 3, seed=11, imgsz=256, workers=2)
    assert a["classes"] == b["classes"]
    first, second = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert len(first) == 8 + 3 + 4 and first == second
    synth.generate(tmp_path / "c", 8, 3, seed=12, imgsz=256)
    assert _tree_bytes(tmp_path / "c")[synth.LABELS_CSV] != first[synth.LABELS_CSV]


def test_generate_scales_boxes_to_imgsz(tmp_path: Path, real_labels: pd.DataFrame):
    synth.generate(tmp_path, 30, 0, seed=3, imgsz=256)
    labels = pd.read_csv(tmp_path / synth.LABELS_CSV)
    boxes = labels[labels["Target"] == 1][["x", "y", "width", "height"]].to_numpy(float) * 4
    assert len(boxes) > 0 and all(tuple(b) in _real_box_tuples(real_labels) for b in boxes)
    ds = _read(next((tmp_path / synth.TRAIN_IMAGES).glob("*.dcm")))
    assert (ds.Rows, ds.Columns) == (256, 256)


def test_generate_refuses_to_mix_with_an_earlier_run(tmp_path: Path):
    synth.generate(tmp_path, 2, 1, seed=0, imgsz=128)
    with pytest.raises(FileExistsError):
        synth.generate(tmp_path, 2, 0, seed=1, imgsz=128)
    synth.generate(tmp_path, 2, 0, seed=1, imgsz=128, overwrite=True)
    assert len(list(tmp_path.rglob("*.dcm"))) == 2


def test_cli_writes_and_summarises(tmp_path: Path):
    cmd = [sys.executable, "-m", "convert", "synth", "--out", str(tmp_path), "--patients", "4"]
    cmd += ["--test-patients", "1", "--seed", "5", "--imgsz", "128"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("synth: wrote 4 train (") and "1 test DICOMs" in done.stdout
    assert len(list((tmp_path / synth.TRAIN_IMAGES).glob("*.dcm"))) == 4
    again = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=REPO_ROOT)
    assert again.returncode == 2
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m convert: error:") and "--overwrite" in last
    assert "Traceback" not in again.stderr


# ----------------------------------------------------------------------------------------------------
# Rendering: what a detector must learn is there
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered_specs() -> list[synth.PatientSpec]:
    return synth.sample_patients(np.random.default_rng(5), 40, synth.load_box_sets())


def test_opacity_is_visibly_brighter_inside_its_box(rendered_specs):
    positives = [s for s in rendered_specs if s.cls == synth.LUNG_OPACITY][:4]
    assert positives
    for spec in positives:
        with_opacity = synth.render_radiograph(spec, 512).astype(np.float64)
        without = synth.render_radiograph(spec, 512, with_boxes=False).astype(np.float64)
        diff = with_opacity - without
        far = np.ones(diff.shape, bool)
        for x, y, w, h in (spec.boxes_xywh_px / 2).astype(int):
            centre = diff[y + h // 4 : y + 3 * h // 4, x + w // 4 : x + 3 * w // 4]
            assert centre.mean() > 20, (spec.patient_id, centre.mean())  # gray levels of 255
            far[max(0, y - h // 4) : y + h + h // 4, max(0, x - w // 4) : x + w + w // 4] = False
        assert np.abs(diff[far]).max() <= 1  # nothing changes away from the boxes


def test_not_normal_findings_are_visible(rendered_specs):
    not_normal = [s for s in rendered_specs if s.cls == synth.NOT_NORMAL][:6]
    assert not_normal
    for spec in not_normal:
        img = synth.render_radiograph(spec, 256).astype(np.int16)
        plain = synth.render_radiograph(spec, 256, with_findings=False).astype(np.int16)
        assert (np.abs(img - plain) > 30).sum() >= 15, spec.findings  # a visible mark, at least a nodule


def test_render_is_a_radiograph_layout(rendered_specs):
    """Dark background at the sides, darker lungs than the mediastinum, no boxes or findings needed."""
    spec = next(s for s in rendered_specs if s.cls == synth.NORMAL)
    img = synth.render_radiograph(spec, 256).astype(np.float64)
    corner = img[200:, :6].mean()
    lungs = (img[100:160, 60:90].mean() + img[100:160, 166:196].mean()) / 2
    mediastinum = img[100:160, 122:134].mean()
    assert corner < 40 and lungs + 30 < mediastinum


def _clone(dst: Path) -> Path:
    """A copy of the repository's tracked files at ``dst/repo`` (what `git clone` gives a user)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    )
    for name in files.stdout.decode().split("\0"):
        if name and (REPO_ROOT / name).is_file():
            (dst / "repo" / name).parent.mkdir(parents=True, exist_ok=True)
            (dst / "repo" / name).write_bytes((REPO_ROOT / name).read_bytes())
    return dst / "repo"


def test_synth_bytes_do_not_depend_on_a_real_sample_beside_the_clone(tmp_path: Path, sample_dir: Path):
    """Two clones, one with ../shared/rsna_sample beside it, one bare: the same command, the same bytes."""
    outputs = []
    for case in ("with_sample", "bare"):
        repo = _clone(tmp_path / case)
        if case == "with_sample":
            (repo.parent / "shared").mkdir()
            (repo.parent / "shared" / "rsna_sample").symlink_to(sample_dir)
        env = subprocess_env()
        env.pop("RSNA_SAMPLE_DIR", None)
        env["PYTHONPATH"] = str(repo)
        out = tmp_path / case / "synth"
        cmd = [sys.executable, "-m", "convert", "synth", "--out", str(out), "--patients", "12"]
        cmd += ["--test-patients", "2", "--imgsz", "128", "--seed", "3", "--workers", "1"]
        subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=True)
        outputs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0].keys() == outputs[1].keys() and len(outputs[0]) == 12 + 2 + 4
    assert all(outputs[0][k] == outputs[1][k] for k in outputs[0])
