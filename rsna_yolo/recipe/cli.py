"""``rsna-yolo recipe RECIPE.yaml [--out DIR] [--plan] [--hours H] [--set key=value ...]``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from rsna_yolo.core.cli import UserError, call_reporting_errors

PROG = "rsna-yolo recipe"
DEFAULT_OUT = "runs/recipes"

DESCRIPTION = """\
Run a whole recipe from a YAML file: the data, the conversion, a sweep, the detector and classifier (folds),
flip TTA, the gate and the threshold tuned out of fold, the submission and one report.html. Each step is an
existing command, recorded in DIR/recipe.json (its command line, key, time, peak memory and scores)."""

EPILOG = """\
shipped recipes (yolo_configs/recipes/): tiny.yaml (every step at its smallest, synthetic: about a minute on
2 cores), demo.yaml (what `make demo` runs), study.yaml (scripts/study.sh's steps), hard_bench.yaml (the
whole recipe on the frozen hard level), winners.yaml (the real data on one GPU: 5 folds at the winners'
sizes), real.yaml (what `make demo DATA=...` runs). The keys: docs/recipes.md.

Rerun the same command after an interruption (Ctrl-C, kill -9, a full disk): finished steps are kept, the
interrupted one finishes, and the submission has the bytes of an uninterrupted run. Change a key (in the
file or with --set) and rerun: exactly the steps that use it run again, and the line says what changed.

examples:
  rsna-yolo recipe yolo_configs/recipes/winners.yaml --set data.kaggle=~/rsna --plan
  rsna-yolo recipe yolo_configs/recipes/winners.yaml --set data.kaggle=~/rsna --hours 8
  rsna-yolo recipe yolo_configs/recipes/demo.yaml --out demo --set detector.epochs=10
"""


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", type=Path, help="the recipe file (e.g. yolo_configs/recipes/tiny.yaml)")
    parser.add_argument("--out", type=Path, help=f"output folder (default: {DEFAULT_OUT}/<recipe name>)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a key, e.g. --set detector.epochs=5 (repeatable; values read as YAML)",
    )
    parser.add_argument(
        "--plan",
        action="store_true",
        help="train nothing: probe this machine for about a minute and print every step with "
        "its command, estimated time, disk and peak memory, and the total",
    )
    parser.add_argument(
        "--hours",
        type=float,
        metavar="H",
        help="scale the epochs (below half of them, the folds) so the plan fits H hours; "
        "prints what it changed (probes first, as --plan)",
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    ns = build_parser(prog).parse_args(argv)
    return call_reporting_errors(prog, run, ns)


def run(ns: argparse.Namespace, echo=print) -> int:
    from rsna_yolo.recipe import checks, plan
    from rsna_yolo.recipe.report import worth_lines, write_report
    from rsna_yolo.recipe.runner import Runner, read_record
    from rsna_yolo.recipe.schema import load_recipe
    from rsna_yolo.recipe.steps import RECIPE_JSON, build_steps, check_layout

    if ns.hours is not None and ns.hours <= 0:
        raise UserError(f"--hours must be positive, got {ns.hours}")
    recipe = load_recipe(ns.recipe, ns.sets)
    out = (ns.out or Path(DEFAULT_OUT) / recipe["name"]).expanduser().resolve()
    notes = checks.check_data(recipe)
    checks.check_weights(recipe)
    checks.check_sweep(recipe)
    checks.check_gpu(recipe)
    record = read_record(out)
    if "convert" not in record["steps"]:  # a data folder this recipe did not write: never re-split it
        checks.check_split(recipe, out)
    for note in notes:
        echo(f"note: {note}")
    if recipe["data"]["synthetic"] is not None:
        os.environ.setdefault("WANDB_MODE", "offline")  # synthetic data never touches the network
    if ns.plan or ns.hours is not None:
        out.mkdir(parents=True, exist_ok=True)
        found = plan.probe(recipe, out, echo=echo)
        changed: list[str] = []
        if ns.hours is not None:
            recipe, changed = plan.fit_hours(recipe, out, found, ns.hours)
        rows = plan.estimate(recipe, out, found)
        plan.write_plan(out, rows, found, changed)
        for line in plan.plan_lines(rows, found, changed, gpu=checks.wants_gpu(recipe)):
            echo(line)
        checks.check_disk(out, sum(r["bytes"] for r in rows))
        if ns.plan:
            if ns.hours is not None:
                echo(
                    "to run it: the same command without --plan (with --hours, or the changes above as --set)"
                )
            return 0
    if not (
        out / RECIPE_JSON
    ).is_file():  # a first run: room for all of it (the plan's figure if one was made)
        planned = plan.read_plan(out)
        films = plan.counts(recipe)
        checks.check_disk(out, planned or checks.coarse_bytes(recipe, films["train"] + films["test"]))
    steps = build_steps(recipe, out)
    check_layout(steps)
    meta = {"recipe": recipe["name"], "file": str(ns.recipe), "sets": list(ns.sets), "settings": recipe}
    runner = Runner(steps, out, meta, echo=echo, report=lambda o: write_report(o, steps, recipe))
    runner.run()
    echo(f"recipe {recipe['name']}: done; {out / 'report.html'} and {out / RECIPE_JSON}")
    for line in worth_lines(out, recipe):
        echo(line)
    if recipe["data"]["synthetic"] is not None:
        echo("SYNTHETIC data: these scores say nothing about real X-rays.")
    return 0
