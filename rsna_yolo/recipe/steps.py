"""A checked recipe as its steps: each an existing command line, what it reads and writes, and its key.

Every step but the report is a command a person could type (``rsna-yolo convert ...``, ``rsna-yolo train
folds ...``, ``rsna-yolo analysis submit ...``): the recipe runs that command and nothing else, so there is no
second implementation of any step. A step's **key** hashes its command (with the output folder written as
``$OUT``), the content of the files it reads from outside the recipe (model
and hyperparameter YAMLs, pretrained weights, a download's CSVs) and the keys of the steps it reads from; so a
changed recipe key changes exactly the steps that use it and the steps after them.

The output folder (``--out DIR``):

    DIR/kaggle/          the synthetic download (data.synthetic only)
    DIR/dataset/         the converted YOLO dataset (folds/, classify/)
    DIR/sweep/           the sweep's trials and best_args.txt (with a sweep)
    DIR/runs/det/        the detector: a fold set (fold0 ...) or one run
    DIR/runs/cls/        the classifier, the same way
    DIR/submission.csv   the Kaggle submission of the test films
    DIR/report.html      every step's scores and costs
    DIR/recipe.json      the record of every step (command, key, status, time, peak memory, scores)
    DIR/logs/<step>.log  each step's output
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.runs import (
    CLASSIFY_JSON,
    CLASSIFY_OOF_JSON,
    KAGGLE_JSON,
    KAGGLE_OOF_GATED_JSON,
    KAGGLE_OOF_JSON,
    KAGGLE_OOF_TTA_GATED_JSON,
    KAGGLE_OOF_TTA_JSON,
    rescore_dir,
)
from rsna_yolo.recipe.schema import DETECTOR_OF_THIS_RECIPE
from rsna_yolo.train.sweep import BEST_ARGS

KAGGLE_DIR = "kaggle"
DATASET_DIR = "dataset"
DETECTOR_RUN = "runs/det"
CLASSIFIER_RUN = "runs/cls"
SUBMISSION_CSV = "submission.csv"
REPORT_HTML = "report.html"
RECIPE_JSON = "recipe.json"
PLAN_JSON = "plan.json"
LOGS_DIR = "logs"
SWEEP_DIR = "sweep"
TEST_IMAGES = "stage_2_test_images"
LABEL_CSVS = ("stage_2_train_labels.csv", "stage_2_detailed_class_info.csv")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Step:
    """One step of a recipe. ``argv``: the ``rsna-yolo`` arguments (None for the report, built in process).
    ``after``: the steps whose outputs it reads. ``outputs``: what it writes (removed before it runs again
    for a changed key). ``resume``: how an interrupted run of it continues: ``rerun`` (the command finishes
    the job itself), ``restart`` (its outputs are removed first). ``score``: the JSON holding its tuned and
    held-out score."""

    name: str
    title: str
    argv: list[str] | None
    after: tuple[str, ...] = ()
    outputs: tuple[Path, ...] = ()
    inputs: tuple[Path, ...] = ()
    resume: str = "rerun"
    score: Path | None = None
    key: str = ""
    after_keys: dict[str, str] = field(default_factory=dict)

    def command(self, out: Path) -> str:
        """The command line a person would type (the output folder as given)."""
        if self.argv is None:
            return f"(built in process: {self.title})"
        return " ".join(["rsna-yolo", *(_quote(a) for a in self.argv)])


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


def file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _input_digest(path: Path) -> str:
    if path.is_file():
        return file_sha1(path)
    if path.is_dir():  # a folder read whole (a download's films): its listing, sizes and times
        entries = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in path.iterdir())
        return hashlib.sha1(json.dumps(entries).encode()).hexdigest()
    return "missing"


def key_of(step: Step, out: Path, keys: dict[str, str]) -> str:
    """The step's key: its command with ``out`` as ``$OUT``, its outside inputs' content, its upstream
    keys."""
    words = [w.replace(str(out), "$OUT") for w in (step.argv or [step.title])]
    payload = {
        "argv": words,
        "inputs": {str(p): _input_digest(p) for p in step.inputs},
        "after": {name: keys[name] for name in step.after},
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _train_words(section: dict, imgsz: int, device) -> list[str]:
    words = [f"model={section['model']}", f"imgsz={imgsz}", f"epochs={section['epochs']}"]
    if section.get("cfg"):
        words.append(f"cfg={section['cfg']}")
    words += [f"{k}={_yaml_word(v)}" for k, v in section["args"].items()]
    if device is not None:
        words.append(f"device={device}")
    return words


def _options(**values) -> list[str]:
    """``--name value`` words, in order (``test_patients`` -> ``--test-patients``).

    >>> _options(out="d", test_patients=3)
    ['--out', 'd', '--test-patients', '3']
    """
    return [word for key, value in values.items() for word in (f"--{key.replace('_', '-')}", str(value))]


def _yaml_word(value) -> str:
    return "None" if value is None else str(value)


def _local_file(value: str | None) -> Path | None:
    """A model/cfg/pretrained value as a local file to hash, when it is one (``yolo11n.yaml`` is built in)."""
    if not value:
        return None
    path = Path(value).expanduser()
    for candidate in (path, REPO / path):
        if candidate.is_file():
            return candidate.resolve()
    return None


def build_steps(recipe: dict, out: Path) -> list[Step]:
    """The steps of ``recipe`` writing into ``out`` (absolute), in order, with their keys."""
    out = Path(out).resolve()
    folds = recipe["convert"]["folds"]
    device = recipe["device"]
    steps: list[Step] = []
    data = recipe["data"]
    if data["synthetic"] is not None:
        syn = data["synthetic"]
        src = out / KAGGLE_DIR
        steps.append(
            Step(
                "data",
                f"{syn['patients']} synthetic patients ({syn['difficulty']}) + {syn['test_patients']} test",
                [
                    "convert",
                    "synth",
                    *_options(
                        out=src,
                        patients=syn["patients"],
                        test_patients=syn["test_patients"],
                        difficulty=syn["difficulty"],
                        imgsz=syn["imgsz"],
                        seed=syn["seed"],
                    ),
                    "--overwrite",
                ],
                outputs=(src,),
                resume="restart",
            )
        )
        source_inputs: tuple[Path, ...] = ()
    else:
        src = Path(data["kaggle"]).expanduser().resolve()
        source_inputs = (*(src / name for name in LABEL_CSVS), src / TEST_IMAGES)
    conv = recipe["convert"]
    dataset = out / DATASET_DIR
    split = ["--folds", str(folds)] if folds > 1 else ["--val-fraction", str(conv["val_fraction"])]
    classify = ["--classify"] if recipe["classifier"] is not None else []
    steps.append(
        Step(
            "convert",
            f"conversion to {conv['imgsz']} px" + (f", {folds} folds" if folds > 1 else ""),
            [
                "convert",
                "rsna",
                *_options(src=src, out=dataset, imgsz=conv["imgsz"]),
                *split,
                *_options(seed=conv["seed"]),
                *classify,
                "--no-progress",
            ],
            after=("data",) if data["synthetic"] is not None else (),
            outputs=(dataset,),
            inputs=source_inputs,
        )
    )
    det, cls = recipe["detector"], recipe["classifier"]
    det_run, cls_run = out / DETECTOR_RUN, out / CLASSIFIER_RUN
    detector = _train_step("detector", det, det_run, dataset, folds, conv["imgsz"], device, "detect")
    if recipe["sweep"] is not None:  # the best trial's arguments first: the detector's own words win
        steps.append(_sweep_step(recipe["sweep"], det, out / SWEEP_DIR, dataset, conv["imgsz"], device))
        first = detector.argv.index(next(w for w in detector.argv if w.startswith("model=")))
        detector.argv.insert(first, f"args_from={out / SWEEP_DIR / BEST_ARGS}")
        detector.after = (*detector.after, "sweep")
    steps.append(detector)
    tta = recipe["tuning"]["tta"]
    if tta:
        steps.append(_tta_step(steps[-1], det_run, dataset, folds, device))
    if cls is not None:
        step = _train_step("classifier", cls, cls_run, dataset, folds, conv["imgsz"], device, "classify")
        if cls["pretrained"] == DETECTOR_OF_THIS_RECIPE:
            step.argv.append(f"pretrained={det_run}")  # a fold set: fold k from the detector's fold k
            step.after = (*step.after, "detector")
        steps.append(step)
        det_step = next(s for s in steps if s.name == "detector")
        steps.append(_gate_step(det_step, det_run, cls_run, dataset, folds, tta, device))
    if has_test_films(
        recipe
    ):  # a download without its test folder, or no synthetic test patients: no submission
        steps.append(_submit_step(recipe, steps, out, src, det_run, cls_run, folds, device))
    steps.append(
        Step(
            "report",
            "the recipe's report (report.html)",
            None,
            after=tuple(s.name for s in steps),
            outputs=(out / REPORT_HTML,),
            resume="restart",
        )
    )
    keys: dict[str, str] = {}
    for step in steps:
        step.key = key_of(step, out, keys)
        keys[step.name] = step.key
    return steps


def has_test_films(recipe: dict) -> bool:
    """Whether the data has test films to submit: synthetic test patients, or the download's test folder."""
    syn = recipe["data"]["synthetic"]
    if syn is not None:
        return syn["test_patients"] > 0
    return (Path(recipe["data"]["kaggle"]).expanduser() / TEST_IMAGES).is_dir()


