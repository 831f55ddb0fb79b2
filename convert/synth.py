"""Realistic synthetic RSNA data: DICOMs and CSVs in the exact Kaggle layout.

Three layers, each usable alone:

- :func:`write_dicom` writes one DICOM with the tag set of the real challenge files (JPEG Baseline,
  MONOCHROME2, 8-bit, PatientAge as a bare number string, ...), or an uncompressed variant with other
  bit depths, MONOCHROME1 and rescale/VOI tags for the converter's edge cases.
- Sampling (:func:`sample_patients`): pure functions of a NumPy generator that pick each patient's
  class with the real class mix, a whole real patient's box set for Lung Opacity, age/sex/view and the
  boxless findings of Not Normal images, into a :class:`PatientSpec`.
- :func:`render_radiograph` draws a chest-radiograph-like image from a spec (pure), and
  :func:`generate` writes the whole Kaggle download (``python -m convert synth`` wraps it).
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
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
from tqdm import tqdm

from core.boxes import NATIVE_SIZE
from core.workers import die_with_parent

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
    """A dataset shaped like an RSNA challenge DICOM holding ``pixels``; see :func:`write_dicom`.

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


def write_dicom(
    path: str | Path,
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
) -> None:
    """Write ``pixels`` (2-D ``(rows, cols)``, any shape) as a DICOM like the RSNA challenge files.

    - ``transfer_syntax="jpeg"``: JPEG Baseline (1.2.840.10008.1.2.4.50), as every real file; ``pixels``
      must be uint8 (8 bits stored). Encoded with OpenCV (pydicom cannot encode JPEG) and encapsulated.
    - ``transfer_syntax="explicit"``: uncompressed Explicit VR Little Endian; uint8 or uint16 pixels with
      ``bits_stored`` up to 16 (default 8 for uint8, 16 otherwise), MONOCHROME1 allowed.

    ``age``, ``sex`` or ``view`` set to ``None`` leave the tag out (as a damaged header would).
    ``rescale_*`` and ``window_*`` add the Modality LUT / VOI LUT tags only when given.
    """
    ds = build_dicom(
        pixels,
        patient_id=patient_id,
        age=age,
        sex=sex,
        view=view,
        transfer_syntax=transfer_syntax,
        photometric=photometric,
        bits_stored=bits_stored,
        rescale_slope=rescale_slope,
        rescale_intercept=rescale_intercept,
        window_center=window_center,
        window_width=window_width,
        pixel_spacing=pixel_spacing,
    )
    ds.save_as(Path(path), enforce_file_format=True)


def read_pixels(path: str | Path) -> np.ndarray:
    """Read a DICOM's stored pixel values ``(rows, cols)`` with the Pillow decoder (as the converter does)."""
    ds = pydicom.dcmread(Path(path))
    ds.pixel_array_options(decoding_plugin="pillow")
    return ds.pixel_array


# --------------------------------------------------------------------------------------------------
# Sampling: who the patients are, what they have, where the boxes go (pure functions of an RNG)
# --------------------------------------------------------------------------------------------------

LUNG_OPACITY, NOT_NORMAL, NORMAL = "Lung Opacity", "No Lung Opacity / Not Normal", "Normal"
CLASSES = (LUNG_OPACITY, NOT_NORMAL, NORMAL)

CLASS_FRACTIONS = {LUNG_OPACITY: 6012 / 26684, NOT_NORMAL: 11821 / 26684, NORMAL: 8851 / 26684}
"""Patients per class in the real stage-2 training set (``stage_2_detailed_class_info.csv``)."""

AP_FRACTION = {LUNG_OPACITY: 0.75, NOT_NORMAL: 0.45, NORMAL: 0.29}
"""P(ViewPosition = AP | class): pneumonia patients are mostly imaged supine at the bedside (AP); overall
about 46% AP as in the real headers."""

