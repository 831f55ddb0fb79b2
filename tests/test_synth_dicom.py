"""Tests of ``convert.synth_dicom``: synthetic DICOMs read back like the real challenge files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from convert import synth_dicom
from convert.synth import write_dicom

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
    np.testing.assert_array_equal(synth_dicom.read_pixels(tmp_path / "c.dcm"), pixels)


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