def _train_step(name, section, run: Path, dataset: Path, folds: int, conv_imgsz: int, device, task) -> Step:
    imgsz = section["imgsz"] or conv_imgsz
    words = _train_words(section, imgsz, device)
    if task == "classify":
        words.insert(0, "task=classify")
    pretrained = section["pretrained"]
    if pretrained and pretrained != DETECTOR_OF_THIS_RECIPE:
        words.append(f"pretrained={pretrained}")
    inputs = tuple(p for p in map(_local_file, (section["model"], section["cfg"], pretrained)) if p)
    what = f"{section['model']}, {section['epochs']} epochs at {imgsz} px"
    if folds > 1:
        argv = [
            "train",
            "folds",
            str(dataset / "folds"),
            *words,
            f"project={run.parent}",
            f"name={run.name}",
            "--restart-killed",
        ]
        title = f"{folds} folds of {what}"
        score = run / (CLASSIFY_OOF_JSON if task == "classify" else KAGGLE_OOF_JSON)
        resume = "rerun"  # finished folds are kept; a killed fold starts again
    else:
        data = dataset / ("classify" if task == "classify" else "data.yaml")
        argv = ["train", f"data={data}", *words, f"project={run.parent}", f"name={run.name}"]
        title = what
        score = run / (CLASSIFY_JSON if task == "classify" else KAGGLE_JSON)
        resume = "restart"
    return Step(
        name,
        title,
        argv,
        after=("convert",),
        outputs=(run,),
        inputs=inputs,
        resume=resume,
        score=score,
    )


