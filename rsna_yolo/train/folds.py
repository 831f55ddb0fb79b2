"""Cross-validation: one training run per fold, then out-of-fold predictions tuned as one set.

``python -m train folds D/folds [key=value ...]`` trains ``D/folds/fold<k>.yaml`` (written by ``convert rsna
--folds K``) into ``<project>/<name>/fold<k>/`` (default ``runs/folds/<dataset name>/`` under the current
folder; for a classifier set, ``task=classify``, ``runs/folds/<dataset name>_cls/``), each an ordinary
``python -m train`` run rescored on its own fold's val images. A fold whose run finished is skipped; one
killed mid-training is resumed from its ``last.pt``; so rerunning the command after an interruption loses no
finished fold. Then every labelled image has been predicted exactly once, by the model that did not train
on it: ``predictions_oof.csv`` (the folds' ``predictions_val.csv`` together) and ``kaggle_oof.json`` (one
threshold x box-scale tuning over all of them, its breakdown, and each fold's own score). All folds of a set
share one W&B group.

With ``task=classify`` the folds train classifiers on ``D/classify/fold<k>`` (``convert classify``) and the
out-of-fold file is ``classifier_oof.csv`` (``patientId,p_opacity``) with ``classify_oof.json``. Given a fold
set of classifiers (``classifier=`` the folder of such a set), a detector fold set also tunes the classifier
gate on the out-of-fold predictions: ``kaggle_oof_gated.json``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_csv_atomic, write_json_atomic
from rsna_yolo.core.layout import (
    CLASSIFY_VIEW,
    DATA_YAML,
    FOLDS_DIR,
    LABEL_SPLITS,
    PRED_COLUMNS,
    fold_name,
    read_data_yaml,
    read_dataset,
)
from rsna_yolo.core.runs import (
    CLASSIFY_JSON,
    CLASSIFY_OOF_JSON,
    KAGGLE_JSON,
    KAGGLE_OOF_GATED_JSON,
    KAGGLE_OOF_JSON,
    LAST_PT,
    OOF,
    classifier_predictions_name,
    predictions_name,
    read_kaggle,
    weights_file,
)

FOLD_RE = re.compile(r"fold(\d+)\.yaml")


def fold_yamls(folds_dir: str | Path) -> dict[int, Path]:
    """``{k: D/folds/fold<k>.yaml}``, checked to belong to the dataset the folder is in (``path:`` of each
    YAML is that dataset); :class:`UserError` naming the first that does not, or when there are none."""
    folds_dir = Path(folds_dir)
    if not folds_dir.is_dir():
        raise UserError(f"{folds_dir}: not a folder of fold YAMLs (convert rsna --folds K writes D/folds)")
    found = {
        int(m.group(1)): p for p in sorted(folds_dir.glob("fold*.yaml")) if (m := FOLD_RE.fullmatch(p.name))
    }
    if len(found) < 2:
        raise UserError(f"{folds_dir}: {len(found)} fold YAML(s); cross-validation needs at least 2")
    dataset = folds_dir.resolve().parent
    for path in found.values():
        _, _, root = read_data_yaml(path)
        if root.resolve() != dataset:
            raise UserError(
                f"{path}: a fold of the dataset at {root}, not of {dataset} (fold YAMLs of another dataset?)"
            )
    return dict(sorted(found.items()))


def check_partition(dataset: Path, folds: dict[int, Path]) -> dict[int, list[str]]:
    """Each fold's val patientIds; :class:`UserError` unless they cover every labelled image exactly once."""
    from rsna_yolo.core.layout import yaml_split_ids

    _, manifest = read_dataset(dataset / DATA_YAML)
    labelled = set(manifest.loc[manifest["split"].isin(LABEL_SPLITS), "patientId"].astype(str))
    vals = {k: yaml_split_ids(p, "val", manifest) or [] for k, p in folds.items()}
    seen: dict[str, int] = {}
    for k, ids in vals.items():
        for pid in ids:
            if pid in seen:
                raise UserError(f"{folds[k]}: {pid} is a val image of fold {seen[pid]} too")
            seen[pid] = k
    missing = labelled - set(seen)
    if missing or set(seen) - labelled:
        odd = sorted(missing or set(seen) - labelled)
        raise UserError(
            f"{dataset / FOLDS_DIR}: the folds' val lists do not cover the labelled images once each "
            f"({len(missing)} missing, {len(set(seen) - labelled)} unknown, e.g. {odd[0]})"
        )
    return vals


