"""`python -m train sweep`: W&B sweep specs -> Optuna, a real two-trial local sweep, and its continuation."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from tiny_yolo_data import make_synthetic_dataset

from rsna_yolo.core.cli import UserError
from rsna_yolo.train.sweep import run_sweep
from rsna_yolo.train.sweep_spec import distribution, load_sweep, make_pruner, make_sampler


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"values": ["SGD", "AdamW"]}, CategoricalDistribution(["SGD", "AdamW"])),
        ({"min": 1, "max": 4}, IntDistribution(1, 4)),
        ({"min": 0.1, "max": 1}, FloatDistribution(0.1, 1.0)),
        ({"distribution": "q_uniform", "min": 0, "max": 10, "q": 2}, IntDistribution(0, 10, step=2)),
        (
            {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
            FloatDistribution(1e-4, 0.1, log=True),
        ),
        ({"distribution": "log_uniform", "min": 0, "max": 1}, FloatDistribution(1.0, math.e, log=True)),
        ({"value": 3}, ("value", 3)),
    ],
)
def test_wandb_parameter_specs_map_to_optuna(spec, expected):
    assert distribution("p", spec) == expected


@pytest.mark.parametrize(
    "spec",
    [{"distribution": "normal", "mu": 0, "sigma": 1}, {"min": 2, "max": 1}, {"values": []}, {"q": 1}],
)
def test_unsupported_or_bad_specs_are_clear_errors(spec):
    with pytest.raises(UserError, match="parameter p"):
        distribution("p", spec)


def test_methods_and_hyperband_map_to_optuna_samplers_and_pruner():
    kinds = {}
    for name in ("models", "bayes"):
        spec = load_sweep(REPO_ROOT / f"yolo_configs/sweeps/{name}.yaml")
        kinds[name] = type(make_sampler(spec, seed=0))
    assert kinds == {"models": optuna.samplers.GridSampler, "bayes": optuna.samplers.TPESampler}
    bayes = load_sweep(REPO_ROOT / "yolo_configs/sweeps/bayes.yaml")
    pruner = make_pruner(bayes, epochs=30)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    # W&B's min_iter 3 / eta 3 over the 30 epochs of the file (private attributes: Optuna has no getters)
    assert (pruner._min_resource, pruner._max_resource, pruner._reduction_factor) == (3, 30, 3)
    assert isinstance(
        make_pruner(load_sweep(REPO_ROOT / "yolo_configs/sweeps/models.yaml"), 50), optuna.pruners.NopPruner
    )


@pytest.mark.slow
def test_two_trial_local_sweep_runs_and_continues(tmp_path: Path):
    data = make_synthetic_dataset(tmp_path / "data", patients=20)
    sweep_file = REPO_ROOT / "yolo_configs/sweeps/optimizers.yaml"  # grid of 4 hyp files, used as is
    common = dict(
        data=str(data),
        overrides=[("model", "yolo11n.yaml"), ("epochs", 1), ("imgsz", 64), ("batch", 4), ("workers", 0),
                   ("plots", False), ("wandb", False), ("project", str(tmp_path / "P"))],
        out_dir=tmp_path / "sweep",
    )  # fmt: skip
    table = run_sweep(sweep_file, count=2, **common)
    assert len(table) == 2 and (table["state"] == "COMPLETE").all()
    assert table["kaggle/mAP"].between(0, 1).all()
    grid = yaml.safe_load(sweep_file.read_text())["parameters"]["cfg"]["values"]
    assert set(table["cfg"]) <= set(grid) and table["cfg"].nunique() == 2
    csv = pd.read_csv(tmp_path / "sweep" / "trials.csv")
    assert len(csv) == 2 and csv["kaggle/mAP"].notna().all()
    for run_dir in csv["run_dir"]:  # each trial is an ordinary run folder with its own kaggle.json
        args = yaml.safe_load((Path(run_dir) / "args.yaml").read_text())
        assert args["optimizer"] == yaml.safe_load((REPO_ROOT / args["cfg"]).read_text())["optimizer"]
        assert (Path(run_dir) / "kaggle.json").is_file() and args["epochs"] == 1
        assert Path(run_dir).parent == tmp_path / "P" and Path(run_dir).name.startswith("trial_")  # project=
    assert (tmp_path / "sweep" / "optuna.db").is_file() and not list((tmp_path / "sweep").glob("trial_*"))
    assert (csv["data"] == str(data.resolve())).all()  # the table names the dataset
    best = csv.loc[csv["kaggle/mAP"].idxmax()]  # best_args.txt: its parameters, ready to train with again
    words = (tmp_path / "sweep" / "best_args.txt").read_text().split()
    assert (
        words[0] == f"cfg={best['cfg']}"
    )  # the swept one, then the file's constants as the command set them
    assert {"model=yolo11n.yaml", "epochs=1", "imgsz=64", "patience=20"} <= set(words)
    assert not [w for w in words if w.split("=")[0] in ("data", "project", "name")]

    # Same study again with --count 3: only the missing trial runs, on a grid point not yet tried.
    table = run_sweep(sweep_file, count=3, **common)
    assert len(table) == 3 and table["cfg"].nunique() == 3 and (table["state"] == "COMPLETE").all()

    # The same study folder with another dataset: refused before any training, naming what differs.
    other = tmp_path / "other.yaml"
    other.write_text(data.read_text())
    with pytest.raises(UserError, match=r"data=.*data\.yaml in the study, .*other\.yaml now.*--study-name"):
        run_sweep(sweep_file, count=4, **{**common, "data": str(other)})
    assert len(pd.read_csv(tmp_path / "sweep" / "trials.csv")) == 3


def test_a_study_is_bound_to_its_dataset_and_overrides(tmp_path: Path, monkeypatch, capsys):
    """Trial runs honour project= and name=; continuing a study with another dataset or other overrides is
    refused with one line; the same arguments continue it. Training is faked (score from the cfg)."""
    import rsna_yolo.train.run
    from rsna_yolo.train.run import RunResult

    data_a, data_b = tmp_path / "A" / "data.yaml", tmp_path / "B" / "data.yaml"
    for d in (data_a, data_b):
        d.parent.mkdir()
        d.write_text("path: /nowhere\n")
    runs = []

    def fake_train(args, options, on_epoch=None):
        runs.append(Path(args["project"]) / args["name"])
        return RunResult(runs[-1], {"score": 0.1 * len(runs), "conf": 0.3, "scale": 1.0}, epochs_done=1)

    monkeypatch.setattr(rsna_yolo.train.run, "train", fake_train)
    sweep_file = REPO_ROOT / "yolo_configs/sweeps/optimizers.yaml"
    out = tmp_path / "sweep"
    pinned = [("epochs", 2), ("project", str(tmp_path / "P")), ("name", "opt")]
    table = run_sweep(sweep_file, count=2, data=str(data_a), overrides=pinned, out_dir=out)
    assert runs == [tmp_path / "P" / "opt_000", tmp_path / "P" / "opt_001"]
    assert set(table["data"]) == {str(data_a)} and "dataset: " + str(data_a) in capsys.readouterr().out

    for data, overrides, differs in [
        (data_b, pinned, rf"data={data_a} in the study, {data_b} now"),
        (data_a, [("epochs", 3), *pinned[1:]], r"epochs=2 in the study, 3 now"),
        (data_a, [*pinned, ("batch", 4)], r"batch=\(unset\) in the study, 4 now"),
        (data_a, [*pinned, ("lr0", 0.02)], r"lr0=\(unset\) in the study, 0.02 now"),
    ]:
        with pytest.raises(UserError, match=differs) as err:
            run_sweep(sweep_file, count=4, data=str(data), overrides=overrides, out_dir=out)
        assert "--study-name" in str(err.value) and "\n" not in str(err.value)
    assert len(runs) == 2 and len(pd.read_csv(out / "trials.csv")) == 2  # nothing ran, nothing rewritten

    # The same arguments continue the study; another --study-name is a separate study beside it.
    assert len(run_sweep(sweep_file, count=3, data=str(data_a), overrides=pinned, out_dir=out)) == 3
    other = run_sweep(sweep_file, count=1, data=str(data_b), overrides=pinned, study_name="opt_b",
                      out_dir=tmp_path / "sweep_b")  # fmt: skip
    assert set(other["data"]) == {str(data_b)} and len(runs) == 4


def test_interrupted_grid_sweep_continues_with_the_interrupted_point(tmp_path: Path, monkeypatch):
    """Ctrl-C in the second trial of a 4-point grid, then the same command again: all 4 grid points end up
    complete (Optuna alone counts the interrupted point as visited and would skip it). Training is faked
    here (each trial's score is derived from its cfg); the real two-trial sweep above covers training."""
    import rsna_yolo.train.run
    from rsna_yolo.train.run import RunResult

    data = tmp_path / "data.yaml"
    data.write_text("path: /nowhere\n")
    sweep_file = REPO_ROOT / "yolo_configs/sweeps/optimizers.yaml"
    grid = yaml.safe_load(sweep_file.read_text())["parameters"]["cfg"]["values"]
    calls = []

    def fake_train(args, options, on_epoch=None):
        calls.append(Path(args["cfg"]).name)
        if len(calls) == 2 and interrupt:
            raise KeyboardInterrupt
        run_dir = Path(args["project"]) / args["name"]
        score = 0.1 * (1 + [Path(g).name for g in grid].index(Path(args["cfg"]).name))
        return RunResult(run_dir, {"score": score, "conf": 0.3, "scale": 1.0}, epochs_done=1)

    monkeypatch.setattr(rsna_yolo.train.run, "train", fake_train)
    common = dict(data=str(data), overrides=[("wandb", False)], out_dir=tmp_path / "sweep")
    interrupt = True
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep_file, **common)
    first = pd.read_csv(tmp_path / "sweep" / "trials.csv")  # written on the way out
    assert list(first["state"]) == ["COMPLETE", "FAIL"] and first["interrupted"].tolist()[1] is True
    interrupted_cfg = calls[1]

    interrupt = False
    table = run_sweep(sweep_file, **common)
    assert calls[2] == interrupted_cfg, "the interrupted grid point runs first"
    done = table[table["state"] == "COMPLETE"]
    assert len(done) == 4 and sorted(Path(c).name for c in done["cfg"]) == sorted(Path(g).name for g in grid)
    assert sorted(done["kaggle/mAP"].round(3)) == [0.1, 0.2, 0.3, 0.4]
    assert len(calls) == 5  # 1 + interrupted + its rerun + the 2 points not yet tried

    # Run again: nothing left to do, and the interrupted trial is not queued a second time.
    assert len(run_sweep(sweep_file, **common)) == 5 and len(calls) == 5


def test_bad_keys_stop_the_sweep_before_any_study_or_trial(tmp_path: Path):
    data = tmp_path / "data.yaml"
    data.write_text("path: /nowhere\n")
    bad = tmp_path / "bad.yaml"
    doc = yaml.safe_load((REPO_ROOT / "yolo_configs/sweeps/optimizers.yaml").read_text())
    doc["parameters"]["mosiac"] = {"values": [0.0, 1.0]}  # a misspelt swept key
    bad.write_text(yaml.safe_dump(doc))
    good = REPO_ROOT / "yolo_configs/sweeps/optimizers.yaml"
    for sweep_file, overrides, message in [
        (good, [("lr_0", 3)], "'lr_0' is not a valid YOLO argument"),
        (bad, [], "'mosiac' is not a valid YOLO argument"),
    ]:
        with pytest.raises(UserError, match=message):
            run_sweep(sweep_file, data=str(data), overrides=overrides, out_dir=tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()
