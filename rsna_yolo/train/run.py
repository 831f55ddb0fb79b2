"""Train with Ultralytics, then score with the competition's metric: the API behind `python -m train`.

Example (needs a converted dataset, e.g. from `make demo`)::

    from rsna_yolo.train.run import train, TrainOptions
    result = train({"data": "demo/dataset/data.yaml", "model": "yolo11n.yaml", "epochs": 5, "imgsz": 192},
                   TrainOptions(kaggle_every=1, wandb=False))
    result.kaggle["score"], result.run_dir, result.epoch_scores

Ultralytics does the training exactly as `yolo detect train` would (same arguments, same run folder with
``args.yaml``, ``results.csv`` and ``weights/``); this module adds, through Ultralytics callbacks:

- the W&B run (``rsna_yolo.train.wandb_log``), started before Ultralytics' own callback so that its
  metrics, our
  per-epoch ``kaggle/mAP`` and the final Kaggle score all land in one run;
- with ``kaggle_every=N``, the Kaggle score of the current weights on the val split every N epochs;
- a per-epoch hook for sweeps (pruning), fed that score or, without it, Ultralytics' fitness;
- with ``kaggle_every=N``, the scored epoch with the best Kaggle mAP kept as ``weights/best_kaggle.pt``
  (history in ``kaggle_epochs.json``) and, with ``kaggle_patience=P``, training stopped after P scored
  epochs without a better one (the trainer's ``stop`` flag, as Ultralytics' own EarlyStopping);
- with ``pretrained=<run folder or .pt>`` (or ``model=<.pt>``), the check of what was transferred, tensor by
  tensor, before the first optimiser step (``rsna_yolo.train.transfer``: ``transfer.json``);
- after training, ``analysis.tuning.rescoring`` on ``best.pt``: ``kaggle.json`` in the run folder (tuned
  threshold and box scale); with ``best_kaggle.pt`` both are scored and the better one is kept
  (:func:`final_kaggle`).

Multi-GPU (``device=0,1,...``): Ultralytics trains through DDP, pickling the trainer's callbacks (our
:class:`_Session`'s bound methods) with cloudpickle into a state file each DDP process loads. The session
pickles without what cannot cross a process (the W&B run, a sweep's Optuna trial, the scorer's cache), its
hooks act on rank 0 only (W&B run, per-epoch ``kaggle/mAP``), and the final rescoring runs once, here in the
main process, into the same W&B run id. What DDP cannot do (a sweep's per-epoch pruning) is announced in one
line before training starts (:func:`rsna_yolo.train.ddp.ddp_notes`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rsna_yolo import offline
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import AtomicPath, copy_atomic, write_atomic, write_json_atomic
from rsna_yolo.core.runs import (
    BEST_KAGGLE_PT,
    KAGGLE_EPOCHS_JSON,
    KAGGLE_JSON,
    OPTIONS_JSON,
    RESULTS_CSV,
)
from rsna_yolo.train import scoring, transfer, wandb_log
from rsna_yolo.train.args import (
    TrainOptions,
    hub_download_failed,
    resolve_data,
    resolve_model,
    resolve_project,
)
from rsna_yolo.train.ddp import EpochHook, ddp_notes, ddp_world_size, is_main_rank
from rsna_yolo.train.resume import completed_epochs

__all__ = ["RunResult", "TrainOptions", "train"]


@dataclass
class RunResult:
    """What a training run produced. ``kaggle`` is the kaggle.json content of a detector (None if not
    rescored); ``classify`` the classify.json content of a classifier (task=classify)."""

    run_dir: Path
    kaggle: dict[str, Any] | None
    epochs_done: int
    stopped_by_hook: bool = False
    epoch_scores: dict[int, float] = field(default_factory=dict)  # epoch -> kaggle/mAP (kaggle_every)
    metrics: dict[str, float] = field(default_factory=dict)  # Ultralytics' final validation metrics
    wandb_sync: str | None = None  # the `wandb sync ...` command for an offline W&B run
    classify: dict[str, Any] | None = None
    stopped_by_kaggle_patience: bool = False
    transfer: dict[str, Any] | None = None  # transfer.summary() when the run started from other weights


@contextlib.contextmanager
def ultralytics_wandb(enabled: bool) -> Iterator[None]:
    """Switch Ultralytics' W&B callback on or off for this run only.

    The setting lives in the project's settings file; it goes back to off (the project's default, so plain
    Ultralytics use never starts W&B runs) when the run ends. A run killed outright leaves it on until the
    next `python -m train` sets it again, so it is also set at the start of every run.
    """
    offline.ultralytics_settings(wandb=enabled)
    try:
        yield
    finally:
        offline.ultralytics_settings(wandb=False)


@contextlib.contextmanager
def atomic_torch_saves() -> Iterator[None]:
    """Make every ``torch.save`` to a path (not a buffer) atomic while training: the object is serialised
    into memory, then written by :func:`rsna_yolo.core.io.write_atomic`. Ultralytics strips the optimiser
    from ``best.pt`` and ``last.pt`` in place at the end of a run with ``torch.save(ckpt, path)``; on a full
    disk that would leave half a checkpoint and an opaque ``RuntimeError`` (``unexpected pos``), where this
    keeps the old file whole and raises the one-line full-disk ``OSError`` naming it."""
    import io

    import torch

    original = torch.save

    def save(obj, f, *args, **kwargs):
        if not isinstance(f, (str, os.PathLike)):
            return original(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        original(obj, buffer, *args, **kwargs)
        write_atomic(f, buffer.getvalue())
        return None

    torch.save = save
    try:
        yield
    finally:
        torch.save = original


class _Session:
    """State shared by the callbacks of one training run (the W&B run, per-epoch scores, the stop flag).

    Picklable for DDP (:meth:`__getstate__`); its hooks do nothing outside rank 0.
    """

    def __init__(
        self,
        options: TrainOptions,
        data: Path,
        on_epoch: EpochHook | None,
        task: str = "detect",
        transfer_source: Path | None = None,
    ):
        self.options = options
        self.data = data
        self.task = task
        self.on_epoch = on_epoch
        self.transfer_source = transfer_source
        self.transfer: transfer.Transfer | None = None
        self.wandb_run = None
        self.epoch_scores: dict[int, float] = {}
        self.stopped_by_hook = False
        self.stopped_by_kaggle_patience = False
        self.trained = False  # an epoch of training ended since the last on_fit_epoch_end
        self.scorer: scoring.EpochScorer | None = None
        self.best_kaggle: tuple[int, float] | None = None  # (epoch, Kaggle mAP) of best_kaggle.pt
        self.fitness_epoch: int | None = None  # the epoch Ultralytics last wrote best.pt
        self.stale = 0  # scored epochs since the best one (kaggle_patience)

    def __getstate__(self) -> dict[str, Any]:
        """What a DDP process gets: everything but the W&B run (each process would need its own), the
        sweep's hook (an Optuna trial holding a database connection) and the scorer's cache (rebuilt)."""
        return {**self.__dict__, "wandb_run": None, "on_epoch": None, "scorer": None}

    def attach(self, model) -> None:
        model.add_callback("on_pretrain_routine_start", self.on_pretrain_routine_start)
        model.add_callback("on_pretrain_routine_end", self.on_pretrain_routine_end)
        model.add_callback("on_train_epoch_end", self.on_train_epoch_end)
        model.add_callback("on_fit_epoch_end", self.on_fit_epoch_end)
        model.add_callback("on_train_end", self.on_train_end)

    def on_pretrain_routine_start(self, trainer) -> None:
        if not is_main_rank():
            return
        run_dir = Path(trainer.save_dir)
        # Ultralytics writes its checkpoints with ``trainer.last.write_bytes(...)`` (and best.pt, epochN.pt
        # under ``trainer.wdir``): through these paths each write is atomic, so a full disk or a kill during
        # a save leaves the previous last.pt whole (``python -m train resume`` still works) and the one-line
        # error names the checkpoint.
        trainer.wdir, trainer.last, trainer.best = (
            AtomicPath(p) for p in (trainer.wdir, trainer.last, trainer.best)
        )
        write_json_atomic(asdict(self.options), run_dir / OPTIONS_JSON)
        if not self.options.wandb:
            return
        self.start_wandb(trainer, resume=bool(trainer.args.resume))
        if self.wandb_run is None:  # W&B failed to start: keep Ultralytics from trying (and crashing) too
            for event, hooks in trainer.callbacks.items():
                trainer.callbacks[event] = [h for h in hooks if not h.__module__.endswith("callbacks.wb")]

    def start_wandb(self, trainer, *, resume: bool) -> None:
        """Start the run's W&B run (``resume``: continue the id recorded under the run folder)."""
        config = {**vars(trainer.args), **{f"rsna/{k}": v for k, v in asdict(self.options).items()}}
        self.wandb_run = wandb_log.start_run(
            Path(trainer.save_dir),
            config,
            project=self.options.wandb_project,
            group=self.options.wandb_group,
            resume=resume,
        )

    def on_pretrain_routine_end(self, trainer) -> None:
        """The model is built and loaded, no optimiser step taken: check and record what was transferred
        (a source that shares nothing stops the run here, before the first epoch). A resumed run picks up
        its Kaggle history instead (nothing is transferred on resume)."""
        if not is_main_rank():
            return
        if trainer.args.resume:
            self.restore_kaggle_epochs(Path(trainer.save_dir))
            return
        if self.transfer_source is None:
            return
        from ultralytics.utils.torch_utils import unwrap_model

        source = transfer.load_source(self.transfer_source)
        self.transfer = transfer.compare_state(unwrap_model(trainer.model), source, self.transfer_source)
        print(self.transfer.line())
        if self.transfer.head:
            print(f"transfer: {self.transfer.head}")
        transfer.write_record(Path(trainer.save_dir), self.transfer)

    def on_train_epoch_end(self, trainer) -> None:
        if is_main_rank():
            self.trained = True

    def on_fit_epoch_end(self, trainer) -> None:
        # Ultralytics also runs this event once after training, for the final validation of best.pt
        # (trainer.final_eval); that is not an epoch: the final rescoring covers it.
        if not self.trained:
            return
        self.trained = False
        epoch = trainer.epoch + 1
        if trainer.fitness is not None and trainer.best_fitness == trainer.fitness:
            self.fitness_epoch = epoch  # save_model wrote best.pt this epoch (the same test)
        every = self.options.kaggle_every
        value = None
        if every and (epoch % every == 0 or epoch >= trainer.epochs):
            value = self.epoch_score(trainer)
            self.epoch_scores[epoch] = value
            print(f"kaggle/mAP (val, epoch {epoch}): {value:.4f}")
            # commit=False: Ultralytics' W&B callback runs next and commits this epoch's row.
            wandb_log.log(self.wandb_run, {"kaggle/mAP": value, "epoch": epoch}, commit=False)
            self.keep_best_kaggle(trainer, epoch, value)
        if self.on_epoch is not None:
            fitness = float(trainer.fitness) if trainer.fitness is not None else 0.0
            if self.on_epoch(epoch, fitness if value is None else value):
                # The trainer checks `stop` right after these callbacks and ends the run there.
                self.stopped_by_hook = trainer.stop = True

    def keep_best_kaggle(self, trainer, epoch: int, value: float) -> None:
        """Copy ``last.pt`` to ``best_kaggle.pt`` when ``value`` beats every scored epoch so far; stop the
        run (``kaggle_patience``) after that many scored epochs without a better one."""
        weights = Path(trainer.wdir)
        if math.isfinite(value) and (self.best_kaggle is None or value > self.best_kaggle[1]):
            copy_atomic(trainer.last, weights / BEST_KAGGLE_PT)
            self.best_kaggle, self.stale = (epoch, value), 0
        else:
            self.stale += 1
        self.write_kaggle_epochs(Path(trainer.save_dir))
        patience = self.options.kaggle_patience
        if patience and self.stale >= patience and not trainer.stop:
            best = (
                "none"
                if self.best_kaggle is None
                else f"{self.best_kaggle[1]:.4f} at epoch {self.best_kaggle[0]}"
            )
            print(
                f"kaggle_patience={patience}: no better Kaggle mAP in the last {self.stale} scored epochs "
                f"(best {best}); stopping after epoch {epoch}"
            )
            self.stopped_by_kaggle_patience = trainer.stop = True

    def write_kaggle_epochs(self, run_dir: Path) -> None:
        record = {
            "scores": {str(e): v for e, v in sorted(self.epoch_scores.items())},
            "best_kaggle": None
            if self.best_kaggle is None
            else {"epoch": self.best_kaggle[0], "score": self.best_kaggle[1]},
            "fitness_epoch": self.fitness_epoch,
            "stale": self.stale,
        }
        write_json_atomic(record, run_dir / KAGGLE_EPOCHS_JSON)

    def restore_kaggle_epochs(self, run_dir: Path) -> None:
        """A resumed run continues the history of the killed one (scores, best epochs, patience count)."""
        path = run_dir / KAGGLE_EPOCHS_JSON
        if not path.is_file():
            return
        saved = json.loads(path.read_text())
        self.epoch_scores = {
            int(e): float(v) if v is not None else math.nan for e, v in saved["scores"].items()
        }
        best = saved.get("best_kaggle")
        self.best_kaggle = (int(best["epoch"]), float(best["score"])) if best else None
        self.fitness_epoch, self.stale = saved.get("fitness_epoch"), int(saved.get("stale", 0))

    def on_train_end(self, trainer) -> None:
        """``best_kaggle.pt`` without the optimiser state, as Ultralytics leaves ``best.pt``."""
        path = Path(trainer.wdir) / BEST_KAGGLE_PT
        if is_main_rank() and path.is_file():
            from ultralytics.utils.torch_utils import strip_optimizer

            strip_optimizer(path)

    def epoch_score(self, trainer) -> float:
        """Kaggle mAP on val of the weights saved this epoch (``last.pt``); NaN if none was saved."""
        if not Path(trainer.last).is_file():
            return float("nan")
        if self.scorer is None:
            self.scorer = scoring.EpochScorer(self.data)
        return self.scorer(trainer.last, **scoring.predict_settings(trainer))

    def close(self, trainer, *, failed: bool) -> str | None:
        command = wandb_log.finish(self.wandb_run, failed=failed)
        if trainer is not None:
            wandb_log.write_sync_hint(Path(trainer.save_dir), command)
        return command


