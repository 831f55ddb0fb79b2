"""Tests of ``convert.synth_hard``: the hard rendering level, its findings, and the statistics script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from convert import synth_render, synth_sample
from convert.synth_hard import mimic_boxes, render_hard_radiograph
from convert.synth_hard_sample import (
    HARD_FINDINGS,
    MIMICS,
    harden_spec,
    sample_hard_findings,
    sample_hard_patients,
)
from convert.synth_stats import intensity_stats
from rsna_yolo.core.boxes import NATIVE_SIZE

BOX_SETS = synth_sample.load_box_sets()


def _specs(cls: str, n: int, seed: int) -> list[synth_sample.PatientSpec]:
    rng = np.random.default_rng(seed)
    return [harden_spec(synth_sample.sample_patient(rng, cls, BOX_SETS)) for _ in range(n)]


def _lung_zone(size: int) -> np.ndarray:
    """Where the lung fields lie on almost every film, whatever the framing: ``(size, size)`` bool."""
    zone = np.zeros((size, size), bool)
    rows = slice(int(0.25 * size), int(0.75 * size))
    zone[rows, int(0.15 * size) : int(0.45 * size)] = True
    zone[rows, int(0.55 * size) : int(0.85 * size)] = True
    return zone


def test_same_spec_same_bytes():
    spec = _specs(synth_sample.LUNG_OPACITY, 1, seed=3)[0]
    assert harden_spec(spec).findings == spec.findings  # harden_spec is a pure function of the spec
    first = render_hard_radiograph(spec, 256)
    assert first.tobytes() == render_hard_radiograph(spec, 256).tobytes()
    other = _specs(synth_sample.LUNG_OPACITY, 2, seed=3)[1]
    assert first.tobytes() != render_hard_radiograph(other, 256).tobytes()


@pytest.mark.parametrize("imgsz", [256, 1024])
def test_shape_and_dtype(imgsz: int):
    img = render_hard_radiograph(_specs(synth_sample.NOT_NORMAL, 1, seed=4)[0], imgsz)
    assert img.shape == (imgsz, imgsz)
    assert img.dtype == np.uint8
    assert 20 < img.mean() < 235 and img.std() > 20  # a film, not a blank


def test_without_boxes_changes_only_near_the_boxes():
    imgsz = 512
    # Blur, edge enhancement and upscaling spread an opacity a few pixels past its box; 6% of the
    # film is well beyond their kernels (about 15 px at the 320-px drawing size, i.e. under 5%).
    margin = int(0.06 * imgsz)
    for spec in _specs(synth_sample.LUNG_OPACITY, 3, seed=5):
        diff = render_hard_radiograph(spec, imgsz).astype(int) - render_hard_radiograph(
            spec, imgsz, with_boxes=False
        ).astype(int)
        near = np.zeros((imgsz, imgsz), bool)
        inside = np.zeros((imgsz, imgsz), bool)
        for x, y, w, h in spec.boxes_xywh_px * imgsz / NATIVE_SIZE:
            x0, y0, x1, y1 = int(x), int(y), int(np.ceil(x + w)), int(np.ceil(y + h))
            near[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin] = True
            inside[y0:y1, x0:x1] = True
        assert not diff[~near].any(), "an opacity changed pixels far from every box"
        # The opacity is there and brightens (edge enhancement may darken a thin halo around it).
        assert (diff[inside] > 0).mean() > 0.1
        assert diff[inside].mean() > 2


def test_framing_and_exposure_vary_more_than_the_default_level():
    specs = _specs(synth_sample.NORMAL, 16, seed=6)

    def spread(images: list[np.ndarray]) -> tuple[float, float]:
        """Across films: std of the body's centroid (framing, px) and of the mean grey (exposure)."""
        centroids = []
        for img in images:
            ys, xs = np.nonzero(img > 40)
            centroids.append((xs.mean(), ys.mean()))
        return float(np.std(centroids, axis=0).max()), float(np.std([img.mean() for img in images]))

    hard_framing, hard_exposure = spread([render_hard_radiograph(s, 256) for s in specs])
    default_framing, default_exposure = spread([synth_render.render_radiograph(s, 256) for s in specs])
    assert hard_framing > 1.5 * default_framing
    assert hard_exposure > default_exposure


def test_not_normal_findings_brighten_the_lung_fields():
    """Proxy for "opacity-like findings in the lung fields": the share of lung-zone pixels that the
    boxless findings brighten by at least 10 grey levels."""
    size = 256
    zone = _lung_zone(size)

    def brightened(render, spec) -> float:
        diff = render(spec, size).astype(int) - render(spec, size, with_findings=False).astype(int)
        return float(((diff >= 10) & zone).sum() / zone.sum())

    not_normal = [brightened(render_hard_radiograph, s) for s in _specs(synth_sample.NOT_NORMAL, 12, seed=7)]
    normal = [brightened(render_hard_radiograph, s) for s in _specs(synth_sample.NORMAL, 6, seed=7)]
    default = [
        brightened(synth_render.render_radiograph, s) for s in _specs(synth_sample.NOT_NORMAL, 12, seed=7)
    ]
    assert max(normal) == 0.0
    assert np.mean(np.array(not_normal) > 0.01) >= 0.6
    # The default level draws the same findings small (cardiomegaly, common with edema, is drawn alike by
    # both levels and brightens the lung zone's edge in both).
    assert np.mean(not_normal) > 1.5 * np.mean(default) > 0


