"""What is checked before any long step runs: each a one-line :class:`UserError`.

- the data: a Kaggle download's folder holds its two CSVs (and says when there are no test films);
- the weights: every ``model=`` / ``pretrained=`` is a local file or a built-in YAML (offline: a hub name
  such as ``yolo11s.pt`` must be in ``weights/`` or given as a path), every ``cfg=`` exists;
- the GPU: visible when the recipe asks for one (``gpu: true`` or a CUDA ``device``);
- the disk: room for what the plan says the steps write (the probe's figures, or a coarse rule without one);
- the data folder: one converted before with another split is never re-split (the converter's own check,
  run here before the data step).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rsna_yolo.core.cli import UserError
from rsna_yolo.recipe.schema import DETECTOR_OF_THIS_RECIPE
from rsna_yolo.recipe.steps import DATASET_DIR, LABEL_CSVS, REPO, TEST_IMAGES


def check_data(recipe: dict) -> list[str]:
    """The data source; returns notes (no test films: no submission step)."""
    from rsna_yolo.recipe.steps import has_test_films

    kaggle = recipe["data"]["kaggle"]
    if kaggle is not None:
        root = Path(kaggle).expanduser()
        if not root.is_dir():
            raise UserError(f"data.kaggle: {root}: no such folder (the Kaggle download, unzipped)")
        missing = [n for n in LABEL_CSVS if not (root / n).is_file()]
        if missing:
            raise UserError(f"data.kaggle: {root}: no {missing[0]} (the Kaggle download, stage 2 names)")
    if has_test_films(recipe):
        return []
    where = "no test patients" if kaggle is None else f"no {TEST_IMAGES} in {kaggle}"
    return [f"{where}: the recipe stops before the submission (no submit step)"]


def check_weights(recipe: dict) -> None:
    """Every model, hyperparameter file and pretrained source is here, offline."""
    from rsna_yolo.train.args import resolve_model

    for section in ("detector", "classifier"):
        part = recipe[section]
        if part is None:
            continue
        try:
            resolve_model(part["model"])
        except UserError as exc:
            raise UserError(f"{section}.model: {exc}") from None
        if part["cfg"] and not _exists(part["cfg"]):
            raise UserError(f"{section}.cfg: {part['cfg']}: no such file")
        pretrained = part["pretrained"]
        if (
            pretrained
            and pretrained != DETECTOR_OF_THIS_RECIPE
            and not Path(pretrained).expanduser().exists()
        ):
            raise UserError(f"{section}.pretrained: {pretrained}: no such weights file or run folder")


def check_sweep(recipe: dict) -> None:
    sweep = recipe["sweep"]
    if sweep is not None and not _exists(sweep["file"]):
        raise UserError(f"sweep.file: {sweep['file']}: no such sweep file (see yolo_configs/sweeps/)")


def _exists(value: str) -> bool:
    path = Path(value).expanduser()
    return path.is_file() or (REPO / path).is_file()


def wants_gpu(recipe: dict) -> bool:
    """``gpu: true``, or a ``device`` that is not the CPU."""
    device = recipe["device"]
    return bool(recipe["gpu"] or (device is not None and str(device).lower() not in ("cpu", "mps")))


def check_gpu(recipe: dict) -> None:
    device = recipe["device"]
    if not wants_gpu(recipe):
        return
    import torch

    if not torch.cuda.is_available():
        raise UserError(
            f"the recipe asks for a GPU (gpu: {recipe['gpu']}, device: {device}) and this machine "
            "shows none to PyTorch; --set device=cpu gpu=false to run on the CPU"
        )


def check_disk(out: Path, needed_bytes: float) -> None:
    """Room on the output folder's disk for ``needed_bytes`` (with a 10% margin)."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed_bytes * 1.1 > free:
        raise UserError(
            f"--out {out}: {free / 1e9:.1f} GB free on its disk, the recipe writes about "
            f"{needed_bytes / 1e9:.1f} GB; choose another folder or free some space"
        )


RUN_BYTES = 150e6
"""A training run's folder (its weights three times over, plots, logs): the coarse rule's allowance."""
DICOM_BYTES_PER_PIXEL = 0.15
"""A synthetic JPEG-Baseline film's bytes per pixel (the generator's 1024-px films are about 150 KB)."""


def coarse_bytes(recipe: dict, films: int) -> float:
    """What a recipe writes, without a probe: the synthetic films, the PNGs (the converter's own rule,
    :data:`convert.jobs.PNG_BYTES_PER_PIXEL`), and every training run."""
    from convert.jobs import PNG_BYTES_PER_PIXEL

    syn = recipe["data"]["synthetic"]
    dicoms = films * syn["imgsz"] ** 2 * DICOM_BYTES_PER_PIXEL if syn else 0.0
    pngs = films * recipe["convert"]["imgsz"] ** 2 * PNG_BYTES_PER_PIXEL
    runs = max(recipe["convert"]["folds"], 1) * (1 + (recipe["classifier"] is not None)) * RUN_BYTES
    return dicoms + pngs + runs


def check_split(recipe: dict, out: Path) -> None:
    from convert.rsna import refuse_resplit

    conv = recipe["convert"]
    folds = conv["folds"] if conv["folds"] > 1 else 0
    refuse_resplit(
        out / DATASET_DIR,
        folds=folds,
        seed=conv["seed"],
        val_fraction=None if folds else conv["val_fraction"],
    )