def fold_status(run_dir: Path, task: str) -> str:
    """``done`` (weights and the final score file), ``killed`` (a ``last.pt`` to resume) or ``new``."""
    score = run_dir / (CLASSIFY_JSON if task == "classify" else KAGGLE_JSON)
    if score.is_file() and weights_file(run_dir).is_file():
        return "done"
    return "killed" if weights_file(run_dir, LAST_PT).is_file() else "new"


DEFAULT_PROJECT = "runs/folds"
"""Where fold sets go without ``project=`` (relative to the current folder, like Ultralytics' ``runs/``)."""
CLASSIFIER_SET_SUFFIX = "_cls"
"""Added to the dataset's name for a classifier set without ``name=``, so that the detector set and the
classifier set of one dataset never share a folder (the second would land in the first's folds)."""


def default_set_dir(dataset: Path, task: str = "detect", project=None, name=None) -> Path:
    """The fold set's folder: ``<project>/<name>``, by default ``runs/folds/<dataset name>`` for detectors
    and ``runs/folds/<dataset name>_cls`` for classifiers (``task="classify"``), resolved against the
    current folder.

    >>> default_set_dir(Path("/data/rsna64"), "classify", "/runs/folds").as_posix()
    '/runs/folds/rsna64_cls'
    """
    if name is None:
        name = Path(dataset).name + (CLASSIFIER_SET_SUFFIX if task == "classify" else "")
    return Path(str(project if project is not None else DEFAULT_PROJECT)).resolve() / str(name)


def run_folds(
    folds_dir: str | Path,
    args: dict[str, Any],
    options=None,
    *,
    classifier: str | Path | None = None,
    progress: bool = True,
    restart_killed: bool = False,
    tta: bool = False,
) -> dict:
    """Train (or finish) every fold, then write the out-of-fold files; returns the ``kaggle_oof.json`` (or
    ``classify_oof.json``) content plus ``set_dir``. ``args`` are ``python -m train``'s Ultralytics arguments
    (``data`` is set per fold; ``project`` / ``name`` place the set). ``pretrained=`` a fold set (a folder of
    ``fold<k>`` runs, e.g. the detector set of the same folds) starts each fold from the same fold of that
    set, so no fold's model has seen its val images through its starting weights. ``restart_killed``: a fold
    killed mid-training starts again from its first epoch instead of resuming from ``last.pt`` (Ultralytics'
    resume does not restore the random state and keeps the EMA in half precision, so a resumed fold ends with
    other weights than an uninterrupted one; restarting gives the same bytes)."""
    from dataclasses import replace

    from rsna_yolo.train.args import TrainOptions
    from rsna_yolo.train.run import resume, train

    options = options or TrainOptions()
    args = dict(args)
    if "data" in args:
        raise UserError("data=: the folds are the data (python -m train folds D/folds ...); leave data= out")
    task = args.get("task", "detect")
    folds = fold_yamls(folds_dir)
    dataset = Path(folds_dir).resolve().parent
    vals = check_partition(dataset, folds)
    set_dir = default_set_dir(dataset, task, args.pop("project", None), args.pop("name", None))
    options = replace(options, wandb_group=options.wandb_group or set_dir.name)
    per_fold_source = _fold_set_source(args.get("pretrained"), folds)
    for k, fold_yaml in folds.items():
        run_dir = set_dir / fold_name(k)
        status = fold_status(run_dir, task)
        if status == "killed" and restart_killed:
            shutil.rmtree(run_dir)
            status = "new"
            print(f"fold {k}: killed mid-training; starting it again from its first epoch (restart_killed)")
        data = dataset / CLASSIFY_VIEW / fold_name(k) if task == "classify" else fold_yaml
        if task == "classify" and not (data / "val").is_dir():
            raise UserError(
                f"{data}: no classification view of fold {k}; run `python -m convert classify {dataset}`"
            )
        print(f"fold {k} of {len(folds)}: {status} ({run_dir})")
        if status == "done":
            continue
        if status == "killed":
            _finish(run_dir, data, task, resume)
        else:
            fold_args = {
                **args,
                **({"pretrained": str(per_fold_source[k])} if per_fold_source else {}),
                "data": str(data),
                "project": str(set_dir),
                "name": fold_name(k),
                "exist_ok": True,
            }
            train(fold_args, options)
    if task == "classify":
        if tta:
            raise UserError("--tta is for detector fold sets (a classifier's flip TTA: analysis rescore "
                            "--classifier-tta)")  # fmt: skip
        return _classifier_oof(set_dir, folds, vals)
    result = _detector_oof(set_dir, dataset, folds, vals, classifier)
    if tta:
        result["tta"] = _tta_oof(set_dir, dataset, folds, classifier)
    return result


