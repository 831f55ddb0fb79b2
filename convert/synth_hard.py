"""A harder synthetic chest film: varied framing and exposure, soft tissue, patchy opacities, mimics.

:func:`convert.synth.render_radiograph` draws "diagrams": one framing and exposure, crisp ribs, and
opacities that are uniform bright blobs, so a detector trained on them never puts a false box on a
negative image. :func:`render_hard_radiograph` draws the same :class:`~convert.synth.PatientSpec`
the way real RSNA films vary:

- the background (body, lungs, heart, bones, vessels, breast and shoulder soft tissue, bowel gas under
  the diaphragm, the boxless findings) is built as a map of summed tissue density, then **reframed**:
  scaled, shifted and rotated (up to 7 degrees) as a whole;
- the opacities are then added **in the untransformed 1024-px frame**, inside
  ``spec.boxes_xywh_px`` exactly, so the boxes of the spec stay the ground truth with no coordinate
  change (an opacity is only drawn where the reframed body is, so part of a box can stay clear);
- opacities are textured and patchy, fill part of each box, and range from faint haze to dense
  consolidation; they add density, so they overlap ribs, heart and soft tissue as real ones do;
- Not Normal patients get findings that mimic opacity in the lung fields (atelectasis bands and
  collapse wedges, effusions blunting the costophrenic angle, diffuse interstitial haze, masses,
  apical scarring), drawn from :func:`convert.synth_hard_sample.sample_hard_findings` by
  :func:`~convert.synth_hard_sample.harden_spec`. The commonest,
  ``edema`` (pulmonary oedema, haemorrhage or aspiration: airspace disease the annotators did not call
  pneumonia), is drawn by the very code that draws the opacities, in boxes sampled like the real ones
  (:func:`mimic_boxes`): locally a detector cannot tell it from pneumonia, which is where real detectors
  put their false boxes. What gives it away is the whole film: it usually comes with an enlarged heart
  and often with effusions (the picture of heart failure), which an image classifier can learn;
- blur, CR edge enhancement, exposure window, gamma and film grain vary per image.

Everything is a pure function of the spec, with the random streams of ``render_radiograph``: anatomy
(``render_seed``), opacities (``[render_seed, 1]``) and findings (``[render_seed, 2]``), so
``with_boxes=False`` changes pixels only in a neighbourhood of the boxes.

Sampling the findings is :mod:`convert.synth_hard_sample`; comparing films with real ones is
:mod:`convert.synth_stats`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from convert.synth_hard_sample import DEVICES, MAX_ROTATION_DEG
from convert.synth_render import anatomy, lung_mask, noise, smoothstep
from convert.synth_sample import PatientSpec
from rsna_yolo.core.boxes import NATIVE_SIZE

HARD_RENDER_SIZE = 320
"""The density map is drawn at this size (a little finer than ``synth_render.RENDER_SIZE`` for rib and vessel
detail) and upscaled; grain and markers are added at the output size."""


# --------------------------------------------------------------------------------------------------
# Rendering. Units: normalised coordinates u (column), v (row) in 0..1; "density" is summed tissue
# along the ray, about 1 through the middle of the trunk; the tone curve maps density to grey.
# --------------------------------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    g = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(g, g)


def _blob(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float, rv: float) -> np.ndarray:
    """Squared normalised elliptical radius around ``(cu, cv)`` (1 on the ellipse)."""
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2


def _px(points: list[tuple[float, float]], size: int) -> np.ndarray:
    """Normalised ``(x, y)`` points -> ``(n, 1, 2)`` int32 pixel points for cv2 drawing."""
    return (np.asarray(points, dtype=np.float64) * size).astype(np.int32).reshape(-1, 1, 2)


def _hard_params(rng: np.random.Generator, spec: PatientSpec) -> dict:
    """Per-image draws beyond :func:`convert.synth.anatomy`: body build, soft tissue, framing, exposure.

    Drawn unconditionally in a fixed order, so no flag changes what follows in the stream.
    """
    female = spec.sex == "F"
    breast_draw = rng.random()
    p = {
        "body_w": rng.uniform(0.47, 0.58),
        "shoulder": rng.uniform(0.02, 0.08),
        "neck": rng.uniform(0.08, 0.11),
        "shoulder_top": rng.uniform(-0.02, 0.05),
        "clavicle_v": rng.uniform(0.13, 0.19),
        "air": rng.uniform(0.45, 0.6),
        "right_dome_up": rng.uniform(0.0, 0.04),
        "rib_k": rng.uniform(0.06, 0.12),
        "rib_width": rng.uniform(0.2, 0.35),
        "vessel_k": rng.uniform(0.14, 0.26),
        "breast": (breast_draw < 0.7) if female else (breast_draw < 0.1),
        "breast_k": rng.uniform(0.05, 0.15) if female else rng.uniform(0.03, 0.06),
        "breast_r": rng.uniform(0.13, 0.2) if female else rng.uniform(0.1, 0.13),
        "breast_v": rng.uniform(-0.08, 0.02),
        "arms": spec.view == "AP" and rng.random() < 0.6,
        "stomach": rng.random() < 0.8,
        "n_gas": int(rng.integers(1, 7)),
        # Framing: zoom about the centre, shift, small rotation (degrees, anticlockwise).
        "zoom": rng.uniform(0.9, 1.12),
        "shift": rng.normal(0.0, 0.03, size=2).clip(-0.07, 0.07),
        "angle": float(np.clip(rng.normal(0.0, 3.0), -MAX_ROTATION_DEG, MAX_ROTATION_DEG)),
        # Exposure: density window, gamma, output black and white levels.
        "lo": rng.uniform(-0.1, 0.08),
        "hi": rng.uniform(1.1, 1.45),
        "gamma": float(np.clip(math.exp(rng.normal(0.0, 0.15)), 0.75, 1.35)),
        "black": rng.uniform(0.0, 16.0) if rng.random() < 0.4 else 0.0,
        "white": rng.uniform(150.0, 240.0) if rng.random() < 0.25 else rng.uniform(205.0, 242.0),
        "blur": rng.uniform(0.15, 0.7),
        "unsharp": rng.uniform(0.1, 0.6),
        "grain": rng.uniform(2.5, 5.5),
    }
    return p


def _background(rng: np.random.Generator, spec: PatientSpec, a: dict, p: dict, size: int) -> dict:
    """The untransformed patient: ``density`` (R, R) and soft masks ``body``, ``air`` (lung air column),
    ``lung_l``/``lung_r`` (image-left / image-right lung field not hidden by heart or mediastinum), all
    float32 (R, R)."""
    u, v = _grid(size)
    cx = a["cx"]
    lat = np.abs(u - cx)

    # Trunk: elliptical cross-section (thin at the edges), cut above by the sloping shoulder line;
    # the neck, a narrower cylinder, runs on up to the top of the film.
    width = p["body_w"] + p["shoulder"] * np.exp(-(((v - 0.16) / 0.1) ** 2))
    bu = lat / width
    shoulder_line = p["shoulder_top"] + 0.18 * np.sqrt(np.clip(lat - 0.6 * p["neck"], 0.0, None))
    trunk = smoothstep(1.0, 0.95, bu) * smoothstep(shoulder_line - 0.01, shoulder_line + 0.04, v)
    thick = np.sqrt(np.clip(1.0 - bu * bu, 0.0, 1.0)) * trunk
    nu = lat / p["neck"]
    neck = np.sqrt(np.clip(1.0 - nu * nu, 0.0, 1.0)) * smoothstep(p["shoulder_top"] + 0.12, 0.0, v)
    body = np.maximum(trunk, smoothstep(1.0, 0.9, nu) * smoothstep(p["shoulder_top"] + 0.12, 0.0, v))
    density = (0.15 * body + 0.85 * np.maximum(thick, 0.75 * neck)) * (0.92 + 0.08 * noise(rng, size, 5))
    if p["arms"]:  # arms at the sides of a supine patient: soft tissue with a humerus
        off = np.abs(lat - width - 0.075)
        arm = smoothstep(0.065, 0.03, off) * smoothstep(0.05, 0.2, v) * smoothstep(0.75, 0.5, v)
        density = density + 0.4 * arm * (1.0 + 0.5 * smoothstep(0.018, 0.008, off))
        body = np.maximum(body, arm)
    # Liver, spleen and bowel under the diaphragm: the upper abdomen is nearly as dense as the heart.
    density = density + 0.15 * smoothstep(a["lung_bottom"] - 0.1, a["lung_bottom"] + 0.05, v) * trunk

    # Lungs: an air column that thins towards the apex, the chest wall and the bases.
    lungs = []
    for side in (-1, 1):
        bottom = a["lung_bottom"] - (p["right_dome_up"] if side < 0 else 0.0)  # liver lifts the right dome
        lungs.append(lung_mask(u, v, side, {**a, "lung_bottom": bottom}))
    lung = np.maximum(lungs[0], lungs[1])
    depth = lung * cv2.GaussianBlur(lung, (0, 0), size * 0.03)  # deepest mid-lung, thin at the edges
    depth = depth * (0.55 + 0.45 * smoothstep(a["lung_top"], a["lung_top"] + 0.18, v))

    # Heart (tilted ellipse, apex to image right), aortic knob and mediastinum displace the air.
    hs = a["heart_scale"]
    hu, hv = u - cx - 0.06 * hs, v - 0.64
    # An ellipse tilted so the apex points down to the image right, continued straight down below its
    # centre so that it sits on the diaphragm.
    hv = np.minimum(hv, 0.0)
    heart = ((0.9 * hu + 0.3 * hv) / (0.175 * hs)) ** 2 + ((0.9 * hv - 0.3 * hu) / (0.12 * hs)) ** 2
    heart = smoothstep(1.1, 0.85, heart)
    knob = smoothstep(1.2, 0.7, _blob(u, v, cx + 0.06, 0.3, 0.035, 0.03))
    mediastinum = smoothstep(1.0, 0.7, np.abs(u - cx) / (0.065 + 0.02 * smoothstep(0.2, 0.5, v)))
    solid = np.maximum(np.maximum(heart * 0.97, knob), mediastinum)
    open_lung = lung * (1.0 - solid)  # lung not hidden behind heart or mediastinum
    air = p["air"] * depth * (1.0 - solid) * (a["lung_density"] / 0.56)
    density = density - air

    # Spine with vertebral bodies, faint through the mediastinum.
    vert = 0.5 + 0.5 * np.cos(2 * np.pi * v / (0.04 + 0.012 * v))
    density = density + 0.08 * smoothstep(0.035, 0.015, lat) * (0.8 + 0.2 * vert) * body

    # Ribs: posterior ones arch down laterally with a wavy course; anterior ones, fainter, slope down
    # medially. Confined to the thorax.
    waves = 0.12 * noise(rng, size, 5)
    arch = v - 1.8 * (lat - 0.07) ** 2 + 0.05 * v * v
    post = np.cos(2 * np.pi * (arch / (a["rib_period"] * (0.8 + 0.4 * v)) + a["rib_phase"] + waves))
    ant = np.cos(2 * np.pi * ((v + 0.6 * lat) / (a["rib_period"] * 1.3) + a["rib_phase"] + waves))
    w = 1.0 - 2.0 * p["rib_width"]
    ant = 0.2 * smoothstep(w, w + 0.3, ant) * smoothstep(0.1, 0.2, lat) * open_lung
    ribs = smoothstep(w, w + 0.25, post) + ant
    outer = a["lung_offset"] + a["lung_width"]
    zone = smoothstep(a["lung_bottom"] + 0.06, a["lung_bottom"] - 0.02, v) * smoothstep(0.03, 0.07, lat)
    zone = zone * smoothstep(outer + 0.1, outer + 0.02, lat)
    # Over soft tissue the window hides most of the ribs; over the air of the lungs they stand out.
    near_lung = cv2.GaussianBlur(open_lung, (0, 0), size * 0.02)
    density = density + p["rib_k"] * ribs * zone * body * (0.1 + 0.9 * near_lung)

    # Clavicles (S-shaped), scapulae (a faint plate over the upper lateral lung), humeral heads.
    bones, plates = np.zeros_like(u), np.zeros_like(u)
    thick_px = max(2, round(size * 0.022))
    for side in (-1, 1):
        y0 = p["clavicle_v"]
        clavicle = [(cx + side * 0.035, y0 + 0.07), (cx + side * 0.12, y0 + 0.04), (cx + side * 0.22, y0)]
        clavicle += [(cx + side * 0.3, y0 - 0.03), (cx + side * 0.36, y0 - 0.025)]
        cv2.polylines(bones, [_px(clavicle, size)], False, 0.16, thick_px, cv2.LINE_AA)
        scapula = [(cx + side * 0.55, 0.1), (cx + side * 0.26, 0.15), (cx + side * 0.32, 0.48)]
        cv2.fillPoly(plates, [_px(scapula, size)], 0.05)
        head = _blob(u, v, cx + side * (p["body_w"] + p["shoulder"] - 0.02), 0.14, 0.06, 0.065)
        bones += 0.22 * smoothstep(1.0, 0.75, head)
    bones += cv2.GaussianBlur(plates, (0, 0), size * 0.015)
    density = density + cv2.GaussianBlur(bones, (0, 0), size * 0.003) * body

    # Vessels: the zero lines of a noise field drawn in polar coordinates around each hilum are
    # wavy, branching curves that run outwards; they taper and fade towards the periphery.
    vessels = np.zeros_like(u)
    for side in (-1, 1):
        hu, hv = u - (cx + side * 0.09), v - 0.45
        r = np.sqrt(hu * hu + hv * hv)
        theta = np.arctan2(hv, side * hu)  # the branch cut points at the mediastinum, not the lung
        map_x = (theta + np.pi) * (63.0 / (2 * np.pi))
        map_y = np.clip(r * (15.0 / 0.6), 0.0, 15.0)
        field = np.zeros((16, 64), np.float32)
        for cells, weight in ((16, 1.0), (40, 0.6)):
            small = rng.standard_normal((4, cells)).astype(np.float32)
            field += weight * cv2.resize(small, (64, 16), interpolation=cv2.INTER_CUBIC)
        n = cv2.remap(field, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        ridge = smoothstep(0.25 + 0.5 * r, 0.0, np.abs(n))  # thinner further out
        vessels += ridge * np.exp(-r / 0.13) * smoothstep(0.02, 0.08, r) + 0.6 * np.exp(-((r / 0.05) ** 2))
    texture = 0.03 * noise(rng, size, 40)
    density = density + (p["vessel_k"] * vessels + texture) * open_lung
    # Trachea: an air column down the upper mediastinum to the carina.
    trachea = smoothstep(0.02, 0.01, np.abs(u - cx - 0.01 * v)) * smoothstep(0.42, 0.36, v) * body
    density = density - 0.07 * trachea

    # Soft tissue: breast shadows over the lung bases (curved lower edge), pectoral/axillary folds.
    if p["breast"]:
        for side in (-1, 1):
            cu, cv_ = cx + side * 0.22, a["lung_bottom"] - 0.12 + p["breast_v"]
            rb = p["breast_r"]
            d = np.sqrt(_blob(u, v, cu, cv_, rb * 1.1, rb))
            lower = smoothstep(-0.9, 0.6, (v - cv_) / rb)  # thickest towards the lower edge
            density = density + p["breast_k"] * smoothstep(1.0, 0.75, d) * lower
    fold = np.exp(-(((lat - width + 0.07) / 0.05) ** 2)) * smoothstep(0.45, 0.2, v)
    density = density + 0.1 * fold * smoothstep(0.05, 0.15, v) * body

    # Bowel gas under the left hemidiaphragm (image right): a stomach bubble and colon gas pockets.
    gas = np.zeros_like(u)
    top = a["lung_bottom"] + 0.02
    if p["stomach"]:
        c = _px([(cx + rng.uniform(0.08, 0.2), top + rng.uniform(0.02, 0.06))], size)[0, 0]
        axes = (int(size * rng.uniform(0.035, 0.07)), int(size * rng.uniform(0.025, 0.045)))
        cv2.ellipse(gas, (int(c[0]), int(c[1])), axes, 0.0, 0.0, 360.0, rng.uniform(0.15, 0.35), -1)
    for _ in range(p["n_gas"]):
        c = _px([(cx + rng.uniform(-0.35, 0.35), rng.uniform(top + 0.06, 1.05))], size)[0, 0]
        axes = (int(size * rng.uniform(0.012, 0.045)), int(size * rng.uniform(0.01, 0.03)))
        angle = rng.uniform(0, 180)
        cv2.ellipse(gas, (int(c[0]), int(c[1])), axes, angle, 0.0, 360.0, rng.uniform(0.06, 0.2), -1)
    gas *= 0.6 + 0.4 * noise(rng, size, 30).clip(-1, 1)
    density = density - cv2.GaussianBlur(gas, (0, 0), size * 0.01) * body * (1.0 - lung)

    visible = 1.0 - solid
    return {
        "density": density,
        "body": body,
        "air": air,
        "lung_l": lungs[0] * visible,
        "lung_r": lungs[1] * visible,
    }


def _draw_hard_findings(
    rng: np.random.Generator, spec: PatientSpec, a: dict, bg: dict, size: int
) -> np.ndarray:
    """Density (R, R) added by the boxless findings of ``spec.findings``, in the patient frame."""
    u, v = _grid(size)
    cx = a["cx"]
    lungs = (bg["lung_l"], bg["lung_r"])
    lung = np.maximum(*lungs)
    out = np.zeros_like(u)

    def in_lung(side: int, v_lo: float, v_hi: float) -> tuple[float, float]:
        return cx + side * (a["lung_offset"] + rng.uniform(-0.05, 0.05)), rng.uniform(v_lo, v_hi)

    for finding in spec.findings:
        side = -1 if rng.random() < 0.5 else 1
        mask = lungs[0] if side < 0 else lungs[1]
        if finding == "nodule":
            cu, cv_ = in_lung(side, 0.3, 0.65)
            r = rng.uniform(0.008, 0.018)
            out += rng.uniform(0.2, 0.35) * smoothstep(1.0, 0.6, np.sqrt(_blob(u, v, cu, cv_, r, r)))
        elif finding == "mass":
            cu, cv_ = in_lung(side, 0.25, 0.65)
            r = rng.uniform(0.03, 0.065)
            d = np.sqrt(_blob(u, v, cu, cv_, r, r)) + 0.12 * noise(rng, size, 14)  # lobulated edge
            out += rng.uniform(0.25, 0.45) * smoothstep(1.0, 0.75, d)
        elif finding == "atelectasis":
            canvas = np.zeros_like(u)
            for _ in range(int(rng.integers(1, 4))):  # plate-like bands in the lower zones
                cu, cv_ = in_lung(side, 0.5, a["lung_bottom"] - 0.08)
                half, tilt = rng.uniform(0.04, 0.1), rng.uniform(-0.35, 0.35)
                p0 = (cu - half * math.cos(tilt), cv_ - half * math.sin(tilt))
                p1 = (cu + half * math.cos(tilt), cv_ + half * math.sin(tilt))
                cv2.polylines(canvas, [_px([p0, p1], size)], False, 1.0, max(1, int(size * 0.012)))
            if rng.random() < 0.5:  # a collapsed lower lobe: a wedge by the heart border
                base = a["lung_bottom"] - 0.02
                wedge = [(cx + side * 0.06, 0.48), (cx + side * 0.07, base), (cx + side * 0.22, base)]
                cv2.fillPoly(canvas, [_px(wedge, size)], 0.6)
            blurred = cv2.GaussianBlur(canvas, (0, 0), size * 0.01) * (0.8 + 0.2 * noise(rng, size, 20))
            out += rng.uniform(0.15, 0.35) * blurred * mask
        elif finding == "effusion":
            for s in (side, -side) if rng.random() < 0.3 else (side,):
                m = lungs[0] if s < 0 else lungs[1]
                centre = cx + s * a["lung_offset"]
                lateral = np.clip((u - centre) * s / (2 * a["lung_width"]) + 0.5, 0.0, 1.0)
                height = rng.uniform(0.03, 0.06) if rng.random() < 0.6 else rng.uniform(0.08, 0.2)
                surface = a["lung_bottom"] - a["dome"] - height * (0.2 + 0.8 * lateral**2)  # meniscus
                fluid = smoothstep(surface - 0.01, surface + 0.06, v)
                out += rng.uniform(0.3, 0.55) * fluid * cv2.GaussianBlur(m, (0, 0), size * 0.01)
        elif finding == "interstitial":  # bilateral reticular haze, worse at the bases
            fine = np.clip(noise(rng, size, 45), 0.0, 1.5)  # reticular mottling
            haze = 0.5 + 0.5 * noise(rng, size, 6).clip(-1, 1)
            k = rng.uniform(0.1, 0.22)
            out += k * (0.8 * haze + 0.3 * fine) * lung * (0.45 + 0.55 * smoothstep(0.3, 0.8, v))
        elif finding == "scarring":  # patchy apical fibrosis with strands towards the hilum
            cu, cv_ = in_lung(side, a["lung_top"] + 0.06, 0.36)
            r = rng.uniform(0.05, 0.09)
            patch = smoothstep(-0.2, 0.9, noise(rng, size, 16))
            patch = patch * smoothstep(1.2, 0.5, _blob(u, v, cu, cv_, r, r))
            canvas = np.zeros_like(u)
            for _ in range(int(rng.integers(2, 6))):
                end = (cx + side * rng.uniform(0.06, 0.14), rng.uniform(0.38, 0.48))
                start = (cu + rng.uniform(-r, r), cv_ + rng.uniform(-r, r))
                cv2.polylines(canvas, [_px([start, end], size)], False, 1.0, 1)
            out += rng.uniform(0.15, 0.3) * (patch + 0.6 * cv2.GaussianBlur(canvas, (0, 0), 0.8)) * mask
        elif finding in DEVICES:
            canvas = np.zeros_like(u)
            if finding == "lines":
                x = cx + rng.normal(0, 0.005)
                tip = rng.uniform(0.26, 0.34)
                cv2.polylines(canvas, [_px([(x, 0.0), (x + 0.005, tip)], size)], False, 1.0, 2, cv2.LINE_AA)
                if rng.random() < 0.7:  # nasogastric tube down to the stomach
                    ng = [(x - 0.01, 0.0), (x - 0.005, 0.5), (x + 0.03, 0.85), (x + 0.12, 0.92)]
                    cv2.polylines(canvas, [_px(ng, size)], False, 0.8, 1, cv2.LINE_AA)
                if rng.random() < 0.6:  # central line from a subclavian vein
                    s = -1 if rng.random() < 0.5 else 1
                    cl = [(x + s * 0.3, 0.12), (x + s * 0.12, 0.17), (x + s * 0.03, 0.3)]
                    cv2.polylines(canvas, [_px(cl, size)], False, 0.8, 1, cv2.LINE_AA)
            elif finding == "pacemaker":
                x0, y0 = cx - 0.28 + rng.normal(0, 0.02), rng.uniform(0.12, 0.2)
                box = _px([(x0, y0), (x0 + 0.08, y0 + 0.05)], size)
                cv2.rectangle(canvas, tuple(box[0, 0]), tuple(box[1, 0]), 1.5, -1, cv2.LINE_AA)
                lead = [(x0 + 0.07, y0 + 0.04), (cx - 0.02, 0.35), (cx + 0.06, 0.6)]
                cv2.polylines(canvas, [_px(lead, size)], False, 1.0, 1, cv2.LINE_AA)
            else:  # ECG electrodes with their wires running off the film
                for _ in range(int(rng.integers(3, 6))):
                    c = (rng.uniform(0.15, 0.85), rng.uniform(0.1, 0.7))
                    cv2.circle(canvas, tuple(_px([c], size)[0, 0]), max(2, int(size * 0.015)), 1.0, 1)
                    cv2.circle(canvas, tuple(_px([c], size)[0, 0]), max(1, int(size * 0.005)), 1.0, -1)
                    edge = (0.0 if c[0] < 0.5 else 1.0, rng.uniform(0.0, 0.6))
                    sag = rng.normal(0, 0.05, size=2)
                    mid = ((c[0] + edge[0]) / 2 + sag[0], (c[1] + edge[1]) / 2 + sag[1])
                    cv2.polylines(canvas, [_px([c, mid, edge], size)], False, 0.6, 1, cv2.LINE_AA)
            out += 0.45 * canvas
        # cardiomegaly is drawn by anatomy (a larger heart)
    return out


def _opacity(rng: np.random.Generator, box_norm: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Density pattern (R, R), 0..~1, of one pneumonia opacity inside ``box_norm`` (xywh, 0..1): an
    irregular patch covering part of the box, textured (acinar blotches), zero outside the box."""
    size = u.shape[0]
    x, y, w, h = (float(t) for t in box_norm)  # Python floats keep the arrays float32
    cover = rng.uniform(0.55, 0.95)  # how much of the box the opacity spans
    ru, rv = w / 2 * cover, h / 2 * cover
    cu = x + w / 2 + rng.uniform(-1, 1) * (w / 2 - ru)
    cv_ = y + h / 2 + rng.uniform(-1, 1) * (h / 2 - rv)
    edge = _blob(u, v, cu, cv_, ru, rv) + 0.45 * noise(rng, size, 9)
    envelope = smoothstep(1.3, 0.1, edge)
    blotch = 0.65 * noise(rng, size, 14) + 0.35 * noise(rng, size, 30)
    texture = smoothstep(-1.4, 1.4, blotch + rng.uniform(-0.3, 0.5))
    inside = (
        smoothstep(x - 0.005, x + 0.01, u)
        * smoothstep(x + w + 0.005, x + w - 0.01, u)
        * smoothstep(y - 0.005, y + 0.01, v)
        * smoothstep(y + h + 0.005, y + h - 0.01, v)
    )
    return envelope * (0.35 + 0.65 * texture) * inside


