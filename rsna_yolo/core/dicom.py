"""Reading challenge DICOMs: headers, and pixels as an 8-bit grayscale image.

Three pure-ish steps, each usable alone:

- :func:`read_dicom` reads a file (headers only, or with pixel data) and turns every way a file can be
  broken into one :class:`DicomError`;
- :func:`dicom_to_uint8` decodes the pixels with an explicitly chosen decoder and maps them to a display
  image ``(rows, cols)`` uint8 (Modality LUT / rescale, VOI window, MONOCHROME1 inversion);
- :func:`header_metadata` pulls the header values the manifest records, never guessing a missing one.

The RSNA files are JPEG Baseline, 1024 x 1024, MONOCHROME2, 8-bit. For them the decoded array is returned
untouched, byte-identical to ``ds.pixel_array``. JPEG Baseline is decoded with Pillow directly on the
encapsulated frame: Pillow is the fastest decoder installed (see ../shared/FACTS.md: pydicom would try
GDCM or pylibjpeg first when present, both slower) and calling it directly skips pydicom's per-call
plugin dispatch. Everything else goes through pydicom with its own decoder for uncompressed data, or
Pillow where it can.
"""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, pixel_array
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    UncompressedTransferSyntaxes,
)

UINT8_MAX = 255
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class DicomError(ValueError):
    """A file that cannot be used as an image: not DICOM, truncated, no pixel data, undecodable."""


NOTE = "rsna_yolo_note"
"""The attribute :func:`read_dicom` sets on a dataset it could read only by working around its file: a
file without the 128-byte preamble, or a bare dataset without file meta information (:func:`read_note`)."""


def read_note(ds: Dataset) -> str | None:
    """What :func:`read_dicom` had to work around to read ``ds`` (None for a well-formed file)."""
    return getattr(ds, NOTE, None)


def _read_lenient(path: Path, headers_only: bool) -> Dataset:
    """A file pydicom refuses as not DICOM, read where it can be: ``DICM`` and file meta without the
    128-byte preamble (read as if the preamble were there), or a bare dataset (read with ``force``); a file
    that is neither raises :class:`InvalidDicomError` as before."""
    data = path.read_bytes()
    if data[:4] == b"DICM":
        ds = pydicom.dcmread(io.BytesIO(bytes(128) + data), stop_before_pixels=headers_only)
        setattr(ds, NOTE, "no 128-byte DICOM preamble: read from its DICM prefix")
        return ds
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=headers_only, force=True)
    if len(ds) == 0 or not any(keyword in ds for keyword in ("SOPClassUID", "Rows", "PixelData")):
        raise InvalidDicomError("no DICOM preamble, file meta or image elements")
    return ds


def _fill_transfer_syntax(ds: Dataset, path: Path) -> None:
    """A dataset without file meta (a bare dataset): its transfer syntax from how it was encoded, noted.
    Encapsulated (compressed) pixel data cannot be decoded without knowing its syntax: an error."""
    if ds.file_meta.get("TransferSyntaxUID") is not None:
        return
    implicit, little = ds.original_encoding
    if "PixelData" in ds and ds["PixelData"].is_undefined_length:
        raise DicomError(f"{path}: compressed pixel data but no transfer syntax (no file meta information)")
    syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    ds.file_meta.TransferSyntaxUID = syntax
    setattr(ds, NOTE, f"no file meta information: read as {syntax.name}")


