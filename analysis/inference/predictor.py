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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from analysis.record.setting import TunedSetting
from analysis.scoring.submission import select_boxes
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import PRED_COLUMNS


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

    @staticmethod
    def merge(parts: Sequence[Prediction]) -> Prediction:
        """The predictions of consecutive chunks as one (frames concatenated in order)."""

        def frames(name: str) -> pd.DataFrame:
            found = [getattr(p, name) for p in parts if len(getattr(p, name))]
            return pd.concat(found, ignore_index=True) if found else getattr(parts[0], name).iloc[:0]

        return Prediction(
            ids=[i for p in parts for i in p.ids],
            raw=frames("raw"),
            boxes=frames("boxes"),
            removed=frames("removed"),
            p_opacity={k: v for p in parts for k, v in p.p_opacity.items()},
            failed={k: v for p in parts for k, v in p.failed.items()},
        )


class Predictor:
    """Predicts as a :class:`TunedSetting` says (``batch``, ``device``, ``workers``: how, not what).

    ``backend``: ``torch`` (the setting's ``.pt`` weights, the default) or the export of every model that
    ``rsna-yolo export`` made (``onnx``, ``openvino``, ``openvino-bf16``, ``openvino-int8``:
    :mod:`analysis.inference.export`),
    at the same sizes, with the same TTA, fusion, threshold, box scale and gate."""

    def __init__(
        self,
        setting: TunedSetting,
        *,
        batch: int = 16,
        device=None,
        workers: int | None = None,
        backend: str = "torch",
    ):
        from analysis.inference.export import check_backend

        check_backend(backend)
        self.setting = setting
        self.batch, self.device, self.workers, self.backend = batch, device, workers, backend

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
            workers=self.workers, backend=self.backend, progress=progress,
        )  # fmt: skip

    def probabilities(self, images: Sequence[str | Path], *, progress: bool = True) -> pd.DataFrame:
        """The classifiers' ``patientId, p_opacity, p_<class>...`` of ``images`` (averaged; flips with the
        setting's classifier TTA)."""
        from analysis.inference.classifier import predict_probs

        if not self.setting.classifiers:
            raise UserError("this setting has no classifier")
        return predict_probs(list(self.setting.classifiers), list(images), tta=self.setting.classifier_tta,
                             batch=self.batch, device=self.device, workers=self.workers,
                             backend=self.backend, progress=progress)  # fmt: skip

    def predict(
        self,
        images: Sequence[str | Path],
        *,
        png_scales: Mapping[str, float] | None = None,
        all_probabilities: bool = False,
        progress: bool = True,
        chunk: int | None = None,
        on_chunk: Callable[[Prediction], object] | None = None,
    ) -> Prediction:
        """Predict ``images`` (patientId = file stem) exactly as tuned. The classifier sees the images with
        a box (the others have nothing to gate), or every image with ``all_probabilities``.

        ``chunk``: predict that many images at a time, each read from disk once for the detector, the
        classifier and ``on_chunk`` (called with each chunk's :class:`Prediction` while its films are still
        decoded: :func:`rsna_yolo.core.films.decoded_once`), memory bounded by the chunk. A multiple of
        ``batch`` keeps the detector's batches those of one pass over all images."""
        images = [Path(p) for p in images]
        if chunk is None or not images:
            prediction = self._predict(images, png_scales, all_probabilities, progress)
            if on_chunk is not None:
                on_chunk(prediction)
            return prediction
        from tqdm import tqdm

        from rsna_yolo.core.films import decoded_once

        parts = []
        with tqdm(total=len(images), desc="predict", unit="img", disable=not progress) as bar:
            for start in range(0, len(images), max(1, int(chunk))):
                part = images[start : start + max(1, int(chunk))]
                with decoded_once():
                    parts.append(self._predict(part, png_scales, all_probabilities, False))
                    if on_chunk is not None:
                        on_chunk(parts[-1])
                bar.update(len(part))
        return Prediction.merge(parts)

    def _predict(self, images: list[Path], png_scales, all_probabilities: bool, progress: bool) -> Prediction:
        """:meth:`predict` of one chunk."""
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
                         workers=self.workers, backend=self.backend)  # fmt: skip
