"""yolo_configs/: every hyperparameter file is accepted by Ultralytics' own loader, works with the `yolo` CLI
as is, holds no machine path; every sweep file is a W&B sweep that maps onto an Optuna search space."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, subprocess_env
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from tiny_yolo_data import make_tiny_dataset

from rsna_yolo.train.args import split_values
from rsna_yolo.train.sweep_spec import default_count, example_values, grid_values, load_sweep

HYP = sorted((REPO_ROOT / "yolo_configs" / "hyp").glob("*.yaml"))
SWEEPS = sorted((REPO_ROOT / "yolo_configs" / "sweeps").glob("*.yaml"))


def test_expected_files_exist():
    names = {p.stem for p in HYP}
    assert {"baseline", "xray", "sgd", "adam", "adamw", "auto", "loss_box", "loss_cls", "loss_dfl"} <= names
    assert {"small_data", "classify_film"} <= names
    assert {"models", "optimizers", "bayes", "epochs_patience"} <= {p.stem for p in SWEEPS}


@pytest.mark.parametrize("path", HYP, ids=lambda p: p.name)
def test_hyp_file_accepted_by_ultralytics(path: Path):
    from ultralytics.cfg import DEFAULT_CFG_DICT, get_cfg
    from ultralytics.utils import YAML

    text = path.read_text()
    assert text.startswith("# "), "each file starts with a comment saying what it is for"
    assert "/work/" not in text and "/home/" not in text and ":\\" not in text  # no machine paths
    values = YAML.load(path)
    # get_cfg(cfg=path) alone does not reject unknown keys; as overrides of the defaults it runs Ultralytics'
    # check_dict_alignment (unknown keys) and check_cfg (types and ranges), exactly as training would.
    cfg = get_cfg(DEFAULT_CFG_DICT, overrides=values)
    for key, value in values.items():
        assert getattr(cfg, key) == value
    assert not {"data", "model", "epochs", "imgsz", "device"} & set(values), "only hyperparameters"


def test_unknown_hyp_key_is_rejected_by_the_same_check():
    from ultralytics.cfg import DEFAULT_CFG_DICT, get_cfg

    with pytest.raises(SyntaxError, match="lr_0"):
        get_cfg(DEFAULT_CFG_DICT, overrides={"lr_0": 0.01})


def test_xray_is_grayscale_appropriate():
    x = yaml.safe_load((REPO_ROOT / "yolo_configs/hyp/xray.yaml").read_text())
    assert (x["hsv_h"], x["hsv_s"], x["flipud"], x["mixup"]) == (0.0, 0.0, 0.0, 0.0)
    assert 0 < x["hsv_v"] <= 0.3 and x["fliplr"] == 0.5 and 0 < x["scale"] <= 0.5


def test_classify_film_keeps_the_whole_film_and_is_what_the_gating_bench_trains_with():
    """No crop of 50-100% of the area, no RandAugment, no erasing: the whole film's clues stay; the gating
    benchmark's ``_film`` classifiers train with this very file."""
    from ultralytics.cfg import DEFAULT_CFG_DICT, get_cfg
    from ultralytics.utils import YAML

    path = REPO_ROOT / "yolo_configs" / "hyp" / "classify_film.yaml"
    cfg = get_cfg(DEFAULT_CFG_DICT, overrides=YAML.load(path))
    assert cfg.auto_augment is None and cfg.erasing == 0.0 and cfg.scale <= 0.1
    assert cfg.hsv_h == cfg.hsv_s == 0.0 and cfg.fliplr == 0.5 and cfg.flipud == 0.0
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        import gating_bench
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    assert gating_bench.FILM_AUGMENT == ["cfg=yolo_configs/hyp/classify_film.yaml"]