def _fold_set_source(pretrained, folds: dict[int, Path]) -> dict[int, Path] | None:
    """``{k: <set>/fold<k>}`` when ``pretrained=`` names a fold set (a folder holding ``fold0``, no weights of
    its own), else None; :class:`UserError` when that set lacks one of these folds."""
    if not isinstance(pretrained, (str, Path)) or isinstance(pretrained, bool):
        return None
    path = Path(str(pretrained)).expanduser()
    if not (path / fold_name(0)).is_dir():
        return None
    missing = [fold_name(k) for k in folds if not (path / fold_name(k)).is_dir()]
    if missing:
        raise UserError(f"pretrained={pretrained}: a fold set without {', '.join(missing)}; it must hold "
                        "the same folds as the data")  # fmt: skip
    return {k: path / fold_name(k) for k in folds}


def _finish(run_dir: Path, data: Path, task: str, resume) -> None:
    """A fold without its final score: resume its training from ``last.pt``, or, when training had
    finished (killed during the final scoring), score it now."""
    from rsna_yolo.train.resume import check_resumable

    try:
        check_resumable(run_dir)
    except UserError:  # training finished; only the score is missing
        if task == "classify":
            from analysis.inference import evaluate_classifier

            evaluate_classifier(run_dir, data, split="val", progress=False)
        else:
            from analysis.tuning import rescore

            rescore(run_dir, data, split="val", progress=False)
        return
    resume(run_dir)


def _fold_frames(set_dir: Path, folds: dict[int, Path], name: str) -> list[pd.DataFrame]:
    frames = []
    for k in folds:
        path = set_dir / fold_name(k) / name
        if not path.is_file():
            raise UserError(f"{path}: missing; rescore fold {k} (python -m analysis rescore {path.parent})")
        frames.append(pd.read_csv(path, dtype={"patientId": str}).assign(fold=k))
    return frames


def _detector_oof(set_dir: Path, dataset: Path, folds, vals, classifier) -> dict:
    """``predictions_oof.csv`` and ``kaggle_oof.json`` from the folds' val predictions."""
    from analysis.inference import TunedSetting
    from analysis.tuning import read_truth, tune

    per_fold = {}
    for k in folds:
        kaggle = read_kaggle(set_dir / fold_name(k)) or {}
        if kaggle.get("split") != "val" or kaggle.get("n_images") != len(vals[k]):
            raise UserError(f"{set_dir / fold_name(k) / KAGGLE_JSON}: not fold {k}'s val score; rescore it")
        per_fold[k] = {"score": kaggle["score"], "conf": kaggle["conf"], "scale": kaggle["scale"],
                       "n_images": kaggle["n_images"], "weights": kaggle["weights"]}  # fmt: skip
    oof = pd.concat(_fold_frames(set_dir, folds, predictions_name("val")), ignore_index=True)
    gt = read_truth(dataset / DATA_YAML)  # every labelled image
    stray = set(oof["patientId"]) - set(gt.truth)
    if stray:
        raise UserError(
            f"{set_dir}: predictions for {len(stray)} image(s) outside the dataset, e.g. {min(stray)}"
        )
    tuned = tune(gt, oof[PRED_COLUMNS])
    best = tuned.best
    write_csv_atomic(oof[[*PRED_COLUMNS, "fold"]], set_dir / predictions_name(OOF))
    setting = TunedSetting(weights=(), conf=best["conf"], box_scale=best["scale"])
    result = setting.to_json(
        set_dir / KAGGLE_OOF_JSON, split=OOF, data=str(dataset / DATA_YAML), n_images=len(gt.truth),
        folds=per_fold, score=best["score"], score_heldout=tuned.score_heldout,
        sweep=tuned.table.to_dict(orient="records"), breakdown=tuned.breakdown,
        predictions=predictions_name(OOF),
    )  # fmt: skip
    print(f"out-of-fold Kaggle mAP over {len(gt.truth)} images: {best['score']:.4f} at conf "
          f"{best['conf']:.2f}, box scale {best['scale']:.2f} (held-out {_fmt(tuned.score_heldout)}) -> "
          f"{set_dir / KAGGLE_OOF_JSON}")  # fmt: skip
    if classifier is not None:
        result["gated"] = _gate_oof(set_dir, Path(classifier), gt, oof)
    return {**result, "set_dir": str(set_dir)}


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.4f}"


