"""Drawing a chest-radiograph-like film from a :class:`~convert.synth_sample.PatientSpec` (pure: the same
spec gives the same pixels)."""

from __future__ import annotations

import cv2
import numpy as np

from convert.synth_sample import PatientSpec
from rsna_yolo.core.boxes import NATIVE_SIZE

RENDER_SIZE = 256
"""Anatomy is drawn at this size and upscaled (fast); fine noise and markers are added at full size."""


def smoothstep(edge0: float | np.ndarray, edge1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1``, a smooth cubic between (``edge0 > edge1`` flips it)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
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


def lung_mask(u: np.ndarray, v: np.ndarray, side: int, a: dict) -> np.ndarray:
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
        smoothstep(1.0, 0.8, np.abs(q))
        * smoothstep(a["lung_top"], a["lung_top"] + 0.03, v)
        * smoothstep(bottom, bottom - 0.04, v)
    )


def anatomy(rng: np.random.Generator, spec: PatientSpec, cardiomegaly: bool) -> dict:
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

    ``u``, ``v`` are the ``(R, R)`` column and row coordinates (0..1); ``a`` is the :func:`anatomy`.
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
            img[:] = _screen(img, 0.45 * smoothstep(r, r * 0.7, d))  # small, sharp, round: not pneumonia
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
                ring = smoothstep(0.006, 0.003, np.abs(d - 0.017)) + smoothstep(0.007, 0.004, d)
                img[:] = _screen(img, 0.6 * np.clip(ring, 0, 1))
        # cardiomegaly is drawn by anatomy (a larger heart)


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
    a = anatomy(rng, spec, cardiomegaly=with_findings and "cardiomegaly" in spec.findings)
    size = min(RENDER_SIZE, imgsz)
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    u, v = np.meshgrid(grid, grid)  # u: column (x), v: row (y), both 0..1
    cx = a["cx"]

    # Body: a trunk that narrows to the neck between sloping shoulders; darker where it is thinner at
    # the edges.
    shoulders = 0.06 * np.exp(-(((v - 0.2) / 0.09) ** 2))
    width = a["body_width"] * (0.3 + 0.7 * smoothstep(0.0, 0.2, v)) + shoulders
    bu = np.abs(u - cx) / width
    body = smoothstep(1.0, 0.93, bu)
    thickness = 0.35 + 0.65 * np.sqrt(np.clip(1.0 - bu**2, 0.0, 1.0))
    img = 0.06 + body * (0.52 * thickness + 0.04 * noise(rng, size, 6))

    # Lungs: air makes them dark; vessels radiate from each hilum and fade towards the periphery.
    lungs = np.zeros_like(img)
    for side in (-1, 1):
        m = lung_mask(u, v, side, a)
        hilum = (cx + side * 0.09, 0.45)
        r = np.hypot(u - hilum[0], v - hilum[1])
        ang = np.arctan2(v - hilum[1], u - hilum[0])
        # Branching vessels, approximated by wavy radial streaks (few enough not to alias at 256 px).
        streaks = np.abs(np.sin(ang * rng.uniform(9, 13) + 1.5 * noise(rng, size, 7)))
        vessels = (1.0 - streaks) ** 4 * np.exp(-r / 0.2) * (0.6 + 0.4 * noise(rng, size, 16).clip(-1, 1))
        vessels *= smoothstep(0.03, 0.12, r)  # no visible star where the streaks meet
        dark = a["lung_density"] * (0.75 + 0.25 * smoothstep(0.05, 0.3, r)) - 0.25 * vessels
        lungs = np.maximum(lungs, m * dark)
    lungs = lungs * (1.0 + 0.08 * noise(rng, size, 24))
    img = img * (1.0 - lungs)

    # Heart and mediastinum (dense soft tissue), spine with vertebral bodies.
    hs = a["heart_scale"]
    hu, hv = u - cx - 0.05 * hs, v - 0.66
    # An ellipse tilted so the apex points down towards the patient's left (image right).
    heart = ((0.9 * hu + 0.3 * hv) / (0.135 * hs)) ** 2 + ((0.9 * hv - 0.3 * hu) / (0.105 * hs)) ** 2
    mediastinum = smoothstep(1.0, 0.7, np.abs(u - cx) / (0.055 + 0.03 * smoothstep(0.2, 0.5, v)))
    soft = np.maximum(smoothstep(1.1, 0.7, heart), mediastinum * smoothstep(0.02, 0.12, v))
    img = img + (0.62 - img) * soft * 0.95
    vertebrae = 0.5 + 0.5 * np.cos(2 * np.pi * v / 0.052)
    spine = smoothstep(0.03, 0.018, np.abs(u - cx)) * (0.7 + 0.3 * vertebrae**0.5)
    img = _screen(img, 0.25 * spine * body)

    # Ribs: curved bands, most visible over the lungs; clavicles across the apices.
    lat = np.abs(u - cx)
    # Posterior ribs arch up from the spine and fall laterally; their spacing widens down the chest.
    arch = v - 1.8 * (lat - 0.07) ** 2 + 0.05 * v**2
    phase = arch / a["rib_period"] + a["rib_phase"] + 0.6 * noise(rng, size, 4) * 0.1
    band = np.cos(2 * np.pi * phase)
    rib = smoothstep(0.15, 0.55, band) * smoothstep(a["lung_bottom"] + 0.02, a["lung_bottom"] - 0.05, v)
    img = _screen(img, rib * body * (0.02 + 0.16 * lungs) * smoothstep(0.02, 0.06, lat))
    for side in (-1, 1):
        d = _segment_distance(u, v, (cx + side * 0.05, 0.19), (cx + side * 0.3, 0.13))
        img = _screen(img, 0.22 * smoothstep(0.018, 0.008, d) * body)

    # Opacities: patchy, blurry, irregular consolidation filling most of each box.
    if with_boxes:
        for x, y, w, h in spec.boxes_xywh_px / NATIVE_SIZE:
            cu, cv, ru, rv = x + w / 2, y + h / 2, w / 2, h / 2
            rr = ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2
            # Irregular but box-filling extent: a detector is scored on IoU with the box.
            edge = rr + 0.2 * noise(opacity_rng, size, 10)
            fill = smoothstep(1.15, 0.5, edge)
            texture = 0.8 + 0.2 * np.clip(noise(opacity_rng, size, 24), -1.5, 1.5) / 1.5
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
        k = imgsz / NATIVE_SIZE  # the marker's size follows the film's
        org = (int((0.78 if text == "L" else 0.05) * imgsz), int(0.07 * imgsz))
        cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 1.4 * k, 230, max(1, int(3 * k)))
    return out
