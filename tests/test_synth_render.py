"""Tests of ``convert.synth_render``: what a detector must learn is in the rendered film."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, subprocess_env

from convert import synth_render, synth_sample

# ----------------------------------------------------------------------------------------------------
# Rendering: what a detector must learn is there
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered_specs() -> list[synth_sample.PatientSpec]:
    return synth_sample.sample_patients(np.random.default_rng(5), 40, synth_sample.load_box_sets())


def test_opacity_is_visibly_brighter_inside_its_box(rendered_specs):
    positives = [s for s in rendered_specs if s.cls == synth_sample.LUNG_OPACITY][:4]
    assert positives
    for spec in positives:
        with_opacity = synth_render.render_radiograph(spec, 512).astype(np.float64)
        without = synth_render.render_radiograph(spec, 512, with_boxes=False).astype(np.float64)
        diff = with_opacity - without
        far = np.ones(diff.shape, bool)
        for x, y, w, h in (spec.boxes_xywh_px / 2).astype(int):
            centre = diff[y + h // 4 : y + 3 * h // 4, x + w // 4 : x + 3 * w // 4]
            assert centre.mean() > 20, (spec.patient_id, centre.mean())  # gray levels of 255
            far[max(0, y - h // 4) : y + h + h // 4, max(0, x - w // 4) : x + w + w // 4] = False
        assert np.abs(diff[far]).max() <= 1  # nothing changes away from the boxes


def test_not_normal_findings_are_visible(rendered_specs):
    not_normal = [s for s in rendered_specs if s.cls == synth_sample.NOT_NORMAL][:6]
    assert not_normal
    for spec in not_normal:
        img = synth_render.render_radiograph(spec, 256).astype(np.int16)
        plain = synth_render.render_radiograph(spec, 256, with_findings=False).astype(np.int16)
        assert (np.abs(img - plain) > 30).sum() >= 15, spec.findings  # a visible mark, at least a nodule


def test_render_is_a_radiograph_layout(rendered_specs):
    """Dark background at the sides, darker lungs than the mediastinum, no boxes or findings needed."""
    spec = next(s for s in rendered_specs if s.cls == synth_sample.NORMAL)
    img = synth_render.render_radiograph(spec, 256).astype(np.float64)
    corner = img[200:, :6].mean()
    lungs = (img[100:160, 60:90].mean() + img[100:160, 166:196].mean()) / 2
    mediastinum = img[100:160, 122:134].mean()
    assert corner < 40 and lungs + 30 < mediastinum


def _clone(dst: Path) -> Path:
    """A copy of the repository's tracked files at ``dst/repo`` (what `git clone` gives a user)."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    )
    for name in files.stdout.decode().split("\0"):
        if name and (REPO_ROOT / name).is_file():
            (dst / "repo" / name).parent.mkdir(parents=True, exist_ok=True)
            (dst / "repo" / name).write_bytes((REPO_ROOT / name).read_bytes())
    return dst / "repo"


def test_synth_bytes_do_not_depend_on_a_real_sample_beside_the_clone(tmp_path: Path, sample_dir: Path):
    """Two clones, one with ../shared/rsna_sample beside it, one bare: the same command, the same bytes."""
    outputs = []
    for case in ("with_sample", "bare"):
        repo = _clone(tmp_path / case)
        if case == "with_sample":
            (repo.parent / "shared").mkdir()
            (repo.parent / "shared" / "rsna_sample").symlink_to(sample_dir)
        env = subprocess_env()
        env.pop("RSNA_SAMPLE_DIR", None)
        env["PYTHONPATH"] = str(repo)
        out = tmp_path / case / "synth"
        cmd = [sys.executable, "-m", "convert", "synth", "--out", str(out), "--patients", "12"]
        cmd += ["--test-patients", "2", "--imgsz", "128", "--seed", "3", "--workers", "1"]
        subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, check=True)
        outputs.append({p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert outputs[0].keys() == outputs[1].keys() and len(outputs[0]) == 12 + 2 + 4
    assert all(outputs[0][k] == outputs[1][k] for k in outputs[0])