def test_optimizer_variants_have_matching_learning_rates():
    lr = {
        n: yaml.safe_load((REPO_ROOT / f"yolo_configs/hyp/{n}.yaml").read_text())
        for n in ("sgd", "adam", "adamw")
    }
    assert [lr[n]["optimizer"] for n in ("sgd", "adam", "adamw")] == ["SGD", "Adam", "AdamW"]
    assert lr["sgd"]["lr0"] == 10 * lr["adam"]["lr0"] == 10 * lr["adamw"]["lr0"]


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_file_is_a_wandb_sweep_and_an_optuna_space(path: Path):
    doc = yaml.safe_load(path.read_text())
    classifier = doc["parameters"].get("task") == {"value": "classify"}
    metric = "classify/auc_opacity" if classifier else "kaggle/mAP"
    assert doc["metric"] == {"name": metric, "goal": "maximize"}
    assert doc["command"] == ["${env}", "python", "-m", "train", "${args_no_hyphens}"]
    assert "/work/" not in path.read_text()
    spec = load_sweep(path)
    assert set(spec.fixed) | set(spec.space) == set(doc["parameters"])
    for key, d in spec.space.items():
        spec_in = doc["parameters"][key]
        if "values" in spec_in:
            assert isinstance(d, CategoricalDistribution) and list(d.choices) == spec_in["values"]
        elif spec_in.get("distribution") == "log_uniform_values":
            assert (
                isinstance(d, FloatDistribution)
                and d.log
                and (d.low, d.high) == (spec_in["min"], spec_in["max"])
            )
        else:
            assert isinstance(d, (FloatDistribution, IntDistribution)) and d.low == spec_in["min"]
    # Every key is one `python -m train` takes (an Ultralytics argument or ours), checked as a trial would be.
    args, _ = split_values(list({**spec.fixed, **example_values(spec)}.items()))
    assert classifier or ("cfg" in args and Path(args["cfg"]).is_file())
    assert args.get("task") == ("classify" if classifier else None)
    if spec.method == "grid":
        sizes = [len(v["values"]) for v in doc["parameters"].values() if "values" in v]
        assert default_count(spec) == len(list(itertools.product(*grid_values(spec).values())))
        assert default_count(spec) == math.prod(sizes)


def test_models_sweep_covers_families_and_sizes():
    models = yaml.safe_load((REPO_ROOT / "yolo_configs/sweeps/models.yaml").read_text())["parameters"][
        "model"
    ]
    assert {f"{f}{s}.yaml" for f in ("yolov8", "yolo11", "yolo26") for s in "nsm"} <= set(models["values"])


def test_bayes_sweep_searches_the_listed_hyperparameters_with_hyperband():
    spec = load_sweep(REPO_ROOT / "yolo_configs/sweeps/bayes.yaml")
    wanted = {
        "lr0",
        "lrf",
        "momentum",
        "weight_decay",
        "batch",
        "imgsz",
        "warmup_epochs",
        "box",
        "cls",
        "dfl",
    }
    assert wanted <= set(spec.space) and spec.method == "bayes"
    assert spec.early_terminate["type"] == "hyperband" and spec.fixed["kaggle_every"] == 1


@pytest.mark.slow
def test_yolo_cli_trains_with_xray_hyp_as_is(tmp_path: Path):
    """`yolo detect train data=... cfg=yolo_configs/hyp/xray.yaml model=yolo11n.yaml` works unchanged."""
    data = make_tiny_dataset(tmp_path / "data", n_train=8, n_val=4)
    yolo = Path(sys.executable).with_name("yolo")
    cmd = [
        str(yolo), "detect", "train", f"data={data}", "cfg=yolo_configs/hyp/xray.yaml", "model=yolo11n.yaml",
        "imgsz=64", "epochs=1", "batch=4", "workers=0", "plots=False", f"project={tmp_path / 'runs'}",
        "name=cli",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    args = yaml.safe_load((tmp_path / "runs/cli/args.yaml").read_text())
    assert (args["hsv_h"], args["hsv_s"], args["mosaic"], args["imgsz"]) == (0.0, 0.0, 0.5, 64)
    assert (tmp_path / "runs/cli/weights/best.pt").is_file()
