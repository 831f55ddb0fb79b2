"""Films as hospital archives send them: every compressed transfer syntax a PACS exports decodes, and each
file that cannot be used is refused for its true reason.

The exactness tests take a real challenge film, decompress it (dcmtk's ``dcmdjpeg``), recompress it with a
real encoder (dcmtk's ``dcmcjpeg``, ``dcmcjpls``, ``dcmcrle``; GDCM's ``gdcmconv`` for JPEG 2000), at 8 and
12 bits, and check that our decoder gives back the uncompressed pixels exactly (lossless syntaxes) or close
(lossy: PSNR). ``.ci/run`` installs the tools (Debian's ``dcmtk`` and ``libgdcm-tools``); elsewhere those
tests are skipped with one line.
"""

from __future__ import annotations

import copy
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from convert.synth_dicom import build_dicom
from rsna_yolo.core.dicom import DicomError, decode_pixels, dicom_to_uint8, read_dicom, read_note

REAL = "stage_2_train_images"
TOOLS = ("dcmdjpeg", "dcmcjpeg", "dcmcjpls", "dcmcrle", "gdcmconv")
# name -> (encoder command after the tool, lossless?, which source: 8 or 12 bits)
ENCODINGS = {
    "jpeg_lossless_sv1": (["dcmcjpeg", "+e1"], True, 8),  # Process 14, selection value 1: CR/DX's usual
    "jpeg_lossless_p14": (["dcmcjpeg", "+el"], True, 8),
    "jpeg_lossless_sv1_12bit": (["dcmcjpeg", "+e1"], True, 12),
    "jpeg_extended_12bit": (["dcmcjpeg", "+ee"], False, 12),
    "jpeg_extended_8bit": (["dcmcjpeg", "+ee"], False, 8),
    "jpegls_lossless": (["dcmcjpls", "+el"], True, 8),
    "jpegls_lossless_12bit": (["dcmcjpls", "+el"], True, 12),
    "jpegls_near_lossless": (["dcmcjpls", "+en", "+md", "2"], False, 8),
    "rle": (["dcmcrle"], True, 8),
    "rle_12bit": (["dcmcrle"], True, 12),
    "j2k_lossless": (["gdcmconv", "--j2k"], True, 8),
    "j2k_lossless_12bit": (["gdcmconv", "--j2k"], True, 12),
}


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