def _gate_step(det_step: Step, det_run, cls_run, dataset, folds, tta, device) -> Step:
    if folds > 1:  # run_folds again: every fold is done, so it only tunes the gate on the out-of-fold files
        argv = [*det_step.argv, "--classifier", str(cls_run), *(["--tta"] if tta else [])]
        score = det_run / (KAGGLE_OOF_TTA_GATED_JSON if tta else KAGGLE_OOF_GATED_JSON)
        outputs = tuple(
            det_run / n
            for n in (KAGGLE_OOF_GATED_JSON, KAGGLE_OOF_TTA_GATED_JSON)
            if tta or n == KAGGLE_OOF_GATED_JSON
        )
    else:
        extra = ["--classifier", str(cls_run), *(["--tta"] if tta else [])]
        argv = _rescore_argv(det_run, dataset, device, extra)
        gated = rescore_dir(det_run, *(["tta"] if tta else []), "gated")
        score, outputs = gated / KAGGLE_JSON, (gated,)
    where = " out of fold" if folds > 1 else " on val"
    return Step(
        "gate",
        "the classifier's gate, tuned" + (" with flip TTA" if tta else "") + where,
        argv,
        after=("detector", *(["tta"] if tta else []), "classifier"),
        outputs=outputs,
        score=score,
    )


