"""The inference door: a :class:`Predictor` built from what tuning left behind, predicting exactly as tuned.

Tuning (``analysis rescore``, ``python -m train``, ``python -m train folds``) records in a ``kaggle*.json``
everything a prediction depends on. :meth:`TunedSetting.from_run` reads it back, and nothing else decides
how to predict:

- the models (a run's weights; every fold of a fold set), each one's image size, flip TTA;
- how their boxes are fused (the tuned WBF setting; a fold set tuned out of fold: ``oof_fusion`` of
  :data:`analysis.record.defaults.DEFAULTS`);
- the confidence threshold and box scale;
- the classifier(s), their TTA and the gate (hard or soft).

A setting that does not match its weights is one line (:class:`rsna_yolo.core.cli.UserError`): a model that is
missing, or whose content changed since it was tuned (retrained, or a ``kaggle.json`` copied from another
run), a fold set whose folds are not the ones tuned.

:meth:`Predictor.predict` runs the whole path on images (PNGs or DICOMs): boxes at the prediction floor
(:func:`analysis.inference.predict.predict_images`), P(opacity) where the gate needs it
(:func:`analysis.inference.classifier.predict_probs`), the gate (:func:`analysis.tuning.gating.apply_gate`),
then the threshold and box scale (:func:`analysis.scoring.submission.select_boxes`). ``analysis submit``,
``analysis show``, the ablation and rescoring's own inference go through here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from analysis.record.defaults import DEFAULTS
from analysis.scoring.submission import select_boxes
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import PRED_COLUMNS
from rsna_yolo.core.runs import (
    KAGGLE_JSON,
    KAGGLE_OOF_GATED_JSON,
    KAGGLE_OOF_JSON,
    OOF,
    expand_weights,
    fold_runs,
    kaggle_path,
    read_kaggle,
)


def file_sha1(path: str | Path) -> str:
    """SHA-1 of a file's content (what identifies weights in a cache key or a tuned setting)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class TunedSetting:
    """How to predict: everything a ``kaggle*.json`` recorded (or the defaults, for weights never tuned).

    ``sizes``: the inference size of each model (None: each its own training size); ``wbf``: the fusion of
    several models / flips (None: :data:`DEFAULTS`' ``wbf_iou``); ``gate``: ``{"mode", "gate"}`` or None;
    ``source``: the file it was read from (None when built by hand)."""

    weights: tuple[Path, ...]
    conf: float = DEFAULTS.default_conf
    box_scale: float = 1.0
    sizes: tuple[int, ...] | None = None
    tta: bool = False
    wbf: Mapping | None = None
    gate: Mapping | None = None
    classifiers: tuple[Path, ...] = ()
    classifier_tta: bool = False
    source: Path | None = None
    info: Mapping = field(default_factory=dict)

    @property
    def fused(self) -> bool:
        """Several models or flip TTA: their boxes are fused."""
        return len(self.weights) > 1 or self.tta

    @property
    def floor(self) -> float:
        """The confidence boxes are predicted at: the threshold itself for one model without gate; the
        prediction floor (or the threshold if lower) when boxes are fused or gated, because fusion and a
        soft gate change confidences, so weak boxes count (the floor the setting was tuned from)."""
        return min(self.conf, DEFAULTS.prediction_floor) if self.fused or self.gate else self.conf

    def apply_gate(self, raw: pd.DataFrame, p_opacity: Mapping[str, float]) -> pd.DataFrame:
        """``raw`` gated as tuned (:func:`analysis.tuning.gating.apply_gate`), or as it is without a gate."""
        if not self.gate:
            return raw
        from analysis.record.gate import apply_gate

        return apply_gate(raw, p_opacity, mode=self.gate["mode"], gate=self.gate.get("gate") or 0.0)

    def describe(self) -> str:
        """One line: where the setting comes from and what it is."""
        models = f"{len(self.weights)} model(s)" + (" + flip TTA" if self.tta else "")
        gate = ""
        if self.gate:
            g = self.gate
            gate = ", soft gate" if g["mode"] == "soft" else f", hard gate {g.get('gate') or 0:g}"
            gate += f" ({len(self.classifiers)} classifier(s))"
        where = f"{self.source}: " if self.source else ""
        return f"{where}{models}, conf >= {self.conf:g}, box scale {self.box_scale:g}{gate}"

    @classmethod
    def from_run(cls, path: str | Path, *, check_weights: bool = True) -> TunedSetting:
        """The setting a run folder (its ``kaggle.json``; ``RUN/kaggle_gated`` for the gated one), a fold set
        (its ``kaggle_oof_gated.json`` when there is one, else ``kaggle_oof.json``) or any ``kaggle*.json``
        was tuned to; :class:`UserError` (one line) when there is none or it does not match its weights.
        ``check_weights=False`` reads the setting alone (a reader of cached predictions needs no model)."""
        file = tuned_file(path)
        data = read_kaggle(file)
        if data is None:
            raise UserError(
                f"{file}: no tuned conf/scale (no such file); run `python -m analysis rescore` first"
            )
        try:
            conf, box_scale = float(data["conf"]), float(data.get("scale") or 1.0)
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"{file}: no tuned conf/scale ({exc}); run `python -m analysis rescore` first"
            ) from exc
        gate = data.get("gate")
        if gate is not None and (not isinstance(gate, dict) or gate.get("mode") not in DEFAULTS.gate_modes):
            raise UserError(f"{file}: gate {gate!r} is not a tuned gate ({{'mode', 'gate'}})")
        info = {k: data.get(k) for k in ("split", "n_images", "score", "score_heldout", "data")}
        if data.get("split") == OOF:
            return cls._from_fold_set(file, data, conf, box_scale, gate, info, check_weights)
        weights = data.get("weights")
        weights = [weights] if isinstance(weights, str) else list(weights or [])
        if not weights and check_weights:
            raise UserError(f"{file}: names no weights")
        if check_weights:
            _check_files(file, weights, (data.get("prediction_signature") or {}).get("weights"), "model")
        imgsz = data.get("imgsz")
        sizes = (
            None
            if imgsz is None
            else tuple(int(s) for s in ([imgsz] * len(weights) if isinstance(imgsz, int) else imgsz))
        )
        classifiers: list = []
        if gate is not None:
            classifiers = data.get("classifier") or []
            classifiers = [classifiers] if isinstance(classifiers, str) else list(classifiers)
            if not classifiers:
                raise UserError(f"{file}: a gate but no classifier named")
            if check_weights:
                recorded = (data.get("classifier_signature") or {}).get("weights")
                _check_files(file, classifiers, recorded, "classifier")
        return cls(
            weights=tuple(Path(w) for w in weights),
            conf=conf,
            box_scale=box_scale,
            sizes=sizes,
            tta=bool(data.get("tta", False)),
            wbf=dict(data["wbf"]) if isinstance(data.get("wbf"), dict) else None,
            gate=dict(gate) if gate else None,
            classifiers=tuple(Path(c) for c in classifiers),
            classifier_tta=bool(data.get("classifier_tta", False)),
            source=file,
            info=info,
        )

    @classmethod
    def _from_fold_set(
        cls, file: Path, data: dict, conf, box_scale, gate, info, check_weights
    ) -> TunedSetting:
        """A fold set tuned out of fold: every fold's weights, fused keeping each box's best fold confidence
        (``oof_fusion``: the scale its threshold was tuned on, by single models)."""
        set_dir = file.parent
        folds = fold_runs(set_dir)
        if not folds and check_weights:
            raise UserError(f"{file}: tuned out of fold, but {set_dir} holds no fold runs with weights")
        tuned = data.get("folds")
        if isinstance(tuned, dict) and len(tuned) != len(folds):
            raise UserError(
                f"{file}: tuned on {len(tuned)} folds, but {set_dir} has {len(folds)} with weights "
                "(a fold missing or added since: rerun python -m train folds)"
            )
        weights = [w for w, _ in expand_weights([set_dir])] if folds else []
        classifiers: list[Path] = []
        if gate is not None and check_weights:
            source = data.get("classifier")
            if not source or not Path(str(source)).exists():
                raise UserError(f"{file}: the gate's classifier {source} is missing")
            classifiers = [w for w, _ in expand_weights([source])]
        return cls(
            weights=tuple(weights),
            conf=conf,
            box_scale=box_scale,
            wbf=dict(DEFAULTS.oof_fusion) if len(weights) > 1 else None,
            gate=dict(gate) if gate else None,
            classifiers=tuple(classifiers),
            source=file,
            info=info,
        )