@pytest.fixture(scope="module")
def recompressed(tmp_path_factory, sample_dir: Path) -> dict[str, Path]:
    """A real film uncompressed at 8 and 12 bits, and each :data:`ENCODINGS` of it."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian's dcmtk and libgdcm-tools; .ci/run installs them)")
    work = tmp_path_factory.mktemp("codecs")
    film = sorted((sample_dir / REAL).glob("*.dcm"))[0]
    raw8 = work / "raw8.dcm"
    subprocess.run(["dcmdjpeg", str(film), str(raw8)], check=True, capture_output=True)
    ds = pydicom.dcmread(raw8)
    wide = ds.pixel_array.astype(np.uint16) * 16 + 7  # 12 bits stored, every value used
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = wide.astype("<u2").tobytes()
    ds.save_as(work / "raw12.dcm")
    files = {"raw8": raw8, "raw12": work / "raw12.dcm"}
    for name, (command, _, bits) in ENCODINGS.items():
        out = work / f"{name}.dcm"
        proc = subprocess.run([*command, str(files[f"raw{bits}"]), str(out)], capture_output=True, text=True)
        assert proc.returncode == 0 and out.is_file(), f"{command}: {proc.stderr[-500:]}"
        files[name] = out
    return files


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_each_compressed_syntax_decodes_to_the_original_pixels(recompressed: dict[str, Path], name: str):
    _, lossless, bits = ENCODINGS[name]
    original = decode_pixels(read_dicom(recompressed[f"raw{bits}"]))
    ds = read_dicom(recompressed[name])
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    decoded = decode_pixels(ds)
    assert decoded.shape == original.shape
    if lossless:
        assert np.array_equal(decoded, original), f"{name}: lossless syntax, other pixels"
    else:
        assert psnr(decoded, original, 2**bits - 1) > 40, name
    gray = dicom_to_uint8(ds)
    assert gray.dtype == np.uint8 and gray.shape == original.shape[:2]


def test_jpeg_baseline_still_goes_to_pillow(sample_dir: Path, monkeypatch):
    """The challenge's own films keep their fast path: pydicom's plugin dispatch is never asked."""
    import rsna_yolo.core.dicom as dicom

    def refuse(*args, **kwargs):
        raise AssertionError("JPEG Baseline went through pydicom's plugins")

    monkeypatch.setattr(dicom, "pixel_array", refuse)
    film = sorted((sample_dir / REAL).glob("*.dcm"))[0]
    assert dicom_to_uint8(read_dicom(film)).shape == (1024, 1024)


def _film(rows: int = 40, cols: int = 30) -> pydicom.Dataset:
    pixels = (np.arange(rows * cols) % 251).astype(np.uint8).reshape(rows, cols)
    return build_dicom(pixels, patient_id="p", transfer_syntax="explicit")


def _save(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_subsampled_colour_is_not_called_truncated(tmp_path: Path):
    """YBR_FULL_422 stores 2 bytes a pixel: 20 x 30 pixels are 1,200 bytes, not 1,800."""
    ds = _film(20, 30)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.PixelData = np.full(20 * 30 * 2, 128, np.uint8).tobytes()
    (tmp_path / "ybr.dcm").write_bytes(_save(ds))
    gray = dicom_to_uint8(read_dicom(tmp_path / "ybr.dcm"))
    assert gray.shape == (20, 30)
    ds.PixelData = ds.PixelData[:1000]  # really short: still the truncation it is
    (tmp_path / "short.dcm").write_bytes(_save(ds))
    with pytest.raises(DicomError, match=r"truncated pixel data \(1000 of 1200 bytes\)"):
        read_dicom(tmp_path / "short.dcm")


def test_a_multi_frame_object_is_refused_as_such(tmp_path: Path):
    ds = _film(10, 10)
    ds.NumberOfFrames = 2
    ds.PixelData = np.zeros(2 * 10 * 10, np.uint8).tobytes()
    (tmp_path / "cine.dcm").write_bytes(_save(ds))
    with pytest.raises(DicomError, match=r"multi-frame \(2 frames\): not a single radiograph"):
        read_dicom(tmp_path / "cine.dcm")


def test_files_without_preamble_are_read_saying_so(tmp_path: Path):
    ds = _film()
    whole = _save(ds)
    expected = dicom_to_uint8(pydicom.dcmread(io.BytesIO(whole)))
    (tmp_path / "no_preamble.dcm").write_bytes(whole[128:])  # 'DICM' and file meta, no 128-byte preamble
    bare = copy.deepcopy(ds)
    del bare.file_meta
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, bare, enforce_file_format=False, implicit_vr=False, little_endian=True)
    (tmp_path / "bare.dcm").write_bytes(buffer.getvalue())  # a dataset alone: no preamble, no file meta
    for name, note in (("no_preamble.dcm", "no 128-byte DICOM preamble"), ("bare.dcm", "no file meta")):
        read = read_dicom(tmp_path / name)
        assert np.array_equal(dicom_to_uint8(read), expected), name
        assert note in read_note(read), name
    assert read_note(read_dicom(tmp_path / "bare.dcm")).endswith(ExplicitVRLittleEndian.name)
    assert read_note(pydicom.dcmread(io.BytesIO(whole))) is None
    (tmp_path / "notes.txt").write_bytes(b"not a film at all\n" * 40)
    with pytest.raises(DicomError, match="not a DICOM file"):
        read_dicom(tmp_path / "notes.txt")