def _fit(model, args: dict[str, Any], session: _Session, resume: bool) -> RunResult:
    """Run ``model.train`` with the session's callbacks, rescore, log and close the W&B run."""
    trainer = None
    try:
        with ultralytics_wandb(session.options.wandb), atomic_torch_saves():
            model.train(resume=True, **args) if resume else model.train(**args)
        trainer = model.trainer
        run_dir = Path(trainer.save_dir)
        metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
        ddp = getattr(trainer, "world_size", 1) > 1
        if ddp and session.options.wandb and session.wandb_run is None:
            # The DDP processes ran the epochs and their own W&B run; the final score joins that run's id.
            session.start_wandb(trainer, resume=True)
        result = classified = None
        if session.task == "classify" and session.options.rescore and not session.stopped_by_hook:
            classified = scoring.final_classify(trainer, session.data, session.transfer)
            scoring.log_classify(session.wandb_run, classified)
        elif session.options.rescore and not session.stopped_by_hook:
            try:
                result = scoring.final_kaggle(trainer, session.data, session.options.kaggle_every)
            except UserError as exc:  # e.g. no manifest.csv/boxes.csv: say the training itself is safe
                raise UserError(
                    f"training finished ({run_dir}) but the Kaggle rescoring failed: {exc}"
                ) from None
            if session.transfer is not None:
                from analysis.inference import TunedSetting

                result["transfer"] = transfer.summary(session.transfer)
                TunedSetting.amend(run_dir / KAGGLE_JSON, transfer=result["transfer"])
            print(scoring.report_score(result, run_dir))
            values = {f"kaggle/{k}": result[k] for k in ("conf", "scale", "map50", "map50_95") if k in result}
            values["kaggle/mAP"] = result["score"]
            wandb_log.log(session.wandb_run, values)
            wandb_log.set_summary(session.wandb_run, values)
    except BaseException:
        session.close(getattr(model, "trainer", None), failed=True)
        raise
    sync = session.close(trainer, failed=False)
    return RunResult(
        run_dir=run_dir,
        kaggle=result,
        epochs_done=completed_epochs(run_dir / RESULTS_CSV) if ddp else trainer.epoch + 1,
        stopped_by_hook=session.stopped_by_hook,
        epoch_scores=dict(session.epoch_scores),
        metrics=metrics,
        wandb_sync=sync,
        classify=classified,
        stopped_by_kaggle_patience=session.stopped_by_kaggle_patience,
        transfer=None if session.transfer is None else transfer.summary(session.transfer),
    )