def _sweep_step(sweep: dict, det: dict, out: Path, dataset: Path, conv_imgsz: int, device) -> Step:
    """A local Bayesian sweep (``train sweep``) on the dataset's split (fold 0's, with folds) with the
    detector's model, size, hyperparameter file and arguments, each trial ``sweep.epochs`` epochs."""
    words = _train_words({**det, "epochs": sweep["epochs"]}, det["imgsz"] or conv_imgsz, device)
    options = _options(data=dataset / "data.yaml", count=sweep["trials"], out=out)
    argv = ["train", "sweep", str(_local_file(sweep["file"]) or sweep["file"]), *options, *words]
    title = f"a sweep of {sweep['file']}: {sweep['trials']} trials of {sweep['epochs']} epochs"
    inputs = tuple(p for p in (_local_file(sweep["file"]),) if p)
    return Step("sweep", title, argv, after=("convert",), outputs=(out,), inputs=inputs)


def _tta_step(det_step: Step, det_run, dataset, folds, device) -> Step:
    if folds > 1:  # run_folds again with --tta: each fold's val with flips, the fusion tuned out of fold
        argv = [*det_step.argv, "--tta"]
        score = det_run / KAGGLE_OOF_TTA_JSON
        outputs = (score,)
        title = "flip TTA and its fusion, tuned out of fold"
    else:
        tuned = rescore_dir(det_run, "tta")
        argv = _rescore_argv(det_run, dataset, device, ["--tta"])
        score, outputs, title = tuned / KAGGLE_JSON, (tuned,), "flip TTA and its fusion, tuned on val"
    return Step("tta", title, argv, after=("detector",), outputs=outputs, score=score)


def _rescore_argv(det_run: Path, dataset: Path, device, extra: list[str]) -> list[str]:
    """``analysis rescore`` of one run on its val split (one train/val split), without Ultralytics' mAPs."""
    data = str(dataset / "data.yaml")
    return [
        "analysis",
        "rescore",
        str(det_run),
        "--data",
        data,
        *extra,
        "--no-val",
        "--quiet",
        *_device(device),
    ]


def _device(device) -> list[str]:
    return [] if device is None else ["--device", str(device)]


def _submit_step(recipe, steps, out, src, det_run, cls_run, folds, device) -> Step:
    tuned = next((s for s in reversed(steps) if s.name in ("gate", "tta")), None)  # the last tuning
    from_run = tuned.score if tuned else det_run / (KAGGLE_OOF_JSON if folds > 1 else KAGGLE_JSON)
    test = src / TEST_IMAGES
    argv = [
        "analysis",
        "submit",
        "--weights",
        str(det_run),
        "--from-run",
        str(from_run),
        "--images",
        str(test),
        "--out",
        str(out / SUBMISSION_CSV),
        "--quiet",
        *_device(device),
    ]
    if recipe["classifier"] is not None:
        argv[4:4] = ["--classifier", str(cls_run)]
    if recipe["tuning"]["tta"]:
        argv.append("--tta")
    if folds == 1:
        argv += ["--imgsz", str(recipe["detector"]["imgsz"] or recipe["convert"]["imgsz"])]
    after = tuple(s.name for s in steps if s.name in ("data", "detector", "classifier", "gate", "tta"))
    return Step(
        "submit",
        "the test films' submission",
        argv,
        after=after,
        outputs=(out / SUBMISSION_CSV,),
        resume="restart",
    )


def check_layout(steps: list[Step]) -> None:
    """Every step reads only what an earlier step writes (a guard for the builder above)."""
    seen: set[str] = set()
    for step in steps:
        missing = [a for a in step.after if a not in seen]
        if missing:
            raise UserError(f"recipe step {step.name}: reads {missing} before they run")
        seen.add(step.name)