def mimic_boxes(spec: PatientSpec) -> np.ndarray:
    """Where the ``edema`` finding of ``spec`` is drawn: ``(k, 4)`` xywh boxes in the 1024-px frame (empty
    without that finding), one or (bilateral, 55%) two, with the position and size distribution of the
    real Lung Opacity boxes (per lung: centre x about 321 / 713 px, y about 530 px, width about 218 px,
    height about 330 px). Random stream ``[render_seed, 4]``."""
    if "edema" not in spec.findings:
        return np.zeros((0, 4))
    rng = np.random.default_rng([spec.render_seed, 4])
    sides = (-1, 1) if rng.random() < 0.55 else ((-1,) if rng.random() < 0.5 else (1,))
    boxes = []
    for side in sides:
        w = float(np.clip(rng.normal(218, 58), 60, 480))
        h = float(np.clip(rng.normal(330, 150), 70, 800))
        cx = float(rng.normal(321 if side < 0 else 713, 60))
        cy = float(np.clip(rng.normal(530, 110), 120 + h / 2 * 0.5, 940 - h / 2 * 0.5))
        x = float(np.clip(cx - w / 2, 0, NATIVE_SIZE - w))
        y = float(np.clip(cy - h / 2, 0, NATIVE_SIZE - h))
        boxes.append((x, y, w, h))
    return np.asarray(boxes, dtype=np.float64)


