"""rsna_yolo.core.dicom: decoding, intensity mapping and headers, on the real files and generated ones."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from convert.synth_dicom import read_pixels, write_dicom
from rsna_yolo.core.dicom import DicomError, dicom_to_uint8, header_metadata, parse_age, read_dicom

REAL = "stage_2_train_images/0004cfab-14fd-4e49-80ba-63a80b6bddd6.dcm"


def test_real_jpeg_baseline_is_byte_identical_to_pillow_s_pixel_array(sample_dir: Path):
    """The fast path (Pillow on the frame) gives what pydicom gives with the same decoder; pydicom's default
    order would pick pylibjpeg first, whose JPEG decoder rounds some pixels the other way."""
    for path in sorted((sample_dir / "stage_2_train_images").glob("*.dcm"))[:4]:
        ds = read_dicom(path)
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
        image = dicom_to_uint8(ds)
        reference = read_pixels(path)
        assert image.dtype == np.uint8 and image.shape == (1024, 1024)
        assert image.tobytes() == reference.tobytes()


def test_real_headers_parse_without_warnings(sample_dir: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meta = header_metadata(read_dicom(sample_dir / REAL, headers_only=True))
    assert meta == {"PatientAge": 51, "PatientSex": "F", "ViewPosition": "PA", "rows": 1024, "cols": 1024}
    assert [str(w.message) for w in caught] == []


def test_missing_header_values_are_none(tmp_path: Path):
    path = tmp_path / "x.dcm"
    write_dicom(path, np.zeros((8, 6), np.uint8), patient_id="x", age=None, sex=None, view=None)
    assert header_metadata(read_dicom(path)) == {
        "PatientAge": None,
        "PatientSex": None,
        "ViewPosition": None,
        "rows": 8,
        "cols": 6,
    }


def test_parse_age():
    assert [parse_age(v) for v in ("51", "051Y", "006M", "003W", "", None, "abc", "150")] == [
        51,
        51,
        0,
        0,
        None,
        None,
        None,
        150,
    ]


def test_uncompressed_8bit_plain_and_monochrome1(tmp_path: Path):
    pixels = np.arange(7 * 5, dtype=np.uint8).reshape(7, 5) * 7  # non-square, 0..238
    write_dicom(tmp_path / "m2.dcm", pixels, patient_id="m2", transfer_syntax="explicit")
    mono1 = {"transfer_syntax": "explicit", "photometric": "MONOCHROME1"}
    write_dicom(tmp_path / "m1.dcm", pixels, patient_id="m1", **mono1)
    assert np.array_equal(dicom_to_uint8(read_dicom(tmp_path / "m2.dcm")), pixels)
    assert np.array_equal(dicom_to_uint8(read_dicom(tmp_path / "m1.dcm")), 255 - pixels)


def test_16bit_with_window_maps_linearly(tmp_path: Path):
    # Centre 2000.5, width 1021: y = (x - 2000) / 4 + 127.5, clipped to 0..255 (DICOM linear VOI).
    stored = np.array([[1000, 1490, 1998, 2002, 2402, 2510, 4000]], dtype=np.uint16)
    write_dicom(
        tmp_path / "w.dcm",
        stored,
        patient_id="w",
        transfer_syntax="explicit",
        bits_stored=12,
        window_center=2000.5,
        window_width=1021,
    )
    out = dicom_to_uint8(read_dicom(tmp_path / "w.dcm"))
    assert out.dtype == np.uint8
    assert out.tolist() == [[0, 0, 127, 128, 228, 255, 255]]


def test_rescale_then_window_then_monochrome1(tmp_path: Path):
    # value = 2 * stored - 1000; the same window as above in value units, then inverted.
    values = np.array([1000, 1490, 1998, 2002, 2402, 2510, 4000])
    stored = ((values + 1000) // 2).astype(np.uint16).reshape(1, -1)
    write_dicom(
        tmp_path / "r.dcm",
        stored,
        patient_id="r",
        transfer_syntax="explicit",
        photometric="MONOCHROME1",
        rescale_slope=2,
        rescale_intercept=-1000,
        window_center=2000.5,
        window_width=1021,
    )
    out = dicom_to_uint8(read_dicom(tmp_path / "r.dcm"))
    assert out.tolist() == [[255 - v for v in (0, 0, 127, 128, 228, 255, 255)]]


def test_16bit_without_window_is_min_max_stretched(tmp_path: Path):
    stored = np.array([[100, 150, 200], [200, 100, 125]], dtype=np.uint16)
    write_dicom(tmp_path / "m.dcm", stored, patient_id="m", transfer_syntax="explicit", bits_stored=16)
    # (x - 100) * 255 / 100: 150 -> 127.5 -> 128 (np.rint: half to even), 125 -> 63.75 -> 64
    assert dicom_to_uint8(read_dicom(tmp_path / "m.dcm")).tolist() == [[0, 128, 255], [255, 0, 64]]


def test_jpeg_and_uncompressed_agree(tmp_path: Path):
    yy, xx = np.mgrid[0:96, 0:128]
    pixels = (40 + xx + yy // 2).astype(np.uint8)  # smooth, non-square
    write_dicom(tmp_path / "j.dcm", pixels, patient_id="j", transfer_syntax="jpeg")
    write_dicom(tmp_path / "e.dcm", pixels, patient_id="e", transfer_syntax="explicit")
    jpeg = dicom_to_uint8(read_dicom(tmp_path / "j.dcm"))
    plain = dicom_to_uint8(read_dicom(tmp_path / "e.dcm"))
    assert np.array_equal(plain, pixels)
    assert jpeg.shape == (96, 128)
    assert jpeg.tobytes() == read_pixels(tmp_path / "j.dcm").tobytes()
    assert np.abs(jpeg.astype(int) - pixels).mean() < 1.5  # lossy, but close


def test_broken_files_raise_dicom_error(tmp_path: Path, sample_dir: Path):
    data = (sample_dir / REAL).read_bytes()
    (tmp_path / "half.dcm").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.dcm").write_bytes(b"patientId,x,y\n" * 20)
    ds = pydicom.dcmread(sample_dir / REAL)
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(DicomError, match="truncated"):
        read_dicom(tmp_path / "half.dcm")
    with pytest.raises(DicomError, match="not a DICOM file"):
        read_dicom(tmp_path / "text.dcm")
    with pytest.raises(DicomError, match="no pixel data"):
        read_dicom(tmp_path / "nopixels.dcm")
    with pytest.raises(DicomError):
        read_dicom(tmp_path / "absent.dcm")
    assert header_metadata(read_dicom(tmp_path / "nopixels.dcm", headers_only=True))["PatientAge"] == 51


def test_corrupt_jpeg_stream_raises_dicom_error(tmp_path: Path):
    write_dicom(tmp_path / "j.dcm", np.full((64, 64), 90, np.uint8), patient_id="j")
    ds = pydicom.dcmread(tmp_path / "j.dcm")
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\xd8\xff\xe0 not really a jpeg stream"])
    with pytest.raises(DicomError, match="cannot decode"):
        dicom_to_uint8(ds)
    ds.PixelData = pydicom.encaps.encapsulate([b"garbage" * 10])
    with pytest.raises(DicomError, match="cannot decode") as info:
        dicom_to_uint8(ds)
    assert " at 0x" not in str(info.value)  # no memory address: reports stay byte-reproducible
