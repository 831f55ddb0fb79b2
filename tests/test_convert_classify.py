"""``convert classify`` / ``convert rsna --classify``: the classification view of a converted dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO_ROOT, subprocess_env

from convert.classify import write_classify_view
from convert.rsna import convert_rsna
from convert.synth import generate
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import BINARY_DIRS, CLASS_DIRS


def _quiet(*_a, **_k) -> None:
    return None


@pytest.fixture(scope="module")
def folded(tmp_path_factory) -> Path:
    """A converted synthetic dataset (30 patients, 3 folds), without a classification view."""
    root = tmp_path_factory.mktemp("classify")
    generate(root / "kaggle", 30, 0, seed=2, imgsz=128)
    convert_rsna(root / "kaggle", root / "D", imgsz=64, folds=3, workers=1, progress=False, echo=_quiet)
    return root / "D"


def _links(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in folder.glob("*.png")}


def test_view_links_resolve_and_count_the_manifest_per_class(folded: Path):
    summary = write_classify_view(folded)
    manifest = pd.read_csv(folded / "manifest.csv", dtype={"patientId": str})
    view = folded / "classify"
    for split in ("train", "val"):
        rows = manifest[manifest["split"] == split]
        expected = rows.groupby("class").size().rename(index=CLASS_DIRS).to_dict()
        assert summary["counts"][split] == dict(sorted(expected.items()))
        for cls, folder in CLASS_DIRS.items():
            links = _links(view / split / folder)
            assert set(links) == set(rows.loc[rows["class"] == cls, "patientId"])
            for pid, link in links.items():
                assert link.is_symlink() and not os.path.isabs(os.readlink(link))  # relative: D can move
                assert link.resolve() == (folded / "images" / split / f"{pid}.png").resolve()
    assert not (view / "test").exists()


def test_view_per_fold_matches_the_fold_lists(folded: Path):
    summary = write_classify_view(folded)
    assert summary["folds"] == [0, 1, 2]
    labelled = pd.read_csv(folded / "manifest.csv", dtype={"patientId": str}).query("split != 'test'")
    for k in range(3):
        val_ids = {Path(ln).stem for ln in (folded / "folds" / f"fold{k}_val.txt").read_text().split()}
        fold_val = folded / "classify" / f"fold{k}" / "val"
        got = {pid for f in CLASS_DIRS.values() for pid in _links(fold_val / f)}
        assert got == val_ids == set(labelled.loc[labelled["fold"] == k, "patientId"])
        n_train = sum(summary["counts"][f"fold{k}/train"].values())
        assert n_train + len(val_ids) == len(labelled)


def test_binary_view_and_a_rerun_replaces_the_view(folded: Path):
    summary = write_classify_view(folded, binary=True, folds=False)
    view = folded / "classify_binary"
    assert set(p.name for p in (view / "train").iterdir()) <= set(BINARY_DIRS.values())
    total = sum(sum(c.values()) for c in summary["counts"].values())
    assert total == len(pd.read_csv(folded / "manifest.csv").query("split != 'test'"))
    assert not (view / "fold0").exists() and summary["folds"] == []
    (view / "train" / "stale.png").symlink_to("nowhere")
    write_classify_view(folded, binary=True, folds=False)
    assert not (view / "train" / "stale.png").is_symlink()
    assert not list(folded.glob(".classify*tmp"))


def test_bad_manifest_class_and_missing_png_are_one_line(folded: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / "D"
    shutil.copytree(folded, copy, symlinks=True)
    data_yaml = (copy / "data.yaml").read_text().replace(str(folded), str(copy))  # path: is absolute
    (copy / "data.yaml").write_text(data_yaml)
    manifest = pd.read_csv(copy / "manifest.csv", dtype=str, keep_default_na=False)
    manifest.loc[manifest.index[0], "class"] = "Pneumothorax"
    manifest.to_csv(copy / "manifest.csv", index=False)
    with pytest.raises(UserError, match=r"\['Pneumothorax'\] are not the three RSNA classes"):
        write_classify_view(copy)
    manifest.loc[manifest.index[0], "class"] = "Normal"
    manifest.to_csv(copy / "manifest.csv", index=False)
    next((copy / "images" / "val").glob("*.png")).unlink()
    with pytest.raises(UserError, match=r"missing \(1 PNG\(s\) of the manifest\)"):
        write_classify_view(copy)


@pytest.mark.slow
def test_cli_on_an_existing_dataset_and_plain_yolo_classify_trains_on_it(folded: Path, tmp_path: Path):
    """A dataset converted before the view existed gets it from `convert classify`, and plain Ultralytics
    trains a classifier on it as it is (one epoch, the three class folders as its classes)."""
    env = subprocess_env()
    done = subprocess.run(
        [sys.executable, "-m", "convert", "classify", str(folded), "--no-folds"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "lung_opacity" in done.stdout and "yolo classify train data=" in done.stdout
    yolo = Path(sys.executable).with_name("yolo")
    cmd = [str(yolo), "classify", "train", f"data={folded / 'classify'}", "model=yolo11n-cls.yaml",
           "epochs=1", "imgsz=32", "batch=8", "workers=0", f"project={tmp_path}", "name=cls",
           "plots=False"]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "cls" / "weights" / "last.pt").is_file()
    import torch

    names = torch.load(tmp_path / "cls" / "weights" / "last.pt", weights_only=False)["model"].names
    assert sorted(names.values()) == sorted(CLASS_DIRS.values())


def test_rsna_binary_without_classify_is_refused(tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "convert", "rsna", "--src", str(tmp_path), "--out", str(tmp_path / "o"),
         "--binary"],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "--binary is an option of --classify" in done.stderr
    assert not (tmp_path / "o").exists()