def test_sample_hard_findings():
    rng = np.random.default_rng(8)
    not_normal = [sample_hard_findings(rng, synth_sample.NOT_NORMAL) for _ in range(2000)]
    assert all(f and set(f) <= set(HARD_FINDINGS) and list(f) == sorted(f) for f in not_normal)
    with_mimic = np.mean([bool(set(f) & set(MIMICS)) for f in not_normal])
    assert 0.7 < with_mimic < 0.8  # MIMIC_RATE = 0.75
    assert all(sample_hard_findings(rng, synth_sample.NORMAL) == () for _ in range(100))
    lung_opacity = [sample_hard_findings(rng, synth_sample.LUNG_OPACITY) for _ in range(100)]
    assert not set().union(*lung_opacity) & {"mass", "atelectasis", "edema", "interstitial", "scarring"}
    # Edema, the mimic drawn as opacity, is the commonest and mostly comes with an enlarged heart: the
    # whole-film clue an image classifier can learn and a box detector hardly uses.
    edema = [f for f in not_normal if "edema" in f]
    assert 0.3 < len(edema) / len(not_normal) < 0.5
    assert np.mean(["cardiomegaly" in f for f in edema]) > 0.6
    assert np.mean(["cardiomegaly" in f for f in not_normal if "edema" not in f]) < 0.45


def test_hard_patients_keep_the_default_sampling():
    default = synth_sample.sample_patients(np.random.default_rng(9), 30, BOX_SETS)
    hard = sample_hard_patients(np.random.default_rng(9), 30, BOX_SETS)
    for d, h in zip(default, hard, strict=True):
        assert (d.patient_id, d.cls, d.render_seed, d.age, d.sex, d.view) == (
            h.patient_id,
            h.cls,
            h.render_seed,
            h.age,
            h.sex,
            h.view,
        )
        np.testing.assert_array_equal(d.boxes_xywh_px, h.boxes_xywh_px)


def test_intensity_stats_closed_form():
    img = np.zeros((100, 100), np.uint8)
    img[:, 50:] = 255  # half black, half white
    stats = intensity_stats(img)
    assert stats["mean"] == pytest.approx(127.5)
    assert stats["std"] == pytest.approx(127.5)
    assert (stats["p1"], stats["p25"], stats["p75"], stats["p99"]) == (0.0, 0.0, 255.0, 255.0)
    assert stats["frac_lt20"] == stats["frac_gt235"] == 0.5
    # The Laplacian is 255 on the two columns beside the edge (and 0 elsewhere, borders reflected).
    assert stats["lap"] == pytest.approx(2 * 255 / 100)
    flat = intensity_stats(np.full((64, 64), 100, np.uint8))
    assert flat["lap"] == flat["lap256"] == flat["std"] == 0.0
    with pytest.raises(ValueError, match="uint8"):
        intensity_stats(img.astype(np.float32))


def test_synth_vs_real_script(tmp_path: Path, sample_dir: Path):
    path = REPO_ROOT / "scripts" / "synth_vs_real.py"
    module_spec = importlib.util.spec_from_file_location("synth_vs_real", path)
    script = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(script)

    out = tmp_path / "cmp"
    summaries = script.compare(sample_dir / "stage_2_train_images", out, n=2, seed=0)
    assert set(summaries) == {"real", "hard", "default"}
    assert (out / "grid.png").stat().st_size > 0
    text = (out / "stats.md").read_text()
    assert "| p50 |" in text and "say nothing about real X-rays" in text.replace("\n", " ")
    assert script.main(["--real", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_edema_is_drawn_as_opacity_in_boxes_like_the_real_ones():
    """The edema mimic is the opacity drawing itself, in boxes sampled like the real Lung Opacity boxes:
    nothing inside its box tells it from pneumonia."""
    specs = [
        s for s in sample_hard_patients(np.random.default_rng(11), 400, BOX_SETS) if "edema" in s.findings
    ]
    boxes = np.concatenate([mimic_boxes(s) for s in specs])
    real = np.concatenate(BOX_SETS)
    for col in (2, 3):  # width and height: the real boxes' means within 15%
        assert abs(boxes[:, col].mean() / real[:, col].mean() - 1) < 0.15
    assert (boxes[:, :2] >= 0).all() and (boxes[:, :2] + boxes[:, 2:] <= NATIVE_SIZE).all()
    assert all(
        len(mimic_boxes(s)) == 0
        for s in _specs(synth_sample.NOT_NORMAL, 20, seed=2)
        if "edema" not in s.findings
    )
    imgsz = 512
    margin = int(0.06 * imgsz)
    for spec in specs[:3]:
        # Rendered without its findings and with the mimic's boxes as opacities instead, the film differs
        # from the one with edema only where the other findings are: inside the mimic boxes it is the same
        # drawing (same code; another random stream, so not the same pixels).
        diff = render_hard_radiograph(spec, imgsz).astype(int) - render_hard_radiograph(
            spec, imgsz, with_findings=False
        ).astype(int)
        inside = np.zeros((imgsz, imgsz), bool)
        for x, y, w, h in mimic_boxes(spec) * imgsz / NATIVE_SIZE:
            inside[int(y) + margin : int(y + h) - margin, int(x) + margin : int(x + w) - margin] = True
        assert (diff[inside] > 0).mean() > 0.1 and diff[inside].mean() > 2