def _gate_oof(set_dir: Path, classifier_set: Path, gt, oof: pd.DataFrame) -> dict:
    """Tune the classifier gate on the out-of-fold boxes and probabilities: ``kaggle_oof_gated.json``."""
    from analysis.inference import TunedSetting
    from analysis.tuning import read_p_opacity, tune_gate

    probs_path = classifier_set / classifier_predictions_name(OOF)
    if not probs_path.is_file():
        raise UserError(f"{probs_path}: missing; train the classifier folds first (python -m train folds "
                        "D/folds task=classify ...)")  # fmt: skip
    tuned = tune_gate(gt, oof[PRED_COLUMNS], read_p_opacity(probs_path))
    best = tuned.best
    gate = {"mode": best["mode"], "gate": best["gate"]}
    setting = TunedSetting(weights=(), conf=best["conf"], box_scale=best["scale"], gate=gate,
                           classifiers=(classifier_set,))  # fmt: skip
    result = setting.to_json(set_dir / KAGGLE_OOF_GATED_JSON, split=OOF, n_images=len(gt.truth),
                             score=best["score"], score_heldout=tuned.score_heldout,
                             sweep=tuned.table.to_dict(orient="records"), gates=tuned.gates,
                             breakdown=tuned.breakdown)  # fmt: skip
    print(
        f"out-of-fold, gated by {classifier_set.name}: {best['score']:.4f} "
        f"({best['mode']} gate {best['gate']}; held-out {_fmt(tuned.score_heldout)})"
    )
    return result


def _tta_oof(set_dir: Path, dataset: Path, folds: dict[int, Path], classifier) -> dict:
    """Flip TTA tuned out of fold: each fold predicts its own val images with flips (``fold<k>/kaggle_tta``,
    its predictions reused when unchanged), every image's two sets of boxes are fused and the threshold tuned
    over all of them: first with the fold-set fusion (``oof_fusion``), then with every ``iou_thr`` x
    ``skip_box_thr`` of the WBF grid, keeping the confidence type ``max``, the one whose scale does not depend
    on how many sets are fused (at test time each film has 2 x K of them, one pair per fold). Writes
    ``kaggle_oof_tta.json`` (the tuned fusion; the fold-set fusion's score as ``default_fusion``) and, with
    a classifier fold set, ``kaggle_oof_tta_gated.json``."""
    from analysis.inference import TunedSetting
    from analysis.tuning import (
        DEFAULTS,
        fuse_parts,
        read_p_opacity,
        read_truth,
        rescore,
        tune,
        tune_gate,
        tune_wbf,
    )
    from rsna_yolo.core.runs import KAGGLE_OOF_TTA_GATED_JSON, KAGGLE_OOF_TTA_JSON, parts_name, rescore_dir

    frames = []
    for k, fold_yaml in folds.items():
        run_dir = set_dir / fold_name(k)
        out = rescore_dir(run_dir, "tta")
        rescore(run_dir, fold_yaml, split="val", tta=True, out_dir=out, ultralytics_val=False, progress=False)
        frames.append(pd.read_csv(out / parts_name("val"), dtype={"patientId": str}))
    parts = pd.concat(frames, ignore_index=True)
    gt = read_truth(dataset / DATA_YAML)
    default = tune(gt, fuse_parts(parts, n_parts=2, **DEFAULTS.oof_fusion))
    grid = {**DEFAULTS.wbf_grid, "conf_type": ("max",)}
    wbf, wbf_table, fused = tune_wbf(gt.truth, parts, grid=grid, n_parts=2)
    tuned = tune(gt, fused)
    fusion = {k: wbf[k] for k in ("iou_thr", "skip_box_thr", "conf_type")}
    best = tuned.best
    setting = TunedSetting(weights=(), conf=best["conf"], box_scale=best["scale"], tta=True, wbf=fusion)
    result = setting.to_json(
        set_dir / KAGGLE_OOF_TTA_JSON, split=OOF, data=str(dataset / DATA_YAML), n_images=len(gt.truth),
        score=best["score"], score_heldout=tuned.score_heldout,
        default_fusion={**DEFAULTS.oof_fusion, "score": default.best["score"],
                        "score_heldout": default.score_heldout},
        sweep=tuned.table.to_dict(orient="records"), wbf_sweep=wbf_table.to_dict(orient="records"),
        breakdown=tuned.breakdown,
    )  # fmt: skip
    print(f"out of fold with flip TTA: {default.best['score']:.4f} (held-out {_fmt(default.score_heldout)}) "
          f"fused as the fold set is, {best['score']:.4f} (held-out {_fmt(tuned.score_heldout)}) with the "
          f"fusion tuned (iou_thr {fusion['iou_thr']}, skip_box_thr {fusion['skip_box_thr']}) -> "
          f"{set_dir / KAGGLE_OOF_TTA_JSON}")  # fmt: skip
    if classifier is not None:
        probs = read_p_opacity(Path(classifier) / classifier_predictions_name(OOF))
        gated = tune_gate(gt, fused, probs)
        g = gated.best
        gate = {"mode": g["mode"], "gate": g["gate"]}
        setting = TunedSetting(weights=(), conf=g["conf"], box_scale=g["scale"], tta=True, wbf=fusion,
                               gate=gate, classifiers=(Path(classifier),))  # fmt: skip
        result["gated"] = setting.to_json(
            set_dir / KAGGLE_OOF_TTA_GATED_JSON, split=OOF, n_images=len(gt.truth), score=g["score"],
            score_heldout=gated.score_heldout, sweep=gated.table.to_dict(orient="records"), gates=gated.gates,
            breakdown=gated.breakdown,
        )  # fmt: skip
        print(f"out of fold with flip TTA, gated: {g['score']:.4f} ({g['mode']} gate {g['gate']}; held-out "
              f"{_fmt(gated.score_heldout)}) -> {set_dir / KAGGLE_OOF_TTA_GATED_JSON}")  # fmt: skip
    return result