def train(
    args: dict[str, Any],
    options: TrainOptions | None = None,
    *,
    on_epoch: EpochHook | None = None,
    callbacks: dict[str, list[Callable]] | None = None,
) -> RunResult:
    """Train with Ultralytics' ``args`` (as parsed from ``key=value``), then rescore best.pt on val.

    ``args`` needs ``model`` (``*.yaml``, a local ``.pt``, or a hub name when online) and ``data`` (or
    ``$RSNA_YOLO_DATA``); everything else is Ultralytics' (``epochs``, ``imgsz``, ``freeze``, ``patience``,
    ``save_period``...). Raises ``UserError`` for a missing file or unavailable hub weights before any work.
    ``callbacks`` (``{event: [function(trainer)]}``) are more Ultralytics callbacks, run after this module's.
    """
    from ultralytics import YOLO

    options = options or TrainOptions()
    args = dict(args)
    task = args.pop("task", "detect")
    data = resolve_data(args, task)
    args["data"] = str(data)
    resolve_project(args, task)
    name = resolve_model(args.pop("model", None))
    source = transfer_source(args, name)
    try:
        model = YOLO(name, task=task)
    except OSError as exc:  # a hub name with RSNA_YOLO_ONLINE=1 where the download fails (no network)
        if Path(name).is_file() or Path(name).suffix in {".yaml", ".yml"}:
            raise
        raise hub_download_failed(name, exc) from None
    if model.task != task:
        raise UserError(f"model={name} is a {model.task} model; with task={task} pass a {task} model")
    session = _session(args, options, data, on_epoch, task, source)
    session.attach(model)
    for event, functions in (callbacks or {}).items():
        for function in functions:
            model.add_callback(event, function)
    return _fit(model, args, session, resume=False)


