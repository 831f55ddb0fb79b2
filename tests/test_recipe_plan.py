"""A recipe is checked before anything runs (one line naming the key), ``--plan`` trains nothing and names
every step with its estimate, ``--hours`` scales the epochs; a converted folder is never re-split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rsna_yolo.core.cli import UserError
from rsna_yolo.recipe.plan import fit_hours
from rsna_yolo.recipe.schema import load_recipe
from rsna_yolo.recipe.steps import build_steps
from tests.conftest import REPO_ROOT, subprocess_env

RECIPES = REPO_ROOT / "yolo_configs" / "recipes"
TINY = RECIPES / "tiny.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "sets", "message"),
    [
        (
            "detector: {epoch: 3}\ndata: {synthetic: {}}",
            [],
            "unknown key detector.epoch (did you mean detector.epochs?)",
        ),
        (
            "detector: {epochs: three}\ndata: {synthetic: {}}",
            [],
            "detector.epochs must be an integer, got 'three'",
        ),
        (
            "data: {synthetic: {difficulty: medium}}",
            [],
            "data.synthetic.difficulty must be one of easy, hard",
        ),
        ("data: {}", [], "give exactly one of data.kaggle"),
        (
            "data: {synthetic: {}}\ndetector: {args: {epochs: 3}}",
            [],
            "detector.args.epochs: set by the recipe",
        ),
        ("data: {synthetic: {}}", ["convert.folds=0"], "convert.folds must be 1"),
        ("data: {synthetic: {}}", ["tuning.tta=yes please"], "tuning.tta must be true/false"),
        ("data: {synthetic: {}}", ["detector.epochs"], "--set detector.epochs: expected key=value"),
        ("data: {synthetic: {}}", ["detector.epochz=3"], "unknown key detector.epochz"),
        ("[1, 2]", [], "a recipe is a mapping of keys"),
    ],
)
def test_bad_recipe_is_one_line_naming_the_key(tmp_path: Path, text: str, sets, message: str) -> None:
    with pytest.raises(UserError) as err:
        load_recipe(write(tmp_path, text), sets)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_files_are_refused_before_anything_runs(tmp_path: Path, capsys) -> None:
    cases = [
        (
            ["--set", "detector.model=yolo11s.pt"],
            "detector.model: model=yolo11s.pt: pretrained weights are not",
        ),
        (["--set", "classifier.pretrained=nowhere.pt"], "classifier.pretrained: nowhere.pt: no such"),
        (["--set", "data.synthetic=null", "--set", f"data.kaggle={tmp_path}"], "stage_2_train_labels.csv"),
        (["--set", "device=0"], "asks for a GPU"),
        (["--set", "sweep.file=nowhere.yaml"], "sweep.file: nowhere.yaml: no such sweep file"),
    ]
    from rsna_yolo.recipe.cli import main

    for extra, message in cases:
        out = tmp_path / "out"
        assert main([str(TINY), "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("rsna-yolo recipe: error: "), err
        assert not out.exists()  # nothing written


def test_every_shipped_recipe_is_valid_and_names_its_steps(tmp_path: Path) -> None:
    (tmp_path / "rsna" / "stage_2_test_images").mkdir(parents=True)
    for path in sorted(RECIPES.glob("*.yaml")):
        kaggle = "kaggle" in yaml.safe_load(path.read_text())["data"]
        sets = [f"data.kaggle={tmp_path / 'rsna'}"] if kaggle else []
        recipe = load_recipe(path, sets)
        names = [s.name for s in build_steps(recipe, tmp_path / path.stem)]
        assert names[-2:] == ["submit", "report"] and "detector" in names, path.name


def test_plan_trains_nothing_and_names_every_step(tmp_path: Path) -> None:
    """tiny.yaml without a classifier and test patients (the probe then converts and trains one model)."""
    out = tmp_path / "plan"
    sets = ["--set", "classifier=null", "--set", "data.synthetic.test_patients=0"]
    cmd = [sys.executable, "-m", "rsna_yolo", "recipe", str(TINY), "--out", str(out), "--plan", *sets]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    steps = [s.name for s in build_steps(load_recipe(TINY, sets[1::2]), out)]
    assert steps == ["data", "convert", "detector", "report"]
    for i, name in enumerate(steps, 1):
        assert f"[{i}/{len(steps)}] {name}: ~" in done.stdout, name
    assert "nothing was trained (--plan)" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["plan.json"]  # no data, no runs, no record, no probe
    plan = json.loads((out / "plan.json").read_text())
    assert [r["step"] for r in plan["steps"]] == steps
    assert all(r["seconds"] > 0 for r in plan["steps"] if r["step"] not in ("report",))
    # --hours on the same probe: a budget below the plan scales the epochs down, and says so.
    recipe = load_recipe(TINY, ["detector.epochs=40", *sets[1::2]])
    fitted, changed = fit_hours(recipe, out, plan["probe"], hours=plan["total_seconds"] / 3600)
    assert fitted["detector"]["epochs"] < 40 and any(c.startswith("detector.epochs 40 -> ") for c in changed)


def test_a_converted_folder_is_never_resplit(tmp_path: Path) -> None:
    from convert.rsna import convert_rsna
    from convert.synth import generate

    generate(tmp_path / "kaggle", patients=12, test_patients=0, seed=0, imgsz=128)
    quiet = {"workers": 1, "progress": False, "echo": lambda *a: None, "imgsz": 64}
    convert_rsna(tmp_path / "kaggle", tmp_path / "ds", folds=3, **quiet)
    convert_rsna(tmp_path / "kaggle", tmp_path / "ds", folds=3, **quiet)  # the same split: fine
    with pytest.raises(UserError, match=r"split with --folds 3 --seed 0, not --folds 2 --seed 0"):
        convert_rsna(tmp_path / "kaggle", tmp_path / "ds", folds=2, **quiet)


def test_no_room_on_the_disk_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from rsna_yolo.recipe.checks import check_disk, coarse_bytes
    from rsna_yolo.recipe.plan import counts

    recipe = load_recipe(TINY)
    films = counts(recipe)
    need = coarse_bytes(recipe, films["train"] + films["test"])
    assert 1e6 < need < 5e9  # films, PNGs and four training runs
    check_disk(tmp_path / "new" / "out", need)  # a folder not made yet: its disk is the parent's
    with pytest.raises(
        UserError, match=r"--out .*GB free on its disk, the recipe writes about 1000000000\.0 GB"
    ):
        check_disk(tmp_path / "out", 1e18)
    assert not (tmp_path / "out").exists()


def test_a_sweep_step_feeds_its_best_arguments_to_the_detector_folds(tmp_path: Path) -> None:
    """study.yaml's steps: the sweep on the dataset's split, then the folds with args_from= its best_args.txt
    before the detector's own words (later words win), as python -m train parses them. (The sweep command
    itself runs in tests/test_sweep.py; a whole recipe with a sweep costs 45 s of the suite's budget.)"""
    from rsna_yolo.train.args import key_value_pairs

    recipe = load_recipe(RECIPES / "study.yaml")
    steps = {s.name: s for s in build_steps(recipe, tmp_path)}
    assert list(steps) == ["data", "convert", "sweep", "detector", "classifier", "gate", "submit", "report"]
    sweep, detector = steps["sweep"], steps["detector"]
    assert sweep.argv[:3] == ["train", "sweep", str(RECIPES.parent / "sweeps" / "study.yaml")]
    assert "--count" in sweep.argv and "epochs=8" in sweep.argv and "sweep" in detector.after
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "best_args.txt").write_text("lr0=0.00368 mosaic=0.79 box=7.76 epochs=8\n")
    words = [w for w in detector.argv[3:] if "=" in w]  # after "train folds D/folds"
    pairs = dict(key_value_pairs(words))
    assert pairs["lr0"] == 0.00368 and pairs["box"] == 7.76 and pairs["epochs"] == 15  # the recipe's 15 wins