def read_dicom(path: str | Path, *, headers_only: bool = False) -> Dataset:
    """Read the DICOM at ``path``; with ``headers_only`` stop before the pixel data (about 15x faster).

    Raises :class:`DicomError` naming the file for anything that is not a readable image DICOM: a
    missing/unreadable file, a non-DICOM file, a truncated one, or (without ``headers_only``) one with no
    pixel data or no Rows/Columns.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            # RSNA's PatientAge is a bare number ("51"), not a valid AS value: pydicom warns on every
            # file. Warnings are recorded, not shown; a truncated file announces itself through one.
            warnings.simplefilter("always")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=headers_only)
            except InvalidDicomError:
                ds = _read_lenient(path, headers_only)
            truncated = any("end of file" in str(w.message).lower() for w in caught)
            if not headers_only:
                _fill_transfer_syntax(ds, path)
                if "PixelData" not in ds:
                    what = "truncated DICOM (pixel data incomplete)" if truncated else "no pixel data"
                    raise DicomError(f"{path}: {what}")
                if "Rows" not in ds or "Columns" not in ds:
                    raise DicomError(f"{path}: DICOM has no Rows/Columns")
                frames = int(ds.get("NumberOfFrames", 1) or 1)
                if frames > 1:
                    raise DicomError(f"{path}: multi-frame ({frames} frames): not a single radiograph")
                # Touch the value: a truncated file reads its last element lazily or short.
                _check_pixel_length(ds, path)
    except DicomError:
        raise
    except InvalidDicomError as exc:
        raise DicomError(f"{path}: not a DICOM file ({exc})") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DicomError(f"{path}: unreadable or truncated DICOM ({type(exc).__name__}: {exc})") from exc
    return ds


def _check_pixel_length(ds: Dataset, path: Path) -> None:
    """Raise :class:`DicomError` when uncompressed pixel data is shorter than the header promises (the
    length as pydicom computes it: subsampled colour, ``YBR_FULL_422``, holds 2 bytes a pixel, not 3)."""
    if ds.file_meta.get("TransferSyntaxUID") not in UncompressedTransferSyntaxes:
        return  # compressed: a truncated stream shows up when decoding
    expected = int(get_expected_length(ds, unit="bytes"))
    if len(ds.PixelData) < expected:
        raise DicomError(f"{path}: truncated pixel data ({len(ds.PixelData)} of {expected} bytes)")


def decode_pixels(ds: Dataset) -> np.ndarray:
    """Stored pixel values ``(rows, cols)`` (or ``(rows, cols, 3)`` for colour) with the chosen decoder.

    JPEG Baseline -> Pillow on the raw frame; other compressed syntaxes -> pydicom with Pillow preferred;
    uncompressed -> pydicom's own reader.
    """
    syntax = ds.file_meta.get("TransferSyntaxUID")
    try:
        if syntax == JPEGBaseline8Bit and int(ds.get("NumberOfFrames", 1) or 1) == 1:
            frame = next(generate_frames(ds.PixelData, number_of_frames=1))
            with Image.open(io.BytesIO(frame)) as img:
                arr = np.asarray(img)
        elif syntax in UncompressedTransferSyntaxes:
            arr = ds.pixel_array
        else:
            try:
                arr = pixel_array(ds, decoding_plugin="pillow")
            except (ValueError, RuntimeError, NotImplementedError):
                arr = ds.pixel_array  # a syntax Pillow does not handle: pydicom's own choice
    except DicomError:
        raise
    except Exception as exc:  # decoders raise anything (OSError, SyntaxError, ...); all mean "corrupt"
        # Drop object addresses ("<_io.BytesIO object at 0x7f...>") so reports are reproducible.
        detail = _ADDRESS.sub("", f"{type(exc).__name__}: {exc}")
        raise DicomError(f"cannot decode pixel data ({detail})") from exc
    rows, cols = int(ds.Rows), int(ds.Columns)
    if arr.shape[:2] != (rows, cols):
        raise DicomError(f"decoded image is {arr.shape[:2]}, header says {(rows, cols)}")
    return arr


def _number(value, default: float | None = None) -> float | None:
    """First value of a DS/IS element (single or multi-valued) as float, or ``default``."""
    if value is None or value == "":
        return default
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        if len(value) == 0:
            return default
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM linear VOI window (PS3.3 C.11.2.1.2.1) of ``values`` ``(H, W)`` onto 0..255, as uint8.

    Values at or below ``center - 0.5 - (width - 1) / 2`` map to 0, above ``center - 0.5 + (width - 1) / 2``
    to 255, linearly in between, rounded to the nearest integer.

    >>> window_to_uint8(np.array([[0.0, 50.0, 101.0]]), center=50.5, width=101.0).tolist()
    [[0, 128, 255]]
    """
    width = max(float(width), 1.0)
    x = np.asarray(values, dtype=np.float64)
    y = ((x - (center - 0.5)) / (width - 1.0) + 0.5) * UINT8_MAX if width > 1 else (x > center - 0.5) * 255.0
    return np.rint(np.clip(y, 0, UINT8_MAX)).astype(np.uint8)


def minmax_to_uint8(values: np.ndarray) -> np.ndarray:
    """Stretch ``values`` ``(H, W)`` linearly so the minimum is 0 and the maximum 255 (constant -> 0).

    >>> minmax_to_uint8(np.array([[100, 150, 200]])).tolist()
    [[0, 128, 255]]
    """
    x = np.asarray(values, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.uint8)
    return np.rint((x - lo) * UINT8_MAX / (hi - lo)).astype(np.uint8)