def transfer_source(args: dict[str, Any], model: str) -> Path | None:
    """The weights a new run starts from: ``pretrained=<run folder or .pt>`` (resolved in ``args`` to the
    ``.pt`` file, which Ultralytics takes), else a local ``model=<.pt>``; None for a model built from its
    YAML. An unreadable file is a :class:`UserError` now, not a traceback in the trainer's setup."""
    pretrained = args.get("pretrained")
    if isinstance(pretrained, (str, Path)) and not isinstance(pretrained, bool):
        source = transfer.resolve_source(pretrained)
        args["pretrained"] = str(source)
    elif pretrained is not False and Path(model).suffix == ".pt" and Path(model).is_file():
        source = Path(model)
    else:
        return None
    transfer.load_source(source)
    return source


def resume(
    run_dir: Path,
    args: dict[str, Any] | None = None,
    *,
    options: dict[str, Any] | None = None,
    on_epoch: EpochHook | None = None,
) -> RunResult:
    """Continue a killed run from ``run_dir/weights/last.pt`` to its planned epochs, then rescore.

    ``args`` may change what Ultralytics allows on resume (``device``, ``batch``, ``workers``...); our
    options are those the run started with (``train_options.json``), updated by ``options``
    (e.g. ``{"wandb": False}``).
    A finished run raises ``UserError`` (Ultralytics would otherwise silently start a new default run).
    """
    from ultralytics import YOLO

    from rsna_yolo.train.resume import check_resumable

    run_dir = Path(run_dir)
    last, train_args = check_resumable(run_dir)
    saved = run_dir / OPTIONS_JSON
    before = json.loads(saved.read_text()) if saved.is_file() else {}
    options = TrainOptions.from_dict({**before, **(options or {})})
    task = str(train_args.get("task") or "detect")
    data = resolve_data({"data": (args or {}).get("data") or train_args.get("data")}, task)
    model = YOLO(str(last), task=task)
    device = (args or {}).get("device", train_args.get("device"))
    session = _session({"device": device}, options, data, on_epoch, task)
    session.attach(model)
    return _fit(model, dict(args or {}), session, resume=True)


def _session(
    args: dict[str, Any], options: TrainOptions, data: Path, on_epoch, task: str, source: Path | None = None
) -> _Session:
    """The run's :class:`_Session`, after announcing what DDP changes (``device=0,1,...``)."""
    notes = ddp_notes(ddp_world_size(args.get("device")), options, on_epoch)
    for line in notes:
        print(line)
    return _Session(options, data, None if notes else on_epoch, task, source)
