"""Answers a radiology viewer opens: each film's boxes as a DICOM Grayscale Softcopy Presentation State.

A presentation state (GSPS, PS3.3 A.33.1) is a small DICOM object that references a film by its study,
series and SOP instance UIDs and tells a viewer how to show it, here with graphic annotations: each kept
box as a closed rectangle (a polyline of 5 points) in the film's own pixel coordinates, and its confidence
as text at the box's top-left corner, on a layer named ``RSNA_YOLO``. The film itself is not copied or
changed: load the film and its ``*_pr.dcm`` together in a viewer that supports presentation states
(docs/predicting.md names free ones). Written with ``highdicom``.

DICOM's ``PIXEL`` units put (0, 0) at the top-left corner of the top-left pixel, the convention of the
boxes in ``predictions.csv`` (``xywh_px``, source pixels): the numbers are the same.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

LAYER = "RSNA_YOLO"
PR_SUFFIX = "_pr.dcm"
UID_ROOT = "2.25."


def _uid(*parts: str) -> str:
    """A UID derived from ``parts`` (2.25 + a 128-bit hash): the same film and setting give the same UIDs,
    so writing the answers again replaces them instead of adding a copy."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()[:16]
    return UID_ROOT + str(int.from_bytes(digest, "big"))


def rectangle(box_xywh: Sequence[float]) -> np.ndarray:
    """The closed polyline of a box ``(x, y, w, h)``: 5 points ``(column, row)``, the first repeated last.

    >>> rectangle([10, 20, 30, 40]).tolist()
    [[10.0, 20.0], [40.0, 20.0], [40.0, 60.0], [10.0, 60.0], [10.0, 20.0]]
    """
    x, y, w, h = (float(v) for v in box_xywh)
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], dtype=np.float64)


def box_of(graphic_data: Sequence[float]) -> tuple[float, float, float, float]:
    """The ``(x, y, w, h)`` box a rectangle polyline's ``GraphicData`` (x1, y1, x2, y2, ...) draws."""
    points = np.asarray(graphic_data, dtype=np.float64).reshape(-1, 2)
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return float(x0), float(y0), float(x1 - x0), float(y1 - y0)


def presentation_state(
    film: Dataset, boxes_xywh: np.ndarray, confs: Sequence[float], *, description: str, version: str
) -> Dataset:
    """A GSPS of ``film`` (its header: study, series, SOP UIDs, size) with one rectangle and one confidence
    text per box. ``description`` goes into ContentDescription (at most 64 characters kept)."""
    from highdicom.pr import (
        AnnotationUnitsValues,
        GraphicAnnotation,
        GraphicLayer,
        GraphicObject,
        GraphicTypeValues,
        GrayscaleSoftcopyPresentationState,
        TextObject,
    )

    layer = GraphicLayer(layer_name=LAYER, order=1, description="rsna-yolo boxes (Lung Opacity)")
    pixel = AnnotationUnitsValues.PIXEL
    graphics = [
        GraphicObject(graphic_type=GraphicTypeValues.POLYLINE, graphic_data=rectangle(box), units=pixel)
        for box in boxes_xywh
    ]
    texts = [
        TextObject(
            text_value=f"opacity {conf:.2f}",
            units=pixel,
            anchor_point=(float(box[0]), float(box[1])),
            anchor_point_visible=False,
        )
        for box, conf in zip(boxes_xywh, confs, strict=True)
    ]
    annotations = None
    if graphics:
        annotations = [
            GraphicAnnotation(
                referenced_images=[film], graphic_layer=layer, graphic_objects=graphics, text_objects=texts
            )
        ]
    key = f"{film.SOPInstanceUID}:{description}"
    with warnings.catch_warnings():
        # highdicom warns that a one-word PatientName (RSNA's are the patientId) may be no person's name
        warnings.simplefilter("ignore", UserWarning)
        ds = GrayscaleSoftcopyPresentationState(
            referenced_images=[film],
            series_instance_uid=_uid("series", key),
            series_number=9901,
            sop_instance_uid=_uid("instance", key),
            instance_number=1,
            manufacturer="rsna-yolo",
            manufacturer_model_name="rsna-yolo predict",
            software_versions=version,
            device_serial_number="0",
            content_label=LAYER,
            content_description=description[:64],
            graphic_layers=[layer],
            graphic_annotations=annotations,
        )
    _valid_patient_age(ds)
    if "Laterality" not in ds:
        ds.Laterality = None  # General Series, type 2C: present (empty) for a film of both lungs
    return ds


def _valid_patient_age(ds: Dataset) -> None:
    """The film's PatientAge copied as a valid AS value: RSNA's bare years ("51") become "051Y"; a value
    that cannot be read is left out (type 3 here) rather than copied invalid."""
    from rsna_yolo.core.dicom import parse_age

    if "PatientAge" not in ds:
        return
    text = str(ds.PatientAge or "").strip()
    if len(text) == 4 and text[:3].isdigit() and text[3] in "DWMY":
        return
    years = parse_age(text)
    if years is None or years > 999:
        del ds.PatientAge
    else:
        ds.PatientAge = f"{years:03d}Y"


def write_presentation_states(
    films: dict[str, Path], boxes, out: Path, *, description: str
) -> tuple[dict[str, Path], dict[str, str]]:
    """``out/<id>_pr.dcm`` for every DICOM film of ``films`` (id -> path) whose header can be read, with its
    rows of ``boxes`` (``PRED_COLUMNS`` frame, source pixels). Returns ``({id: file}, {id: why not})``; a
    PNG has no DICOM header to reference and is left out without a note."""
    from importlib.metadata import version

    from rsna_yolo.core.dicom import DicomError, read_dicom
    from rsna_yolo.core.io import write_atomic
    from rsna_yolo.core.layout import BOX_COLUMNS

    try:
        ours = version("rsna-yolo")
    except Exception:
        ours = "unknown"
    by_id = {pid: g for pid, g in boxes.groupby("patientId", sort=False)}
    written: dict[str, Path] = {}
    failed: dict[str, str] = {}
    for pid, path in films.items():
        if path.suffix.lower() == ".png":
            continue
        try:
            film = read_dicom(path, headers_only=True)
            mine = by_id.get(pid, boxes.iloc[:0]).sort_values("conf", ascending=False)
            ds = presentation_state(film, mine[list(BOX_COLUMNS)].to_numpy(float), mine["conf"].tolist(),
                                    description=description, version=ours)  # fmt: skip
        except (DicomError, ValueError, TypeError, AttributeError) as exc:
            failed[pid] = (
                f"no presentation state: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            )
            continue
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        written[pid] = write_atomic(out / f"{pid}{PR_SUFFIX}", buffer.getvalue())
    return written, failed