def to_grayscale_uint8(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """Map stored pixel values ``(rows, cols)`` to a display image ``(rows, cols)`` uint8 using ``ds``.

    1. Modality LUT / RescaleSlope+Intercept (when present);
    2. VOI: the header's first WindowCenter/WindowWidth (or VOI LUT sequence) when present; otherwise
       values already in 0..255 with at most 8 bits stored are kept, anything else is min-max stretched;
    3. MONOCHROME1 (0 = white) is inverted so that, as in MONOCHROME2, bright means dense.

    A plain 8-bit MONOCHROME2 image with no rescale and no window comes back as the same bytes.
    """
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if stored.ndim == 3:
        if stored.shape[2] != 3:
            raise DicomError(f"unsupported pixel array shape {stored.shape} (multi-frame?)")
        # pydicom/Pillow already give RGB for colour files; luminance keeps the grayscale contract.
        import cv2

        stored = cv2.cvtColor(np.ascontiguousarray(stored.astype(np.uint8)), cv2.COLOR_RGB2GRAY)
        photometric = "MONOCHROME2"
    elif stored.ndim != 2:
        raise DicomError(f"unsupported pixel array shape {stored.shape}")
    elif photometric not in {"MONOCHROME1", "MONOCHROME2"}:
        raise DicomError(f"unsupported PhotometricInterpretation {photometric!r}")

    slope = _number(ds.get("RescaleSlope"), 1.0)
    intercept = _number(ds.get("RescaleIntercept"), 0.0)
    center = _number(ds.get("WindowCenter"))
    width = _number(ds.get("WindowWidth"))
    has_modality_lut = "ModalityLUTSequence" in ds or slope != 1.0 or intercept != 0.0
    has_voi_lut = "VOILUTSequence" in ds and center is None
    bits_stored = int(ds.get("BitsStored", 8 * stored.dtype.itemsize))

    if stored.dtype == np.uint8 and not has_modality_lut and center is None and not has_voi_lut:
        out = stored  # the RSNA case: already display values
    else:
        values = apply_modality_lut(stored, ds) if has_modality_lut else stored
        if center is not None and width is not None and width > 0:
            out = window_to_uint8(values, center, width)
        elif has_voi_lut:
            from pydicom.pixels import apply_voi_lut

            out = minmax_to_uint8(apply_voi_lut(values, ds))
        elif bits_stored <= 8 and not has_modality_lut and values.min() >= 0 and values.max() <= UINT8_MAX:
            out = values.astype(np.uint8)
        else:
            out = minmax_to_uint8(values)
    if photometric == "MONOCHROME1":
        out = UINT8_MAX - out  # uint8 - uint8 array stays uint8
    return np.ascontiguousarray(out, dtype=np.uint8)


def dicom_to_uint8(ds: Dataset) -> np.ndarray:
    """Decode ``ds`` (read with pixel data) to a display image ``(rows, cols)`` uint8.

    Raises :class:`DicomError` for pixel data that cannot be decoded. See :func:`to_grayscale_uint8`
    for the intensity mapping.
    """
    if "PixelData" not in ds:
        raise DicomError("DICOM has no pixel data")
    return to_grayscale_uint8(decode_pixels(ds), ds)


_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"": 1.0, "Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


def parse_age(value) -> int | None:
    """Patient age in whole years from a DICOM AS value; RSNA's bare number string counts as years.

    >>> [parse_age(v) for v in ("51", "051Y", "018M", "", None, "abc")]
    [51, 51, 1, None, None, None]
    """
    if value is None:
        return None
    match = _AGE.match(str(value))
    if not match:
        return None
    return int(int(match.group(1)) * _AGE_UNIT_YEARS[match.group(2).upper()])


def _text(ds: Dataset, keyword: str) -> str | None:
    """A header string stripped, or None when the tag is missing or empty."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = ds.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def header_metadata(ds: Dataset) -> dict:
    """The header values the manifest records; a missing value is ``None``, never guessed.

    Returns ``{"PatientAge": int | None, "PatientSex": str | None, "ViewPosition": str | None,
    "rows": int, "cols": int}``.
    """
    return {
        "PatientAge": parse_age(_text(ds, "PatientAge")),
        "PatientSex": _text(ds, "PatientSex"),
        "ViewPosition": _text(ds, "ViewPosition"),
        "rows": int(ds.Rows) if "Rows" in ds else None,
        "cols": int(ds.Columns) if "Columns" in ds else None,
    }
