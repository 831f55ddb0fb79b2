"""`python -m train folds`: one run per fold, out-of-fold predictions, a killed set that resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from rsna_yolo.core.cli import UserError
from rsna_yolo.train.args import TrainOptions
from rsna_yolo.train.folds import check_partition, fold_yamls, run_folds

TINY = {"model": "yolo11n.yaml", "epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "plots": False}


@pytest.fixture(scope="module")
def folded(tmp_path_factory) -> Path:
    from convert.rsna import convert_rsna
    from convert.synth import generate

    root = tmp_path_factory.mktemp("folds")
    generate(root / "kaggle", 24, 0, seed=3, imgsz=128)
    convert_rsna(
        root / "kaggle", root / "D", imgsz=64, folds=3, workers=1, progress=False, echo=lambda *a: None
    )
    return root / "D"


@pytest.mark.slow
def test_three_folds_then_out_of_fold_and_a_killed_set_trains_only_the_rest(folded, tmp_path, monkeypatch):
    import rsna_yolo.train.run

    real_train, calls = rsna_yolo.train.run.train, []

    def dies_on_the_second_fold(args, options=None, **kw):
        calls.append(args["name"])
        if args["name"] == "fold1":
            raise KeyboardInterrupt  # as if the machine went down during fold 1
        return real_train(args, options, **kw)

    args = {**TINY, "project": str(tmp_path), "name": "cv"}
    options = TrainOptions(wandb=False)
    monkeypatch.setattr(rsna_yolo.train.run, "train", dies_on_the_second_fold)
    with pytest.raises(KeyboardInterrupt):
        run_folds(folded / "folds", dict(args), options)
    fold0 = tmp_path / "cv" / "fold0" / "weights" / "best.pt"
    stamp = fold0.stat().st_mtime_ns
    monkeypatch.setattr(
        rsna_yolo.train.run,
        "train",
        lambda a, o=None, **kw: (calls.append(a["name"]), real_train(a, o, **kw))[1],
    )
    result = run_folds(folded / "folds", dict(args), options)
    assert calls == ["fold0", "fold1", "fold1", "fold2"]  # fold 0 was not trained again
    assert fold0.stat().st_mtime_ns == stamp

    manifest = pd.read_csv(folded / "manifest.csv", dtype={"patientId": str})
    labelled = set(manifest.loc[manifest["split"] != "test", "patientId"])
    saved = json.loads((tmp_path / "cv" / "kaggle_oof.json").read_text())
    assert saved["n_images"] == len(labelled) == sum(f["n_images"] for f in saved["folds"].values())
    assert saved["score"] == result["score"] and 0.0 <= saved["score"] <= 1.0
    oof = pd.read_csv(tmp_path / "cv" / "predictions_oof.csv", dtype={"patientId": str})
    assert set(oof["patientId"]) <= labelled and oof.groupby("patientId")["fold"].nunique().max() == 1
    vals = check_partition(folded, fold_yamls(folded / "folds"))
    for k, ids in vals.items():  # each image predicted by the fold that held it out, and by no other
        assert set(oof.loc[oof["fold"] == k, "patientId"]) <= set(ids)
    # A third run finds every fold finished: nothing trains, the same out-of-fold score.
    assert run_folds(folded / "folds", dict(args), options)["score"] == saved["score"] and len(calls) == 4
    # A fold killed after training, during its final scoring (weights, no kaggle.json): scored, not retrained.
    (tmp_path / "cv" / "fold2" / "kaggle.json").unlink()
    assert run_folds(folded / "folds", dict(args), options)["score"] == saved["score"] and len(calls) == 4
    assert (tmp_path / "cv" / "fold2" / "kaggle.json").is_file()
    # The fold set is an ensemble as it is: rescore (and submit) take its folder. But fused on val, folds 1
    # and 2 would score images they trained on (fold 0's val): refused, not presented as a validation score.
    from analysis.tuning.rescoring import rescore

    with pytest.raises(UserError, match=r"fold1/weights/best\.pt trained on \d+ of the \d+ val images"):
        rescore(tmp_path / "cv", folded / "data.yaml", ultralytics_val=False, progress=False)
    assert not (tmp_path / "cv" / "kaggle_ensemble3" / "kaggle.json").exists()
    import analysis.inference.predict
    from analysis.inference.submit import make_submission

    real_predict, used = analysis.inference.predict.predict_images, []
    monkeypatch.setattr(
        analysis.inference.predict,
        "predict_images",
        lambda w, *a, **k: (used.append(w), real_predict(w, *a, **k))[1],
    )
    sub = make_submission([tmp_path / "cv"], folded / "images" / "val", tmp_path / "sub.csv", progress=False,
                          echo=lambda *a: None)  # fmt: skip
    assert used == [[tmp_path / "cv" / f"fold{k}" / "weights" / "best.pt" for k in range(3)]]
    assert sub.n_patients == len(list((folded / "images" / "val").glob("*.png")))
    # A fold retrained at another size no longer belongs to the set: one line naming it.
    from rsna_yolo.core.runs import expand_weights

    args_yaml = tmp_path / "cv" / "fold2" / "args.yaml"
    args_yaml.write_text(args_yaml.read_text().replace("imgsz: 64", "imgsz: 96"))
    with pytest.raises(
        UserError, match=r"cv: fold2 at imgsz 96, the other folds at imgsz 64: not one fold set"
    ):
        expand_weights([tmp_path / "cv"])


def test_fold_yamls_of_another_dataset_and_data_are_one_line(folded, tmp_path):
    other = tmp_path / "other"
    (other / "folds").mkdir(parents=True)
    for p in (folded / "folds").glob("fold*.yaml"):
        shutil.copy(p, other / "folds" / p.name)
    with pytest.raises(UserError, match=r"fold0\.yaml: a fold of the dataset at .*, not of .*other"):
        fold_yamls(other / "folds")
    with pytest.raises(UserError, match="data=: the folds are the data"):
        run_folds(folded / "folds", {**TINY, "data": "x.yaml"})
    with pytest.raises(UserError, match="not a folder of fold YAMLs"):
        fold_yamls(tmp_path / "nowhere")


@pytest.mark.slow
def test_classifier_folds_gate_the_detector_folds_out_of_fold_and_in_the_submission(
    folded, tmp_path, monkeypatch
):
    """A fold set of classifiers: every labelled image gets P(opacity) once, from the fold that held it out;
    a detector fold set given it tunes the gate on the out-of-fold boxes; submit applies that gate."""
    from analysis.inference.submit import make_submission
    from analysis.record.gate import p_opacity_map
    from analysis.tuning.gating import best_gate, gate_sweep
    from convert.classify import write_classify_view

    write_classify_view(folded)  # a dataset converted without --classify gets its views added
    options = TrainOptions(wandb=False)
    cls_args = {**TINY, "task": "classify", "model": "yolo_configs/models/basic_cnn_cls.yaml", "imgsz": 32}
    # With W&B on (offline here), the three fold runs are one W&B group named after the set.
    import wandb

    real_init, groups = wandb.init, []
    monkeypatch.setattr(
        wandb, "init", lambda **kw: (run := real_init(**kw), groups.append((kw["name"], run.group)))[0]
    )
    run_folds(
        folded / "folds", {**cls_args, "project": str(tmp_path), "name": "cls"}, TrainOptions(wandb=True)
    )
    assert groups == [("fold0", "cls"), ("fold1", "cls"), ("fold2", "cls")]
    probs = pd.read_csv(tmp_path / "cls" / "classifier_oof.csv", dtype={"patientId": str})
    vals = check_partition(folded, fold_yamls(folded / "folds"))
    assert sorted(probs["patientId"]) == sorted(pid for ids in vals.values() for pid in ids)
    assert probs["p_opacity"].between(0, 1).all()

    det = run_folds(folded / "folds", {**TINY, "project": str(tmp_path), "name": "det"}, options,
                    classifier=tmp_path / "cls")  # fmt: skip
    saved = json.loads((tmp_path / "det" / "kaggle_oof_gated.json").read_text())
    assert saved == {**det["gated"]} and saved["split"] == "oof"
    # The same tuning by hand from the two out-of-fold files: the gated score is never below the ungated.
    from analysis.scoring.truth import dataset_truth
    from rsna_yolo.core.layout import read_dataset

    root, manifest = read_dataset(folded / "data.yaml")
    oof = pd.read_csv(tmp_path / "det" / "predictions_oof.csv", dtype={"patientId": str})
    table = gate_sweep(dataset_truth(root, manifest).truth, oof, p_opacity_map(probs))
    best = best_gate(table)
    assert best["score"] == pytest.approx(saved["score"]) and saved["score"] >= det["score"] - 1e-12
    assert saved["gate"] == {"mode": best["mode"], "gate": best["gate"]}

    # submit --from-run D/kaggle_oof_gated.json --classifier CLS_SET: the fold ensembles, gated by that gate.
    import analysis.inference.predict
    from analysis.record.setting import fold_set_fusion

    OOF_FUSION = fold_set_fusion()

    real_predict, fusions = analysis.inference.predict.predict_images, []

    def recording(w, *a, **k):
        fusions.append(k.get("wbf"))
        return real_predict(w, *a, **k)

    monkeypatch.setattr(analysis.inference.predict, "predict_images", recording)
    notes = []
    tuned = tmp_path / "det" / "kaggle_oof_gated.json"
    summary = make_submission([tmp_path / "det"], folded / "images" / "val", tmp_path / "sub.csv",
                              from_run=tuned, classifier=[tmp_path / "cls"], progress=False,
                              echo=notes.append)  # fmt: skip
    assert summary.gate == saved["gate"] and set(saved["gate"]) == {"mode", "gate"}
    assert (summary.conf, summary.box_scale) == (saved["conf"], saved["scale"])
    assert any("tuned out of fold" in n for n in notes)
    # Fused keeping each box's best fold confidence: the scale the out-of-fold threshold was tuned on.
    assert fusions == [OOF_FUSION] and OOF_FUSION["conf_type"] == "max"

    # rsna-yolo predict on the same fold set and films: the same Kaggle CSV byte for byte, fused the same way.
    from analysis.reports.predict_run import predict_films

    got = predict_films(tuned, folded / "images" / "val", tmp_path / "predicted",
                        submission=tmp_path / "p.csv", progress=False, echo=notes.append)  # fmt: skip
    assert (tmp_path / "p.csv").read_bytes() == (tmp_path / "sub.csv").read_bytes()
    assert fusions == [OOF_FUSION, OOF_FUSION] and (tmp_path / "predicted" / "report.html").is_file()
    assert set(got.table["patientId"]) == {p.stem for p in (folded / "images" / "val").glob("*.png")}