def tuned_file(path: str | Path) -> Path:
    """The ``kaggle*.json`` a path stands for: the file itself; a fold set's ``kaggle_oof_gated.json`` (when
    it exists) or ``kaggle_oof.json``; a run folder's ``kaggle.json``."""
    path = Path(path)
    if path.suffix == ".json":
        return path
    if path.is_dir() and not (path / KAGGLE_JSON).is_file() and fold_runs(path):
        gated = path / KAGGLE_OOF_GATED_JSON
        return gated if gated.is_file() else path / KAGGLE_OOF_JSON
    return kaggle_path(path)


def _check_files(file: Path, paths: Sequence[str | Path], signature: list | None, what: str) -> None:
    """Every file exists and, when the tuning recorded its SHA-1, still has that content."""
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise UserError(f"{file}: the {what} it was tuned with is missing: {missing[0]}")
    recorded = {str(s.get("path")): s.get("sha1") for s in signature or [] if isinstance(s, dict)}
    for p in paths:
        sha1 = recorded.get(str(Path(p).resolve()))
        if sha1 and file_sha1(p) != sha1:
            raise UserError(
                f"{file}: {what} {p} changed since it was tuned (retrained, or a setting of another run): "
                "rescore it (python -m analysis rescore)"
            )


@dataclass(frozen=True)
class Prediction:
    """What :meth:`Predictor.predict` found. Frames are :data:`rsna_yolo.core.layout.PRED_COLUMNS` in
    source pixels:
    ``raw`` (every box at the setting's floor, fused), ``boxes`` (after the gate, threshold and box scale:
    what a submission holds), ``removed`` (boxes above the threshold that the gate removed, unscaled).
    ``p_opacity``: P(Lung Opacity) of the images the classifier saw; ``failed``: patientId -> why an image
    could not be read (it has no box)."""

    ids: list[str]
    raw: pd.DataFrame
    boxes: pd.DataFrame
    removed: pd.DataFrame
    p_opacity: dict[str, float]
    failed: dict[str, str]


