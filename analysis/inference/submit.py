"""A Kaggle submission from trained weights (``analysis submit``): predict, write, validate.

- :func:`read_setting` -> the :class:`~analysis.inference.predictor.TunedSetting` a run was tuned to, from
  which :func:`tuned_settings` (threshold and box scale), :func:`tuned_gate` and the fusion are taken;
- :func:`find_manifest` -> the ``manifest.csv`` whose PNG scales map converted PNGs back to the source frame;
- :func:`make_submission` -> the whole command: predict a folder of test DICOMs (or converted PNGs), write
  one row per image, validate the file, and return a :class:`SubmitSummary`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from analysis.inference.predictor import Predictor
from analysis.record.defaults import DEFAULTS
from analysis.record.setting import TunedSetting
from analysis.scoring.checks import check_settings
from analysis.scoring.submission import image_ids, validate_submission, write_submission
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import MANIFEST_CSV, read_manifest
from rsna_yolo.core.runs import OOF, expand_weights


@dataclass(frozen=True)
class SubmitSummary:
    """What :func:`make_submission` wrote: ``path``, patients, those with boxes, boxes, the threshold and box
    scale used, and the images that could not be read (patientId -> reason; each has an empty row)."""

    path: Path
    n_patients: int
    n_with_boxes: int
    n_boxes: int
    conf: float
    box_scale: float
    failed: dict[str, str]
    gate: dict | None = None


def read_setting(from_run: str | Path) -> TunedSetting:
    """The setting ``from_run`` was tuned to (:meth:`TunedSetting.from_run`: a run folder's ``kaggle.json``, a
    fold set's out-of-fold file, or the ``kaggle*.json`` given), read without checking its weights: a
    submission predicts with the weights it is given, which :func:`make_submission` compares."""
    return TunedSetting.from_run(from_run, check_weights=False)


def tuned_settings(
    from_run: str | Path, tta: bool = False, n_weights: int = 1, *, echo: Callable[[str], object] = print
) -> tuple[float, float]:
    """``(conf, box_scale)`` ``from_run`` was tuned to (:func:`read_setting`); ``echo`` gets a warning when it
    was tuned with other TTA / ensembling than ``tta`` / ``n_weights``."""
    setting = read_setting(from_run)
    note_mismatch(setting, tta, n_weights, echo)
    return setting.conf, setting.box_scale


def note_mismatch(setting: TunedSetting, tta: bool, n_weights: int, echo: Callable[[str], object]) -> None:
    """A line for ``echo`` when the submission's models or TTA are not those the setting was tuned with."""
    tuned_n = max(len(setting.weights), 1)
    if setting.info.get("split") == OOF and (tta or n_weights > 1):
        echo(
            f"note: {setting.source} was tuned out of fold, on each fold's own model; this submission uses "
            f"{n_weights} model(s), TTA {tta}, with that threshold, fused keeping each box's highest "
            "confidence (WBF conf_type max: the scale the threshold was tuned on; a fold set has no "
            "held-out images to tune its fusion on)"
        )
    elif setting.info.get("split") != OOF and (setting.tta, tuned_n) != (tta, n_weights):
        echo(
            f"warning: {setting.source} was tuned with {tuned_n} model(s), TTA {setting.tta}; this "
            f"submission uses {n_weights}, TTA {tta} (rescore the same combination with --tta / several "
            "weights)"
        )


def tuned_gate(setting: TunedSetting | None) -> dict:
    """``{"mode", "gate"}`` of a setting tuned by ``analysis rescore --classifier`` (or a fold set's gated
    out-of-fold file); :class:`UserError` when there is none."""
    if setting is None:
        raise UserError("--classifier needs the tuned gate: --from-run RUN/kaggle_gated (or --gate G)")
    if not setting.gate:
        raise UserError(
            f"{setting.source}: no tuned classifier gate; run `python -m analysis rescore RUN --data D "
            "--classifier CLS_RUN` and pass its kaggle_gated folder (or --gate G)"
        )
    return {"mode": setting.gate["mode"], "gate": setting.gate.get("gate")}


def find_manifest(folder: Path, images: dict[str, Path]) -> Path | None:
    """For converted PNGs (``D/images/<split>/``), the dataset's ``D/manifest.csv`` (its ``scale`` column,
    the PNG scale, maps boxes back to the source frame); None for DICOMs or when there is none."""
    if not any(p.suffix.lower() == ".png" for p in images.values()):
        return None
    folder = Path(folder).resolve()
    for parent in (folder, folder.parent, folder.parent.parent):
        if (parent / MANIFEST_CSV).is_file():
            return parent / MANIFEST_CSV
    return None


def read_png_scales(manifest_csv: Path) -> dict[str, float]:
    """patientId -> PNG scale from a ``manifest.csv`` of ``convert rsna``; :class:`UserError` without the
    ``scale`` column."""
    from analysis.inference.predict import manifest_png_scales

    manifest = read_manifest(manifest_csv)
    if "scale" not in manifest.columns:
        raise UserError(f"{manifest_csv}: no 'scale' column (expected a manifest.csv of `convert rsna`)")
    return manifest_png_scales(manifest)


def png_scales_for(
    folder: Path, images: dict[str, Path], png_scales_from=None, echo: Callable[[str], object] = print
) -> dict[str, float] | None:
    """The PNG scales of the images of ``folder``: from ``png_scales_from`` (a ``manifest.csv``), else from
    the manifest :func:`find_manifest` finds (said through ``echo``); None for DICOMs and lone PNGs."""
    manifest_csv = png_scales_from or find_manifest(Path(folder), images)
    if not manifest_csv:
        return None
    if not png_scales_from:
        echo(f"note: PNG scales from {manifest_csv}")
    return read_png_scales(Path(manifest_csv))


def make_submission(
    weights: Sequence[str | Path],
    images_dir: str | Path,
    out: str | Path,
    *,
    conf: float | None = None,
    box_scale: float | None = None,
    from_run: str | Path | None = None,
    tta: bool = False,
    imgsz: int | None = None,
    batch: int = 16,
    device=None,
    png_scales_from: str | Path | None = None,
    classifier: Sequence[str | Path] | None = None,
    classifier_tta: bool = False,
    gate: float | None = None,
    workers: int | None = None,
    backend: str = "torch",
    progress: bool = True,
    echo: Callable[[str], object] = print,
) -> SubmitSummary:
    """Predict every image of ``images_dir`` with ``weights`` (run folders or ``.pt``; several are fused with
    weighted box fusion, ``tta`` adds horizontal flips), write the submission to ``out`` and validate it.

    The threshold and box scale are ``from_run``'s tuned ones (:func:`tuned_settings`) else
    :data:`DEFAULTS`' ``default_conf`` and 1; ``conf`` / ``box_scale`` override them. Converted PNGs are
    mapped back to the source frame with the PNG scales of ``png_scales_from`` (a ``manifest.csv``; default:
    the one :func:`find_manifest` finds). An unreadable image gets an empty row. ``echo`` receives warnings
    and notes as they arise. ``workers`` threads decode and resize the next batch during inference
    (default: the cores this process may use).

    ``classifier`` (run folders or weights, averaged; ``classifier_tta`` adds flips) gates the boxes with
    :func:`analysis.tuning.gating.apply_gate`, the function rescoring tuned the gate with: the gate is
    ``from_run``'s (:func:`tuned_gate`) unless ``gate`` sets a hard one. ``backend``: ``torch`` or the
    exports of every model (:class:`Predictor`).
    """
    classifier = list(classifier or [])
    tuned = read_setting(from_run) if from_run else None
    gating = None
    if classifier:
        gating = {"mode": "hard", "gate": float(gate)} if gate is not None else tuned_gate(tuned)
    elif gate is not None:
        raise UserError("--gate needs --classifier (the classifier whose P(opacity) is gated)")
    weight_files = [w for w, _ in expand_weights(weights)]  # a fold set: every fold's weights
    if tuned is not None:
        note_mismatch(tuned, tta, len(weight_files), echo)
    conf = (tuned.conf if tuned else DEFAULTS.default_conf) if conf is None else conf
    box_scale = (tuned.box_scale if tuned else 1.0) if box_scale is None else box_scale
    check_settings(conf, box_scale)
    images = image_ids(images_dir)
    png_scales = png_scales_for(Path(images_dir), images, png_scales_from, echo)
    untuned = TunedSetting(weights=())  # the defaults: no sizes, no fusion of its own
    setting = (tuned or untuned).for_weights(weight_files, tta=tta, imgsz=imgsz)
    setting = replace(
        setting, conf=conf, box_scale=box_scale, gate=gating,
        classifiers=tuple(w for w, _ in expand_weights(classifier)), classifier_tta=classifier_tta,
    )  # fmt: skip
    predictor = Predictor(setting, batch=batch, device=device, workers=workers, backend=backend)
    prediction = predictor.predict(list(images.values()), png_scales=png_scales, progress=progress)
    failed = prediction.failed
    for pid, reason in failed.items():
        echo(f"warning: {pid}: {reason} -> empty row")
    # the boxes are the tuned setting's already: threshold and box scale applied
    write_submission(out, list(images), prediction.boxes)
    sub = validate_submission(out, images)
    counts = (len(sub.ids), sub.n_with_boxes, len(sub.boxes))
    return SubmitSummary(Path(out), *counts, conf, box_scale, failed, gating)