def _classifier_oof(set_dir: Path, folds, vals) -> dict:
    """``classifier_oof.csv`` and ``classify_oof.json`` from the folds' val probabilities: the ROC AUC of
    P(opacity) against the two other classes over every labelled image, and the opacity-vs-rest counts at
    P(opacity) ``classifier_cutoff`` of :data:`DEFAULTS` (each fold's ``classify.json`` has its own
    three-class metrics)."""
    from analysis.inference import opacity_auc, view_labels
    from analysis.tuning import DEFAULTS
    from rsna_yolo.core.layout import OPACITY_DIRS

    oof = pd.concat(_fold_frames(set_dir, folds, classifier_predictions_name("val")), ignore_index=True)
    labels = {}
    for k in folds:
        labels.update(view_labels(set_dir / fold_name(k), "val") or {})
    missing = set(oof["patientId"]) - set(labels)
    if missing:
        raise UserError(f"{set_dir}: no label for {len(missing)} out-of-fold image(s), e.g. {min(missing)}")
    folders = oof["patientId"].map(labels)
    positive = folders.isin(OPACITY_DIRS).to_numpy()
    called = (oof["p_opacity"] >= DEFAULTS.classifier_cutoff).to_numpy()
    result = {
        "split": OOF, "n_images": len(oof), "predictions": classifier_predictions_name(OOF),
        "auc_opacity": opacity_auc(folders, oof["p_opacity"]),
        f"at_{DEFAULTS.classifier_cutoff:g}": {"true_positive": int((positive & called).sum()),
                   "false_positive": int((~positive & called).sum()),
                   "false_negative": int((positive & ~called).sum()),
                   "true_negative": int((~positive & ~called).sum())},
    }  # fmt: skip
    write_csv_atomic(oof[["patientId", "p_opacity", "fold"]], set_dir / classifier_predictions_name(OOF))
    write_json_atomic(result, set_dir / CLASSIFY_OOF_JSON)
    print(f"out-of-fold ROC AUC of P(opacity) over {len(oof)} images: {_fmt(result['auc_opacity'])}")
    return {**result, "set_dir": str(set_dir)}
