"""The tuned record: what tuning chose, written once and read back once.

:class:`TunedSetting` is everything a prediction depends on (the models and their image sizes, flip TTA, the
fusion, the threshold and box scale, the classifier(s) and the gate). Tuning (``analysis rescore``,
``python -m train``, ``python -m train folds``) writes it with :meth:`TunedSetting.to_json` into a
``kaggle*.json`` beside the evidence that chose it (the sweep, the breakdown, the scores); inference reads it
back with :meth:`TunedSetting.from_run`, and nothing else decides how to predict. A setting that does not
match its weights is one line (:class:`rsna_yolo.core.cli.UserError`): a model that is missing, or whose
content changed since it was tuned (retrained, or a ``kaggle.json`` copied from another run), a fold set
whose folds are not the ones tuned. A fold set's fusion is decided here alone (:func:`fold_set_fusion`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.record.defaults import DEFAULTS
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_json_atomic
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


def fold_set_fusion() -> dict[str, Any]:
    """How a fold set is fused with a threshold tuned out of fold (on single models): ``oof_fusion`` of
    :data:`DEFAULTS`, each fused box keeping the confidence of the fold model most sure of it, the scale that
    threshold was tuned on. WBF's default averaging also counts each model's weak duplicates and the models
    that missed the box, which drags the fused confidence far below a single model's (docs/study.md: at the
    out-of-fold threshold 0.45, 2 of 60 test films kept a box with ``avg``, 8 with ``max``, 6-8 with each
    fold alone)."""
    return dict(DEFAULTS.oof_fusion)


def size_record(sizes: Sequence[int]) -> int | list[int]:
    """How ``kaggle.json`` and cache keys record inference sizes: one number when all are equal."""
    return int(sizes[0]) if len(set(sizes)) == 1 else [int(x) for x in sizes]


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

    def record(self, **evidence: Any) -> dict[str, Any]:
        """The ``kaggle*.json`` of this setting: ``evidence`` (how it was chosen: ``split``, ``data``,
        ``n_images``, ``score``, ``score_heldout``, ``sweep``, ``breakdown``, ...) in the order given, with
        the setting's own keys written the way :meth:`from_run` reads them: ``conf``, ``scale``; for a run
        (not a fold set, whose folds are its weights) ``weights``, ``imgsz``, ``tta`` and a tuned ``wbf``;
        with a gate, ``gate``, ``classifier`` and ``classifier_tta``."""
        fold_set = evidence.get("split") == OOF
        setting: dict[str, Any] = {"conf": self.conf, "scale": self.box_scale}
        if not fold_set:
            weights = [str(w) for w in self.weights]
            setting["weights"] = weights[0] if len(weights) == 1 else weights
            if self.sizes is not None:
                setting["imgsz"] = size_record(self.sizes)
        if not fold_set or self.tta:  # a fold set tuned with flip TTA keeps its TTA and tuned fusion
            setting["tta"] = bool(self.tta)
            if self.wbf is not None:
                setting["wbf"] = {k: self.wbf[k] for k in ("iou_thr", "skip_box_thr", "conf_type")}
        if self.gate:
            classifiers = [str(c) for c in self.classifiers]
            setting["gate"] = {"mode": self.gate["mode"], "gate": self.gate.get("gate")}
            setting["classifier"] = classifiers[0] if fold_set and len(classifiers) == 1 else classifiers
            if not fold_set:
                setting["classifier_tta"] = bool(self.classifier_tta)
        head = ("split", "weights", "data", "n_images", "folds", "score", "score_heldout", "conf", "scale")
        merged = {**evidence, **setting}
        ordered = {k: merged[k] for k in head if k in merged}
        return {**ordered, **{k: v for k, v in merged.items() if k not in ordered}}

    def to_json(self, path: str | Path, **evidence: Any) -> dict[str, Any]:
        """Write :meth:`record` to ``path`` (a ``kaggle*.json``, atomically) and return it: the one writer of
        a tuned record, read back by :meth:`from_run`."""
        record = self.record(**evidence)
        write_json_atomic(record, Path(path))
        return record

    @staticmethod
    def amend(path: str | Path, **keys: Any) -> dict[str, Any]:
        """Add ``keys`` to the tuned record at ``path`` (e.g. ``checkpoint``, ``transfer`` after training)
        and write it again; its setting is left as tuned."""
        file = tuned_file(path)
        record = read_kaggle(file)
        if record is None:
            raise UserError(f"{file}: no tuned record to add {', '.join(keys)} to")
        record = {**record, **keys}
        write_json_atomic(record, file)
        return record

    def for_weights(self, weights: Sequence[Path], *, tta: bool, imgsz: int | None) -> TunedSetting:
        """The inference part of this setting for ``weights`` (``analysis submit``): its image sizes when it
        was tuned on the same weights (``imgsz`` sets one size for all) and its fusion when boxes are fused
        (a fold set: :func:`fold_set_fusion`)."""
        fused = len(weights) > 1 or tta
        sizes = None if imgsz is None else (int(imgsz),) * len(weights)
        same = [Path(w).resolve() for w in self.weights] == [Path(w).resolve() for w in weights]
        sizes = self.sizes if sizes is None and same else sizes
        wbf = None
        if fused:
            # a fold set: the fusion tuned out of fold with flip TTA (scale-preserving, conf_type max), else
            # the fold-set fusion
            wbf = (self.wbf or fold_set_fusion()) if self.info.get("split") == OOF else self.wbf
        return TunedSetting(weights=tuple(weights), sizes=sizes, tta=tta, wbf=wbf, source=self.source)

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
        tta = bool(data.get("tta", False))
        tuned_wbf = dict(data["wbf"]) if tta and isinstance(data.get("wbf"), dict) else None
        return cls(
            weights=tuple(weights),
            conf=conf,
            box_scale=box_scale,
            tta=tta,
            wbf=tuned_wbf or (fold_set_fusion() if len(weights) > 1 else None),
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