def test_plan_of_the_real_download_probes_its_films(tmp_path: Path, sample_dir: Path) -> None:
    """real.yaml on the real sample (complete CSVs, 12 JPEG-Baseline DICOMs, no test folder), sized down:
    the probe links the download's films, the counts come from its CSVs, and without test films there is no
    submit step (said in one line)."""
    out = tmp_path / "plan"
    sets = [f"data.kaggle={sample_dir}", "detector.model=yolov8n.yaml", "detector.cfg=null",
            "convert.imgsz=64", "classifier=null", "device=cpu",
            "detector.args={workers: 0, wandb: false}"]  # fmt: skip
    cmd = [
        sys.executable,
        "-m",
        "rsna_yolo",
        "recipe",
        str(RECIPES / "real.yaml"),
        "--out",
        str(out),
        "--plan",
    ]
    cmd += [w for s in sets for w in ("--set", s)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no stage_2_test_images in" in done.stdout and "no submit step" in done.stdout
    assert "(12 + 0 films, each model 2 epochs)" in done.stdout
    plan = json.loads((out / "plan.json").read_text())
    assert [r["step"] for r in plan["steps"]] == ["convert", "detector", "report"]
    convert = plan["steps"][0]
    assert convert["seconds"] > 60  # 26,684 patients in the labels CSV, at the probe's rate for 12 of them
    assert sorted(p.name for p in out.iterdir()) == ["plan.json"]
    assert not any(sample_dir.rglob("*.png"))  # the download is only read