MALE_FRACTION = 0.57
PIXEL_SPACINGS = (0.139, 0.143, 0.168, 0.171, 0.194311)
"""PixelSpacing values seen in the real headers (mm)."""
BOGUS_AGES = ("148", "150", "151", "153", "155")
"""The real headers hold a handful of impossible ages; a converter must not choke on them."""
BOGUS_AGE_RATE = 5 / 26684

FINDINGS = ("nodule", "lines", "pacemaker", "cardiomegaly", "ecg_leads")
"""Visible abnormalities without a box, drawn on Not Normal images (and lines/leads on some others)."""

BOX_SETS_FILE = Path(__file__).with_name("data") / "real_box_sets.csv"
"""Every real positive patient's box set from the stage-2 ``stage_2_train_labels.csv`` (6,012 patients,
9,555 boxes), anonymised: ``set,x,y,width,height`` (``xywh_px``, 1024-px frame, whole pixels), sets
numbered in the patientId order of the real file. Shipped so that the generator's output depends only on
its arguments and the repository (``--labels-csv`` reads another labels file explicitly)."""


@dataclass(frozen=True, eq=False)
class PatientSpec:
    """Everything about one synthetic patient; rendering it is a pure function of this record.

    ``boxes_xywh_px`` has shape ``(k, 4)`` in the 1024-px frame (``k = 0`` unless Lung Opacity).
    """

    patient_id: str
    cls: str
    boxes_xywh_px: np.ndarray
    age: str
    sex: str
    view: str
    pixel_spacing: float
    findings: tuple[str, ...]
    render_seed: int


