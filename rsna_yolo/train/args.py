"""``key=value`` arguments exactly as the ``yolo`` command line reads them, plus this project's own keys.

Parsing reuses Ultralytics' helpers (``merge_equals_args``, ``parse_key_value_pair``,
``check_dict_alignment``) and its rule for ``cfg=``: the YAML's values fill in keys not given on the command
line, and every key given explicitly wins, before or after ``cfg=`` (Ultralytics 8.4 ``entrypoint``; older
notes said the order mattered: putting ``cfg=`` first is safe with every version).

Our own keys are removed before the rest goes to Ultralytics; see ``TrainOptions``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rsna_yolo import offline
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.layout import CLASSIFY_VIEW, MANIFEST_CSV

DATA_ENV = "RSNA_YOLO_DATA"  # data.yaml for runs started without data= (e.g. by `wandb agent`)
HUB_HELP = "https://github.com/ultralytics/assets/releases"


@dataclass(frozen=True)
class TrainOptions:
    """What `python -m train` adds to Ultralytics' arguments (given as ``key=value`` like the others).

    kaggle_every: score the current weights on the val split with the Kaggle metric every N epochs and log
        ``kaggle/mAP`` per epoch (0 = only once, after training). Sweeps prune on this value when set. The
        scored epoch with the best value is kept as ``weights/best_kaggle.pt``; the final rescoring scores it
        and ``best.pt`` and keeps the better one (``kaggle.json`` ``checkpoint``).
    kaggle_patience: stop training after this many scored epochs without a better Kaggle mAP (0 = never;
        needs ``kaggle_every``). Ultralytics' ``patience`` keeps its own meaning (its fitness, every epoch).
    wandb: log the run to W&B (offline unless configured otherwise, see rsna_yolo/offline.py).
    wandb_project / wandb_group: W&B project and group (a local sweep sets the group to its name).
    rescore: rescore best.pt with the Kaggle metric after training and write kaggle.json.
    """

    kaggle_every: int = 0
    kaggle_patience: int = 0
    wandb: bool = True
    wandb_project: str | None = None
    wandb_group: str | None = None
    rescore: bool = True

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainOptions:
        """Build from parsed values, checking types (``kaggle_every=2``, ``wandb=False``...)."""
        opts = cls(**values)
        for key in ("kaggle_every", "kaggle_patience"):
            value = getattr(opts, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UserError(f"{key}={value!r}: expected a whole number of epochs >= 0")
        if opts.kaggle_patience and not opts.kaggle_every:
            raise UserError(
                f"kaggle_patience={opts.kaggle_patience}: counts epochs scored with the Kaggle metric; "
                "also pass kaggle_every=N (score every Nth epoch)"
            )
        for key in ("wandb", "rescore"):
            if not isinstance(getattr(opts, key), bool):
                raise UserError(f"{key}={getattr(opts, key)!r}: expected True or False")
        return opts


OPTION_KEYS = frozenset(f.name for f in fields(TrainOptions))
# Tokens of `yolo detect train ...` accepted (and ignored) so a yolo command line can be pasted as is.
YOLO_WORDS = frozenset({"detect", "train"})
TASKS = ("detect", "classify")


def parse_key_values(argv: list[str]) -> tuple[dict[str, Any], TrainOptions]:
    """Split ``key=value`` tokens into Ultralytics train arguments and our ``TrainOptions``.

    Values are typed like the ``yolo`` CLI types them (``epochs=3`` -> 3, ``cos_lr=True`` -> True).
    Unknown keys raise ``UserError`` with Ultralytics' close-match hint.

    >>> args, opts = parse_key_values(["epochs=3", "imgsz", "=", "64", "kaggle_every=1", "wandb=False"])
    >>> args, opts.kaggle_every, opts.wandb
    ({'epochs': 3, 'imgsz': 64}, 1, False)
    """
    return split_values(key_value_pairs(argv))


def given_options(argv: list[str]) -> set[str]:
    """The names of our ``TrainOptions`` given explicitly among ``key=value`` tokens (``wandb=False`` ...).

    >>> sorted(given_options(["device=cpu", "wandb=False", "--kaggle_every=2"]))
    ['kaggle_every', 'wandb']
    """
    return {key for key, _ in key_value_pairs(argv)} & OPTION_KEYS


def key_value_pairs(argv: list[str]) -> list[tuple[str, Any]]:
    """``key=value`` tokens (``key = value`` and ``--key=value`` too) -> typed ``(key, value)`` pairs, in
    order, exactly as the ``yolo`` command line reads them; the words ``detect`` and ``train`` of a pasted
    ``yolo detect train`` line are skipped. Anything else is a ``UserError``.

    >>> key_value_pairs(["detect", "train", "epochs=3", "lr0", "=", "0.01", "--cos_lr=True"])
    [('epochs', 3), ('lr0', 0.01), ('cos_lr', True)]
    """
    from ultralytics.cfg import merge_equals_args, parse_key_value_pair

    try:
        tokens = expand_args_from(merge_equals_args(list(argv)))
    except SyntaxError as exc:
        raise UserError(str(exc).strip()) from None
    pairs = []
    for token in tokens:
        token = token.removeprefix("--")
        if token in YOLO_WORDS:
            continue
        if "=" not in token:
            raise UserError(f"'{token}': expected key=value (as with `yolo detect train`), e.g. epochs=10")
        try:
            pairs.append(parse_key_value_pair(token))
        except AssertionError as exc:
            raise UserError(f"'{token}': {exc}") from None
    return pairs


ARGS_FROM = "args_from"
"""``args_from=FILE``: the ``key=value`` words of FILE in its place (a sweep's ``best_args.txt``); later words
win, so ``args_from=SWEEP/best_args.txt epochs=30`` trains the best trial's arguments for 30 epochs."""


def expand_args_from(tokens: list[str]) -> list[str]:
    """``args_from=FILE`` tokens replaced by the words of FILE (one level: FILE may not name another).

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".txt") as fh:
    ...     _ = fh.write("lr0=0.01 mosaic=0.5\\n")
    ...     fh.flush()
    ...     expand_args_from(["model=m.yaml", f"args_from={fh.name}", "epochs=3"])
    ['model=m.yaml', 'lr0=0.01', 'mosaic=0.5', 'epochs=3']
    """
    out: list[str] = []
    for token in tokens:
        key, sep, value = token.removeprefix("--").partition("=")
        if not sep or key != ARGS_FROM:
            out.append(token)
            continue
        try:
            words = Path(value).expanduser().read_text().split()
        except OSError as exc:
            raise UserError(f"{ARGS_FROM}={value}: cannot read it ({exc.strerror or exc})") from None
        if any(w.removeprefix("--").startswith(f"{ARGS_FROM}=") for w in words):
            raise UserError(f"{ARGS_FROM}={value}: it names {ARGS_FROM}= itself; give its words instead")
        out.extend(words)
    return out


def split_values(pairs: list[tuple[str, Any]]) -> tuple[dict[str, Any], TrainOptions]:
    """Typed ``(key, value)`` pairs, in command-line order -> Ultralytics train arguments and our options.

    ``cfg=hyp.yaml`` is applied as Ultralytics' entrypoint applies it: the YAML's values fill in the keys
    not given explicitly (in any position). Unknown keys raise ``UserError`` with Ultralytics' hint.
    """
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_dict_alignment
    from ultralytics.utils import LOGGER, YAML

    overrides: dict[str, Any] = {}
    for key, value in pairs:
        if key == "cfg" and value is not None:
            cfg_path = resolve_cfg(str(value))
            overrides = {**{k: v for k, v in YAML.load(cfg_path).items() if k != "cfg"}, **overrides}
            overrides["cfg"] = str(cfg_path)  # kept so args.yaml records which hyperparameter file was used
        else:
            overrides[key] = value
    options = {k: overrides.pop(k) for k in list(overrides) if k in OPTION_KEYS}
    LOGGER.disabled = True  # check_dict_alignment also logs the whole `yolo` help text
    try:
        check_dict_alignment(DEFAULT_CFG_DICT, overrides)
    except SyntaxError as exc:
        raise UserError(" ".join(str(exc).split())) from None
    finally:
        LOGGER.disabled = False
    if overrides.pop("mode", "train") != "train":
        raise UserError("mode: python -m train trains (use `yolo val` / `analysis rescore` to evaluate)")
    task = overrides.pop("task", "detect")
    if task not in TASKS:
        raise UserError(f"task={task}: python -m train trains detectors (task=detect) or classifiers "
                        "(task=classify)")  # fmt: skip
    opts = TrainOptions.from_dict(options)
    if task == "classify":
        overrides["task"] = task  # absent for detection, as Ultralytics' own default
        if opts.kaggle_every:
            raise UserError(
                "kaggle_every: the Kaggle metric scores boxes; a classifier (task=classify) is evaluated "
                "after training instead (classify.json: accuracy, per-class recall, ROC AUC of P(opacity))"
            )
    return overrides, opts


def resolve_cfg(value: str) -> Path:
    """A ``cfg=`` path: as given (relative to the current directory), else relative to the repository."""
    for candidate in (Path(value), offline.REPO_ROOT / value):
        if candidate.is_file():
            return candidate.resolve()
    raise UserError(f"cfg={value}: file not found (hyperparameter files are in yolo_configs/hyp/)")


def resolve_data(args: dict[str, Any], task: str = "detect") -> Path:
    """The dataset: ``data=`` or, failing that, ``$RSNA_YOLO_DATA``; must exist. A detector trains on a
    data YAML; a classifier (``task=classify``) on a classification view, a folder with ``train/`` and
    ``val/`` class folders (``python -m convert classify D`` writes ``D/classify``)."""
    value = args.get("data") or os.environ.get(DATA_ENV)
    if not value:
        raise UserError(
            f"no dataset: pass data=path/to/data.yaml (written by `python -m convert rsna`) or set {DATA_ENV}"
        )
    path = Path(str(value)).expanduser()
    if task == "classify":
        if path.is_dir() and (path / "train").is_dir() and (path / "val").is_dir():
            return path.resolve()
        root = path.parent if path.is_file() else path
        view = root / CLASSIFY_VIEW if (root / MANIFEST_CSV).is_file() else f"D/{CLASSIFY_VIEW}"
        hint = f"data={view}"
        raise UserError(
            f"data={value}: task=classify needs a classification view (train/ and val/ class folders): "
            f"{hint}, made by `python -m convert classify {root}`"
        )
    if path.is_dir():
        raise UserError(
            f"data={value}: a folder; a detector trains on a data YAML (D/data.yaml), a classifier on a "
            "classification view with task=classify"
        )
    if not path.is_file():
        raise UserError(f"data={value}: file not found (convert a dataset with `python -m convert rsna`)")
    return path.resolve()


WEIGHTS_ENV = "RSNA_YOLO_WEIGHTS"


def weights_dir() -> Path:
    """Where ``model=yolo11s.pt`` (a name without a folder) is looked for: ``$RSNA_YOLO_WEIGHTS``, else
    ``weights/`` in the current folder. One rule, whatever Ultralytics guesses its ``weights_dir`` to be."""
    return Path(os.environ.get(WEIGHTS_ENV) or "weights").expanduser()


def resolve_project(args: dict[str, Any], task: str) -> None:
    """Where the run goes, by one rule: ``project=`` relative to the current folder (absolute as given),
    by default ``runs/<task>`` there, as Ultralytics' ``runs/`` habit; ``name=`` inside it (Ultralytics
    numbers ``train``, ``train2``... when absent). Ultralytics itself would put a relative project under
    its settings' ``runs_dir``, which depends on where it was first run."""
    project = Path(str(args.get("project") or Path("runs") / task)).expanduser()
    args["project"] = str(project if project.is_absolute() else Path.cwd() / project)


def resolve_model(value: Any) -> str:
    """Check ``model=`` before Ultralytics sees it; return what to pass to ``YOLO(...)``.

    - ``*.yaml``: an architecture trained from scratch (Ultralytics finds ``yolo11n.yaml`` etc. itself);
    - an existing file (``runs/.../best.pt``): transfer learning from local weights;
    - a hub name (``yolo11s.pt``, or ``yolo11s``): a file of that name in :func:`weights_dir` (``weights/``
      or ``$RSNA_YOLO_WEIGHTS``), else downloaded by Ultralytics, which needs the network
      (``RSNA_YOLO_ONLINE=1``); offline and not found locally, one clear error instead of a download failure.
    """
    if not value:
        raise UserError(
            "no model: pass model=yolo11n.yaml (from scratch), model=path/to/best.pt or model=yolo11s.pt"
        )
    model = str(value)
    path = Path(model).expanduser()
    if path.suffix in {".yaml", ".yml"}:
        in_repo = offline.REPO_ROOT / path  # yolo_configs/models/*.yaml from any working directory
        return str(in_repo) if not path.is_file() and in_repo.is_file() else model
    if path.is_file():
        return str(path.resolve())
    if path.suffix == "":
        path = path.with_suffix(".pt")  # Ultralytics reads `yolo11s` as yolo11s.pt
    if path.parent != Path("."):
        raise UserError(f"model={model}: file not found")
    local = weights_dir() / path.name
    if local.is_file():
        return str(local)
    if not offline.is_online():
        raise UserError(
            f"model={model}: pretrained weights are not on this machine and it is offline. Either download "
            f"{path.name} on a connected machine ({HUB_HELP}) and pass model=/path/to/{path.name}, or set "
            f"{offline.ONLINE_ENV}=1 to let Ultralytics download it (or train from scratch with "
            f"model={path.stem}.yaml)"
        )
    return path.name


def hub_download_failed(name: str, exc: BaseException) -> UserError:
    """The one-line error for hub weights that Ultralytics could not download (online mode, no network)."""
    stem = Path(name).stem
    reason = " ".join(str(exc).replace("❌", "").split())
    return UserError(
        f"model={name}: downloading the pretrained weights failed ({type(exc).__name__}: {reason}). "
        f"Download {stem}.pt on a connected machine ({HUB_HELP}) and pass model=/path/to/{stem}.pt, "
        f"or train from scratch with model={stem}.yaml"
    )