class Predictor:
    """Predicts as a :class:`TunedSetting` says (``batch``, ``device``, ``workers``: how, not what)."""

    def __init__(self, setting: TunedSetting, *, batch: int = 16, device=None, workers: int | None = None):
        self.setting = setting
        self.batch, self.device, self.workers = batch, device, workers

    @classmethod
    def from_run(cls, path: str | Path, **kwargs) -> Predictor:
        """:meth:`TunedSetting.from_run` of ``path``, as a predictor."""
        return cls(TunedSetting.from_run(path), **kwargs)

    def raw(
        self,
        images: Sequence[str | Path],
        *,
        png_scales: Mapping[str, float] | None = None,
        floor: float | None = None,
        keep_parts: bool = False,
        progress: bool = True,
    ) -> pd.DataFrame:
        """Every box of the setting's models at ``floor`` (default :attr:`TunedSetting.floor`), fused with
        its fusion, in source pixels; ``attrs["failed"]`` lists unreadable images, ``attrs["parts"]`` each
        model's own boxes with ``keep_parts``."""
        from analysis.inference.predict import predict_images

        s = self.setting
        return predict_images(
            list(s.weights), list(images), imgsz=list(s.sizes) if s.sizes else None,
            floor=s.floor if floor is None else floor, batch=self.batch, tta=s.tta, device=self.device,
            png_scales=png_scales, wbf=s.wbf if s.fused else None, keep_parts=keep_parts,
            workers=self.workers, progress=progress,
        )  # fmt: skip

    def probabilities(self, images: Sequence[str | Path], *, progress: bool = True) -> pd.DataFrame:
        """The classifiers' ``patientId, p_opacity, p_<class>...`` of ``images`` (averaged; flips with the
        setting's classifier TTA)."""
        from analysis.inference.classifier import predict_probs

        if not self.setting.classifiers:
            raise UserError("this setting has no classifier")
        return predict_probs(list(self.setting.classifiers), list(images), tta=self.setting.classifier_tta,
                             batch=self.batch, device=self.device, workers=self.workers,
                             progress=progress)  # fmt: skip

    def predict(
        self,
        images: Sequence[str | Path],
        *,
        png_scales: Mapping[str, float] | None = None,
        all_probabilities: bool = False,
        progress: bool = True,
    ) -> Prediction:
        """Predict ``images`` (patientId = file stem) exactly as tuned. The classifier sees the images with
        a box (the others have nothing to gate), or every image with ``all_probabilities``."""
        images = [Path(p) for p in images]
        raw = self.raw(images, png_scales=png_scales, progress=progress)
        failed = dict(raw.attrs.get("failed", {}))
        p_opacity: dict[str, float] = {}
        gated = raw
        if self.setting.gate:
            from analysis.record.gate import p_opacity_map

            with_boxes = set(raw["patientId"].astype(str))
            by_id = {p.stem: p for p in images if p.stem not in failed}
            seen = [by_id[i] for i in sorted(by_id) if all_probabilities or i in with_boxes]
            probs = (
                self.probabilities(seen, progress=progress)
                if seen
                else pd.DataFrame(columns=["patientId", "p_opacity"])
            )
            failed.update(probs.attrs.get("failed", {}))
            p_opacity = p_opacity_map(probs) if len(probs) else {}
            gated = self.setting.apply_gate(raw, p_opacity)
        return Prediction(
            ids=[p.stem for p in images],
            raw=raw[PRED_COLUMNS],
            **self.select(raw, gated),
            p_opacity=p_opacity,
            failed=failed,
        )

    def select(self, raw: pd.DataFrame, gated: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
        """``{"boxes", "removed"}`` of a raw frame and its gated version (default: ungated): the tuned
        threshold and box scale applied; ``removed`` holds the boxes above the threshold that the gate took
        away (rows keep their index through the gate, so they are found by it)."""
        s = self.setting
        gated = raw if gated is None else gated
        boxes = select_boxes(gated, conf=s.conf, box_scale=s.box_scale)[PRED_COLUMNS]
        above = raw[raw["conf"] >= s.conf]
        removed = above[~above.index.isin(boxes.index)][PRED_COLUMNS]
        return {"boxes": boxes, "removed": removed}

    def with_setting(self, **changes) -> Predictor:
        """A predictor of the same setting with ``changes`` (fields of :class:`TunedSetting`)."""
        return Predictor(replace(self.setting, **changes), batch=self.batch, device=self.device,
                         workers=self.workers)  # fmt: skip