def load_box_sets(labels_csv: str | Path | None = None) -> list[np.ndarray]:
    """Real box sets, one ``(k, 4)`` float64 ``xywh_px`` array per positive patient.

    Without ``labels_csv``: the sets shipped in :data:`BOX_SETS_FILE`. With it: the Target=1 rows of that
    Kaggle labels file (``patientId,x,y,width,height,Target``), one set per patient in patientId order, so
    the real stage-2 file gives exactly the shipped sets.
    """
    import pandas as pd

    if labels_csv is None:
        frame = pd.read_csv(BOX_SETS_FILE)
        boxes = frame[["x", "y", "width", "height"]].to_numpy(np.float64)
        _, starts = np.unique(frame["set"].to_numpy(), return_index=True)
        return np.split(boxes, starts[1:])
    path = Path(labels_csv)
    frame = pd.read_csv(path)
    missing = {"patientId", "x", "y", "width", "height", "Target"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    pos = frame[(frame["Target"] == 1)].dropna(subset=["x", "y", "width", "height"])
    pos = pos[(pos["width"] > 0) & (pos["height"] > 0)]
    if pos.empty:
        raise ValueError(f"{path}: no Target=1 row with a box")
    pos = pos.sort_values("patientId", kind="stable")
    boxes = pos[["x", "y", "width", "height"]].to_numpy(np.float64)
    # np.split at the first row of each patient: far faster than a pandas groupby over 6,000 groups.
    _, starts = np.unique(pos["patientId"].to_numpy(), return_index=True)
    return np.split(boxes, starts[1:])


def new_patient_id(rng: np.random.Generator) -> str:
    """A UUID4 string drawn from ``rng`` (reproducible, unlike :func:`uuid.uuid4`)."""
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def sample_classes(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` classes drawn with the real class fractions."""
    p = np.array([CLASS_FRACTIONS[c] for c in CLASSES])
    return [CLASSES[i] for i in rng.choice(len(CLASSES), size=n, p=p / p.sum())]


def sample_age(rng: np.random.Generator) -> str:
    """A PatientAge string: mostly adults (mean about 48), some children, rarely a bogus value like 150."""
    if rng.random() < BOGUS_AGE_RATE:
        return str(rng.choice(BOGUS_AGES))
    if rng.random() < 0.04:
        return str(int(rng.integers(1, 18)))
    return str(int(np.clip(round(rng.normal(50, 16)), 18, 92)))


def sample_findings(rng: np.random.Generator, cls: str) -> tuple[str, ...]:
    """Abnormalities without a box: one or two on Not Normal images, ICU lines on some Lung Opacity ones."""
    if cls == NOT_NORMAL:
        k = 1 if rng.random() < 0.7 else 2
        picked = rng.choice(len(FINDINGS), size=k, replace=False, p=[0.3, 0.25, 0.1, 0.2, 0.15])
        return tuple(FINDINGS[i] for i in sorted(picked))
    if cls == LUNG_OPACITY and rng.random() < 0.3:
        # Sick patients carry lines and leads too, so a detector cannot learn "tubes mean no opacity".
        return ("lines",) if rng.random() < 0.5 else ("ecg_leads",)
    return ()


def sample_patient(rng: np.random.Generator, cls: str, box_sets: list[np.ndarray]) -> PatientSpec:
    """One patient of class ``cls``; a Lung Opacity patient gets the whole box set of a random real one
    (so box counts, sizes, positions and left/right pairings follow the real data, never overlapping)."""
    patient_id = new_patient_id(rng)
    boxes = box_sets[rng.integers(len(box_sets))].copy() if cls == LUNG_OPACITY else np.zeros((0, 4))
    view = "AP" if rng.random() < AP_FRACTION[cls] else "PA"
    return PatientSpec(
        patient_id=patient_id,
        cls=cls,
        boxes_xywh_px=boxes,
        age=sample_age(rng),
        sex="M" if rng.random() < MALE_FRACTION else "F",
        view=view,
        pixel_spacing=float(rng.choice(PIXEL_SPACINGS)),
        findings=sample_findings(rng, cls),
        render_seed=int(rng.integers(2**63)),
    )


def sample_patients(rng: np.random.Generator, n: int, box_sets: list[np.ndarray]) -> list[PatientSpec]:
    """``n`` patients with the real class mix (see :func:`sample_patient`)."""
    return [sample_patient(rng, cls, box_sets) for cls in sample_classes(rng, n)]


# --------------------------------------------------------------------------------------------------
# Rendering: a chest radiograph drawn from a PatientSpec (pure: same spec -> same pixels)
# --------------------------------------------------------------------------------------------------

RENDER_SIZE = 256
"""Anatomy is drawn at this size and upscaled (fast); fine noise and markers are added at full size."""


def _smoothstep(edge0: float | np.ndarray, edge1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1``, a smooth cubic between (``edge0 > edge1`` flips it)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise ``(size, size)`` float32, about unit standard deviation, with ``cells`` blobs a side."""
    small = rng.standard_normal((cells, cells)).astype(np.float32)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return big / max(float(big.std()), 1e-6)


def _screen(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Brighten ``image`` (values 0..1) towards white by ``alpha`` (0..1): dark lung gains most, bone
    saturates least, as added tissue density does on a radiograph."""
    return 1.0 - (1.0 - image) * (1.0 - np.clip(alpha, 0.0, 1.0))


def _segment_distance(u: np.ndarray, v: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]):
    """Distance from each ``(u, v)`` to the segment ``p0``-``p1`` (same units)."""
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(u - (x0 + t * dx), v - (y0 + t * dy))


def _lung_mask(u: np.ndarray, v: np.ndarray, side: int, a: dict) -> np.ndarray:
    """Soft mask (0..1) of one lung field: narrow apex, wide base, diaphragm dome lower laterally.

    ``side`` is -1 for the image-left lung (the patient's right) and +1 for the image-right one.
    """
    centre = a["cx"] + side * a["lung_offset"]
    t = (v - a["lung_top"]) / (a["lung_bottom"] - a["lung_top"])  # 0 at the apex, 1 at the base
    half_width = a["lung_width"] * (0.15 + 0.85 * np.sqrt(np.clip(t, 0.0, 1.2)) ** 0.8)
    q = (u - centre) / np.maximum(half_width, 1e-3)  # -1..1 across the lung
    lateral = (q * side + 1.0) / 2.0  # 0 at the medial edge, 1 at the lateral edge
    bottom = a["lung_bottom"] - a["dome"] * (1.0 - lateral**2)
    return (
        _smoothstep(1.0, 0.8, np.abs(q))
        * _smoothstep(a["lung_top"], a["lung_top"] + 0.03, v)
        * _smoothstep(bottom, bottom - 0.04, v)
    )


def _anatomy(rng: np.random.Generator, spec: PatientSpec, cardiomegaly: bool) -> dict:
    """Per-image anatomy: position, size and density of body, lungs, heart (normalised 0..1 units)."""
    ap = spec.view == "AP"
    heart = rng.uniform(0.95, 1.1) * (1.1 if ap else 1.0)  # AP magnifies the heart
    enlarged = rng.uniform(1.35, 1.5)  # drawn always, so the finding changes nothing else
    if cardiomegaly:
        heart *= enlarged
    return {
        "cx": 0.5 + rng.normal(0, 0.012),
        "body_width": rng.uniform(0.40, 0.47),
        "lung_offset": rng.uniform(0.17, 0.2),
        "lung_width": rng.uniform(0.14, 0.165),
        "lung_top": rng.uniform(0.1, 0.16),
        "lung_bottom": rng.uniform(0.78, 0.86) - (0.03 if ap else 0.0),  # supine: poorer inspiration
        "dome": rng.uniform(0.05, 0.1),
        "heart_scale": heart,
        "lung_density": rng.uniform(0.5, 0.62),
        "rib_period": rng.uniform(0.065, 0.08),
        "rib_phase": rng.uniform(0, 1),
        "gamma": rng.uniform(0.8, 1.2),
        "brightness": rng.uniform(0.9, 1.05),
    }


def _draw_findings(
    rng: np.random.Generator, img: np.ndarray, u: np.ndarray, v: np.ndarray, spec: PatientSpec, a: dict
) -> None:
    """Draw the boxless abnormalities of ``spec.findings`` onto ``img`` (``(R, R)``, 0..1) in place.

    ``u``, ``v`` are the ``(R, R)`` column and row coordinates (0..1); ``a`` is the :func:`_anatomy`.
    """
    size = img.shape[0]

    def px(points: list[tuple[float, float]]) -> np.ndarray:
        """Normalised ``(x, y)`` points -> ``(n, 2)`` int32 pixel points for cv2 drawing."""
        return (np.array(points) * size).astype(np.int32)

    for finding in spec.findings:
        if finding == "nodule":
            side = rng.choice([-1, 1])
            cu = a["cx"] + side * (a["lung_offset"] + rng.uniform(-0.06, 0.06))
            cv = rng.uniform(0.3, 0.65)
            r = rng.uniform(0.01, 0.022)
            d = np.hypot(u - cu, v - cv)
            img[:] = _screen(img, 0.45 * _smoothstep(r, r * 0.7, d))  # small, sharp, round: not pneumonia
        elif finding in ("lines", "pacemaker"):
            canvas = np.zeros_like(img)
            if finding == "lines":
                cx = a["cx"] + rng.normal(0, 0.005)
                tip = rng.uniform(0.28, 0.36)
                cv2.polylines(canvas, [px([(cx, 0.0), (cx + 0.005, tip)])], False, 1.0, 2, cv2.LINE_AA)
                if rng.random() < 0.7:  # nasogastric tube down to the stomach
                    ng = [(cx - 0.01, 0.0), (cx - 0.005, 0.5), (cx + 0.03, 0.85), (cx + 0.12, 0.92)]
                    cv2.polylines(canvas, [px(ng)], False, 0.9, 1, cv2.LINE_AA)
                if rng.random() < 0.6:  # central line from a subclavian vein
                    s = rng.choice([-1, 1])
                    cl = [(cx + s * 0.3, 0.12), (cx + s * 0.12, 0.17), (cx + s * 0.03, 0.3)]
                    cv2.polylines(canvas, [px(cl)], False, 0.9, 1, cv2.LINE_AA)
            else:
                top = (a["cx"] - 0.28 + rng.normal(0, 0.02), rng.uniform(0.12, 0.2))
                box = px([top, (top[0] + 0.09, top[1] + 0.06)])
                cv2.rectangle(canvas, tuple(box[0]), tuple(box[1]), 1.0, -1, cv2.LINE_AA)
                lead = [(top[0] + 0.08, top[1] + 0.05), (a["cx"] - 0.02, 0.35), (a["cx"] + 0.06, 0.6)]
                cv2.polylines(canvas, [px(lead)], False, 1.0, 1, cv2.LINE_AA)
            img[:] = np.maximum(img, canvas * 0.95)
        elif finding == "ecg_leads":
            for _ in range(int(rng.integers(3, 6))):
                cu, cv = rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.7)
                d = np.hypot(u - cu, v - cv)
                ring = _smoothstep(0.006, 0.003, np.abs(d - 0.017)) + _smoothstep(0.007, 0.004, d)
                img[:] = _screen(img, 0.6 * np.clip(ring, 0, 1))
        # cardiomegaly is drawn by _anatomy (a larger heart)


def render_radiograph(
    spec: PatientSpec, imgsz: int = 1024, *, with_boxes: bool = True, with_findings: bool = True
) -> np.ndarray:
    """A chest-radiograph-like uint8 image ``(imgsz, imgsz)``, MONOCHROME2 (bright = dense).

    Body, two darker lung fields with vessel texture and ribs, mediastinum, spine, heart, clavicles;
    a patchy, blurry opacity filling most of each box of ``spec.boxes_xywh_px`` (1024-px frame, scaled to
    ``imgsz``); Not Normal findings. ``with_boxes=False`` / ``with_findings=False`` render the same image
    without the opacities / findings (each has its own random stream), to measure what they add.
    """
    rng = np.random.default_rng(spec.render_seed)
    opacity_rng = np.random.default_rng([spec.render_seed, 1])
    findings_rng = np.random.default_rng([spec.render_seed, 2])
    a = _anatomy(rng, spec, cardiomegaly=with_findings and "cardiomegaly" in spec.findings)
    size = min(RENDER_SIZE, imgsz)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    u, v = np.meshgrid(grid, grid)  # u: column (x), v: row (y), both 0..1
    cx = a["cx"]

    # Body: a trunk that narrows to the neck between sloping shoulders; darker where it is thinner at
    # the edges.
    shoulders = 0.06 * np.exp(-(((v - 0.2) / 0.09) ** 2))
    width = a["body_width"] * (0.3 + 0.7 * _smoothstep(0.0, 0.2, v)) + shoulders
    bu = np.abs(u - cx) / width
    body = _smoothstep(1.0, 0.93, bu)
    thickness = 0.35 + 0.65 * np.sqrt(np.clip(1.0 - bu**2, 0.0, 1.0))
    img = 0.06 + body * (0.52 * thickness + 0.04 * _noise(rng, size, 6))

    # Lungs: air makes them dark; vessels radiate from each hilum and fade towards the periphery.
    lungs = np.zeros_like(img)
    for side in (-1, 1):
        m = _lung_mask(u, v, side, a)
        hilum = (cx + side * 0.09, 0.45)
        r = np.hypot(u - hilum[0], v - hilum[1])
        ang = np.arctan2(v - hilum[1], u - hilum[0])
        # Branching vessels, approximated by wavy radial streaks (few enough not to alias at 256 px).
        streaks = np.abs(np.sin(ang * rng.uniform(9, 13) + 1.5 * _noise(rng, size, 7)))
        vessels = (1.0 - streaks) ** 4 * np.exp(-r / 0.2) * (0.6 + 0.4 * _noise(rng, size, 16).clip(-1, 1))
        vessels *= _smoothstep(0.03, 0.12, r)  # no visible star where the streaks meet
        dark = a["lung_density"] * (0.75 + 0.25 * _smoothstep(0.05, 0.3, r)) - 0.25 * vessels
        lungs = np.maximum(lungs, m * dark)
    lungs = lungs * (1.0 + 0.08 * _noise(rng, size, 24))
    img = img * (1.0 - lungs)

    # Heart and mediastinum (dense soft tissue), spine with vertebral bodies.
    hs = a["heart_scale"]
    hu, hv = u - cx - 0.05 * hs, v - 0.66
    # An ellipse tilted so the apex points down towards the patient's left (image right).
    heart = ((0.9 * hu + 0.3 * hv) / (0.135 * hs)) ** 2 + ((0.9 * hv - 0.3 * hu) / (0.105 * hs)) ** 2
    mediastinum = _smoothstep(1.0, 0.7, np.abs(u - cx) / (0.055 + 0.03 * _smoothstep(0.2, 0.5, v)))
    soft = np.maximum(_smoothstep(1.1, 0.7, heart), mediastinum * _smoothstep(0.02, 0.12, v))
    img = img + (0.62 - img) * soft * 0.95
    vertebrae = 0.5 + 0.5 * np.cos(2 * np.pi * v / 0.052)
    spine = _smoothstep(0.03, 0.018, np.abs(u - cx)) * (0.7 + 0.3 * vertebrae**0.5)
    img = _screen(img, 0.25 * spine * body)

    # Ribs: curved bands, most visible over the lungs; clavicles across the apices.
    lat = np.abs(u - cx)
    # Posterior ribs arch up from the spine and fall laterally; their spacing widens down the chest.
    arch = v - 1.8 * (lat - 0.07) ** 2 + 0.05 * v**2
    phase = arch / a["rib_period"] + a["rib_phase"] + 0.6 * _noise(rng, size, 4) * 0.1
    band = np.cos(2 * np.pi * phase)
    rib = _smoothstep(0.15, 0.55, band) * _smoothstep(a["lung_bottom"] + 0.02, a["lung_bottom"] - 0.05, v)
    img = _screen(img, rib * body * (0.02 + 0.16 * lungs) * _smoothstep(0.02, 0.06, lat))
    for side in (-1, 1):
        d = _segment_distance(u, v, (cx + side * 0.05, 0.19), (cx + side * 0.3, 0.13))
        img = _screen(img, 0.22 * _smoothstep(0.018, 0.008, d) * body)

    # Opacities: patchy, blurry, irregular consolidation filling most of each box.
    if with_boxes:
        for x, y, w, h in spec.boxes_xywh_px / NATIVE_SIZE:
            cu, cv, ru, rv = x + w / 2, y + h / 2, w / 2, h / 2
            rr = ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2
            # Irregular but box-filling extent: a detector is scored on IoU with the box.
            edge = rr + 0.2 * _noise(opacity_rng, size, 10)
            fill = _smoothstep(1.15, 0.5, edge)
            texture = 0.8 + 0.2 * np.clip(_noise(opacity_rng, size, 24), -1.5, 1.5) / 1.5
            img = _screen(img, opacity_rng.uniform(0.45, 0.6) * fill * texture)

    if with_findings:
        _draw_findings(findings_rng, img, u, v, spec, a)
    img = np.clip(img * a["brightness"], 0.0, 1.0) ** a["gamma"]

    if size != imgsz:
        img = cv2.resize(img, (imgsz, imgsz), interpolation=cv2.INTER_LINEAR)
    # Fine quantum noise at full size (a smooth upscale alone looks synthetic).
    img = img * 255.0 + rng.standard_normal(img.shape, dtype=np.float32) * 3.0
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.8:  # the side marker technologists put on the film
        text = ("AP PORTABLE" if spec.view == "AP" else "PA") if rng.random() < 0.5 else "L"
        scale = imgsz / 1024
        org = (int((0.78 if text == "L" else 0.05) * imgsz), int(0.07 * imgsz))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 1.4 * scale, 230, max(1, int(3 * scale)))
    return out


# --------------------------------------------------------------------------------------------------
# The Kaggle layout on disk
# --------------------------------------------------------------------------------------------------

TRAIN_IMAGES, TEST_IMAGES = "stage_2_train_images", "stage_2_test_images"
LABELS_CSV, CLASS_CSV, SUBMISSION_CSV = (
    "stage_2_train_labels.csv",
    "stage_2_detailed_class_info.csv",
    "stage_2_sample_submission.csv",
)
SAMPLE_PREDICTION = "0.5 0 0 100 100"
"""The placeholder PredictionString of every row of Kaggle's sample submission."""


def format_coord(value: float) -> str:
    """A box coordinate as the real labels file writes it: ``264.0``, or ``53.25`` when scaled."""
    return repr(float(value))


def labels_csv_text(specs: list[PatientSpec], imgsz: int = NATIVE_SIZE) -> tuple[str, str]:
    """The texts of ``stage_2_train_labels.csv`` and ``stage_2_detailed_class_info.csv``.

    Like the real files: sorted by patientId, one row per box (one empty-box row per negative patient),
    the two files row-aligned; boxes scaled from the 1024-px frame to ``imgsz``.
    """
    labels = ["patientId,x,y,width,height,Target"]
    classes = ["patientId,class"]
    scale = imgsz / NATIVE_SIZE
    for spec in sorted(specs, key=lambda s: s.patient_id):
        rows = spec.boxes_xywh_px * scale
        if len(rows) == 0:
            labels.append(f"{spec.patient_id},,,,,0")
            classes.append(f"{spec.patient_id},{spec.cls}")
        for box in rows:
            labels.append(",".join([spec.patient_id, *(format_coord(v) for v in box), "1"]))
            classes.append(f"{spec.patient_id},{spec.cls}")
    return "\n".join(labels) + "\n", "\n".join(classes) + "\n"


def submission_csv_text(specs: list[PatientSpec]) -> str:
    """The text of ``stage_2_sample_submission.csv``: every test patient with the placeholder prediction."""
    rows = [f"{s.patient_id},{SAMPLE_PREDICTION}" for s in sorted(specs, key=lambda s: s.patient_id)]
    return "\n".join(["patientId,PredictionString", *rows]) + "\n"


def write_patient(spec: PatientSpec, folder: Path, imgsz: int) -> Path:
    """Render ``spec`` and write ``folder/<patientId>.dcm`` (JPEG Baseline, like the real files)."""
    path = folder / f"{spec.patient_id}.dcm"
    write_dicom(
        path,
        render_radiograph(spec, imgsz),
        patient_id=spec.patient_id,
        age=spec.age,
        sex=spec.sex,
        view=spec.view,
        pixel_spacing=(spec.pixel_spacing * NATIVE_SIZE / imgsz,) * 2,
    )
    return path


def _write_job(job: tuple[PatientSpec, Path, int]) -> str:
    spec, folder, imgsz = job
    return str(write_patient(spec, folder, imgsz))


def box_source(labels_csv: str | Path | None = None) -> str:
    """Where :func:`load_box_sets` takes its box sets from: the CSV given, or ``"shipped"``."""
    return "shipped" if labels_csv is None else str(labels_csv)


def _readme(seed: int, patients: int, test_patients: int, imgsz: int, summary: dict) -> str:
    counts = ", ".join(f"{n} {cls}" for cls, n in summary["classes"].items())
    source = summary["box_source"]
    if source == "shipped":
        source = "the 6,012 real box sets shipped in convert/data/real_box_sets.csv"
    return f"""# Synthetic RSNA Pneumonia Detection Challenge data

SYNTHETIC, not patient data: written by `python -m convert synth` of rsna-yolo to exercise the pipeline
without the Kaggle download. Same layout, file names, CSV formats and DICOM tags as the real challenge
files; the images are drawn chest radiographs, and each labelled box holds a drawn opacity.

Arguments: `--patients {patients} --test-patients {test_patients} --seed {seed} --imgsz {imgsz}`
(box sets drawn from {source}).
The same arguments give byte-identical files.

- `{TRAIN_IMAGES}/`: {patients} DICOMs ({counts}; {summary["train_boxes"]} boxes)
- `{TEST_IMAGES}/`: {test_patients} DICOMs, same class mix, no labels
- `{LABELS_CSV}`, `{CLASS_CSV}`, `{SUBMISSION_CSV}`
"""


def generate(
    out: str | Path,
    patients: int,
    test_patients: int,
    seed: int,
    labels_csv: str | Path | None = None,
    imgsz: int = NATIVE_SIZE,
    *,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Write a synthetic challenge download into ``out`` and return a summary.

    Layout: ``stage_2_train_images/<patientId>.dcm``, ``stage_2_test_images/<patientId>.dcm``,
    ``stage_2_train_labels.csv``, ``stage_2_detailed_class_info.csv``, ``stage_2_sample_submission.csv``
    and a ``README.md`` saying it is synthetic. Deterministic: the same arguments give the same bytes
    (``workers`` does not change them). Box sets come from ``labels_csv`` (see :func:`load_box_sets`).

    Refuses (``FileExistsError``) to mix with DICOMs already in ``out`` unless ``overwrite``, which
    deletes only the files this function writes.
    """
    out = Path(out)
    if patients < 0 or test_patients < 0:
        raise ValueError("patients and test_patients must be >= 0")
    if imgsz < 64:
        raise ValueError(f"imgsz must be at least 64, got {imgsz}")
    folders = {"train": out / TRAIN_IMAGES, "test": out / TEST_IMAGES}
    stale = [p for f in folders.values() if f.is_dir() for p in f.glob("*.dcm")]
    if stale and not overwrite:
        raise FileExistsError(
            f"{out} already holds {len(stale)} DICOM(s); choose an empty folder or overwrite"
        )
    for p in stale:
        p.unlink()
    for f in folders.values():
        f.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    box_sets = load_box_sets(labels_csv)
    train = sample_patients(rng, patients, box_sets)
    test = sample_patients(rng, test_patients, box_sets)

    labels_text, classes_text = labels_csv_text(train, imgsz)
    for name, text in [
        (LABELS_CSV, labels_text),
        (CLASS_CSV, classes_text),
        (SUBMISSION_CSV, submission_csv_text(test)),
    ]:
        with open(out / name, "w", newline="\n") as fh:
            fh.write(text)

    jobs = [(s, folders["train"], imgsz) for s in train] + [(s, folders["test"], imgsz) for s in test]
    bar = tqdm(total=len(jobs), desc="synth", unit="img", disable=not progress)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            for _ in pool.map(_write_job, jobs, chunksize=8):
                bar.update()
    else:
        for job in jobs:
            _write_job(job)
            bar.update()
    bar.close()

    summary = {
        "out": str(out),
        "seed": seed,
        "imgsz": imgsz,
        "train_patients": len(train),
        "test_patients": len(test),
        "classes": {cls: sum(s.cls == cls for s in train) for cls in CLASSES},
        "train_boxes": int(sum(len(s.boxes_xywh_px) for s in train)),
        "box_source": box_source(labels_csv),
    }
    (out / "README.md").write_text(_readme(seed, patients, test_patients, imgsz, summary))
    return summary
