"""Synthetic DICOMs shaped like the RSNA challenge files (``convert synth`` and the tests write them).

:func:`write_dicom` writes one DICOM with the tag set of the real challenge files (JPEG Baseline,
MONOCHROME2, 8-bit, PatientAge as a bare number string, ...), or an uncompressed variant with other bit
depths, MONOCHROME1 and rescale/VOI tags for the converter's edge cases.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom import config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from rsna_yolo.core.io import write_atomic

TRANSFER_SYNTAXES = {"jpeg": JPEGBaseline8Bit, "explicit": ExplicitVRLittleEndian}
"""``write_dicom(transfer_syntax=...)`` names -> transfer syntax UIDs."""

JPEG_QUALITY = 92
"""Reproduces the luminance quantisation table of the real files (IJG quality 92)."""


def _ds_number(value: float) -> str:
    """A DS string (at most 16 characters) for ``value``."""
    text = f"{value:.10g}"
    if len(text) > 16:
        text = f"{value:.6g}"
    return text


def build_dicom(
    pixels: np.ndarray,
    *,
    patient_id: str,
    age: str | None = "51",
    sex: str | None = "M",
    view: str | None = "PA",
    transfer_syntax: str = "jpeg",
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    rescale_slope: float | None = None,
    rescale_intercept: float | None = None,
    window_center: float | None = None,
    window_width: float | None = None,
    pixel_spacing: tuple[float, float] = (0.168, 0.168),
) -> Dataset:
    """A dataset shaped like an RSNA challenge DICOM holding ``pixels`` (what :func:`write_dicom` saves).

    UIDs derive from ``patient_id`` alone, so the same arguments always give the same bytes.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"pixels must be a non-empty 2-D array, got shape {pixels.shape}")
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(f"transfer_syntax must be 'jpeg' or 'explicit', got {transfer_syntax!r}")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    if bits_stored is None:
        bits_stored = 8 if pixels.dtype == np.uint8 else 16
    if not 1 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be in 1..16, got {bits_stored}")
    bits_allocated = 8 if bits_stored <= 8 else 16
    dtype = np.uint8 if bits_allocated == 8 else np.uint16
    if pixels.dtype.kind not in "ui" or pixels.min() < 0 or int(pixels.max()) >= 2**bits_stored:
        raise ValueError(f"pixels ({pixels.dtype}, max {pixels.max()}) do not fit {bits_stored} bits")
    pixels = pixels.astype(dtype, copy=False)
    if transfer_syntax == "jpeg" and bits_allocated != 8:
        raise ValueError("JPEG Baseline holds 8-bit pixels only; use transfer_syntax='explicit'")

    uid = TRANSFER_SYNTAXES[transfer_syntax]
    sop_uid = generate_uid(entropy_srcs=[patient_id, "sop"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = uid

    ds = Dataset()
    ds.file_meta = meta
    # The real files' tags, in their order (pydicom sorts by tag when writing anyway).
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "19010101"
    ds.StudyTime = "000000.00"
    ds.AccessionNumber = ""
    ds.Modality = "CR"
    ds.ConversionType = "WSD"
    ds.ReferringPhysicianName = ""
    if view is not None:
        ds.SeriesDescription = f"view: {view}"
    ds.PatientName = patient_id
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    if sex is not None:
        ds.PatientSex = sex
    if age is not None:
        # A bare number string such as "51", as in the real files; pydicom warns that it is not a valid
        # AS value ("051Y"), which is the point.
        with config.disable_value_validation():
            ds.PatientAge = str(age)
    ds.BodyPartExamined = "CHEST"
    if view is not None:
        ds.ViewPosition = view
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[patient_id, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[patient_id, "series"])
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = [_ds_number(s) for s in pixel_spacing]
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if window_center is not None:
        ds.WindowCenter = _ds_number(window_center)
    if window_width is not None:
        ds.WindowWidth = _ds_number(window_width)
    if rescale_intercept is not None:
        ds.RescaleIntercept = _ds_number(rescale_intercept)
    if rescale_slope is not None:
        ds.RescaleSlope = _ds_number(rescale_slope)

    if transfer_syntax == "jpeg":
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(pixels), params)
        if not ok:
            raise RuntimeError("cv2.imencode('.jpg') failed")
        ds.PixelData = encapsulate([jpeg.tobytes()])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
        ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
    return ds


def write_dicom(path: str | Path, pixels: np.ndarray, **tags) -> None:
    """Write ``pixels`` (2-D ``(rows, cols)``, any shape) as a DICOM like the RSNA challenge files.

    ``tags`` are :func:`build_dicom`'s keyword arguments (``patient_id`` is required):

    - ``transfer_syntax="jpeg"``: JPEG Baseline (1.2.840.10008.1.2.4.50), as every real file; ``pixels``
      must be uint8 (8 bits stored). Encoded with OpenCV (pydicom cannot encode JPEG) and encapsulated.
    - ``transfer_syntax="explicit"``: uncompressed Explicit VR Little Endian; uint8 or uint16 pixels with
      ``bits_stored`` up to 16 (default 8 for uint8, 16 otherwise), MONOCHROME1 allowed.

    ``age``, ``sex`` or ``view`` set to ``None`` leave the tag out (as a damaged header would).
    ``rescale_*`` and ``window_*`` add the Modality LUT / VOI LUT tags only when given.
    """
    buffer = io.BytesIO()
    build_dicom(pixels, **tags).save_as(buffer, enforce_file_format=True)
    write_atomic(Path(path), buffer.getvalue())  # a killed run leaves no half DICOM behind


def read_pixels(path: str | Path) -> np.ndarray:
    """Read a DICOM's stored pixel values ``(rows, cols)`` with the Pillow decoder (as the converter does)."""
    ds = pydicom.dcmread(Path(path))
    ds.pixel_array_options(decoding_plugin="pillow")
    return ds.pixel_array