def _add_opacities(
    rng: np.random.Generator, density: np.ndarray, boxes_px: np.ndarray, air: np.ndarray, body: np.ndarray
) -> np.ndarray:
    """``density`` plus one textured opacity (:func:`_opacity`, faint haze .. dense) in each box of
    ``boxes_px`` (1024-px xywh, untransformed frame): it fills the lung's air (up to nearly tissue
    density) and adds some density where the box overlaps soft tissue; none where there is no body."""
    if not len(boxes_px):
        return density
    u, v = _grid(density.shape[0])
    k = rng.uniform(0.3, 1.0, size=len(boxes_px))
    for box, strength in zip(np.asarray(boxes_px) / NATIVE_SIZE, k.tolist(), strict=True):
        pattern = _opacity(rng, box, u, v)
        density = density + strength * pattern * (0.95 * air + 0.35 * body)
    return density


def render_hard_radiograph(
    spec: PatientSpec, imgsz: int = 1024, *, with_boxes: bool = True, with_findings: bool = True
) -> np.ndarray:
    """A hard chest-film-like uint8 image ``(imgsz, imgsz)``, MONOCHROME2 (bright = dense).

    See the module docstring. Framing (zoom 0.9-1.12, shift, rotation up to
    :data:`MAX_ROTATION_DEG`) applies to the background and findings only; the opacities are drawn in
    the untransformed frame, inside ``spec.boxes_xywh_px`` (1024-px frame, scaled to ``imgsz``), so
    those boxes are the truth of the returned image unchanged. ``with_boxes=False`` /
    ``with_findings=False`` render the same film without the opacities / findings.
    """
    rng = np.random.default_rng(spec.render_seed)
    opacity_rng = np.random.default_rng([spec.render_seed, 1])
    findings_rng = np.random.default_rng([spec.render_seed, 2])
    a = anatomy(rng, spec, cardiomegaly=with_findings and "cardiomegaly" in spec.findings)
    # Real films show wider lung fields than the default level draws.
    a = {**a, "lung_offset": a["lung_offset"] * 1.18, "lung_width": a["lung_width"] * 1.15}
    p = _hard_params(rng, spec)
    size = min(HARD_RENDER_SIZE, imgsz)

    bg = _background(rng, spec, a, p, size)
    density = bg["density"]
    if with_findings:
        density = density + _draw_hard_findings(findings_rng, spec, a, bg, size)

    # Reframe the patient (background and findings) about the centre; outside is air.
    m = cv2.getRotationMatrix2D((size / 2, size / 2), p["angle"], p["zoom"])
    m[:, 2] += p["shift"] * size

    def reframe(x: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(x, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)

    density = reframe(density)
    # Opacities (and the edema mimic, drawn by the same code) go in the untransformed frame.
    air, body = reframe(bg["air"]), reframe(bg["body"])
    if with_boxes:
        density = _add_opacities(opacity_rng, density, spec.boxes_xywh_px, air, body)
    if with_findings:
        density = _add_opacities(
            np.random.default_rng([spec.render_seed, 5]), density, mimic_boxes(spec), air, body
        )

    # Film processing: unsharpness, CR edge enhancement, exposure window and gamma.
    density = cv2.GaussianBlur(density, (0, 0), p["blur"])
    density = density + p["unsharp"] * (density - cv2.GaussianBlur(density, (0, 0), size * 0.012))
    x = np.clip((density - p["lo"]) / (p["hi"] - p["lo"]), 0.0, 1.0) ** p["gamma"]
    img = p["black"] + (p["white"] - p["black"]) * x

    if size != imgsz:
        img = cv2.resize(img, (imgsz, imgsz), interpolation=cv2.INTER_CUBIC)
    # Film grain, correlated over about two pixels (as in the JPEG-compressed real films).
    half = max(imgsz // 2, 1)
    grain = cv2.resize(rng.standard_normal((half, half), dtype=np.float32), (imgsz, imgsz))
    img = img + p["grain"] * grain
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < 0.85:  # the technologist's side or view marker
        text = str(rng.choice(["L", "R", "AP", "PORTABLE" if spec.view == "AP" else "PA"]))
        text_scale = imgsz / 1024
        org = (int(rng.uniform(0.04, 0.85) * imgsz), int(rng.uniform(0.05, 0.1) * imgsz))
        cv2.putText(
            out, text, org, cv2.FONT_HERSHEY_SIMPLEX, 1.2 * text_scale, 235, max(1, int(3 * text_scale))
        )
    return out
