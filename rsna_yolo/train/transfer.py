"""Transfer learning from local weights, offline: ``pretrained=<run folder or .pt>`` (or ``model=<.pt>``).

Ultralytics does the loading itself (``BaseModel.load``: every tensor whose name and shape match, through
``intersect_dicts``); this module decides where the weights come from and checks what really arrived:

- :func:`resolve_source`: a run folder -> its weights (``rsna_yolo.core.runs.resolve_weights``:
  ``best.pt``, else
  ``last.pt``); a ``.pt`` file as it is; a corrupt or foreign file, a folder without weights: one
  :class:`UserError` line each, before anything trains;
- :func:`compare_state`: after Ultralytics built and loaded the model (``on_pretrain_routine_end``, before the
  first optimiser step), every tensor of the model compared with the source's, by name: transferred (equal,
  bit for bit), or left out with the reason (absent from the source, another shape, the head's class count,
  re-initialised by Ultralytics). A source that shares nothing is a :class:`UserError`: never a silent start
  from scratch;
- :func:`write_record`: ``transfer.json`` in the run folder (source, counts, each tensor's fate, frozen
  tensors); :func:`summary` is the short form that ``kaggle.json`` / ``classify.json`` carry as ``transfer``.

A detector's backbone initialises a classifier of the same family (the basic CNN detector shares its five
convolutions with the basic CNN classifier, yolo11n 192 of yolo11n-cls's 236 tensors), another classifier,
or a detector pretrained on another dataset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_json_atomic
from rsna_yolo.core.runs import TRANSFER_JSON, resolve_weights


def resolve_source(value: str | Path) -> Path:
    """The weights file ``pretrained=`` (or a local ``model=``) stands for: a run folder's ``best.pt`` (else
    ``last.pt``), or the ``.pt`` file itself. Raises :class:`UserError` when there is none."""
    path = Path(str(value)).expanduser()
    if path.is_dir():
        try:
            weights, _ = resolve_weights(path)
        except UserError as exc:
            raise UserError(f"pretrained={value}: {exc}") from None
        return weights.resolve()
    if not path.is_file():
        raise UserError(f"pretrained={value}: no such weights file or run folder")
    return path.resolve()


def load_source(path: Path):
    """The source model (FP32, CPU) of an Ultralytics checkpoint; a file that is not one is a
    :class:`UserError` naming it."""
    from ultralytics.nn.tasks import load_checkpoint

    try:
        model, _ = load_checkpoint(str(path))
    except Exception as exc:  # torch/pickle raise many kinds for a truncated or foreign file
        reason = " ".join(str(exc).replace("❌️", "").split())[:200]
        raise UserError(
            f"pretrained={path}: not a readable Ultralytics checkpoint ({type(exc).__name__}: {reason})"
        ) from None
    return model


def _class_count(model) -> int | None:
    names = getattr(model, "names", None)
    nc = getattr(model, "nc", None)
    return int(nc) if nc is not None else (len(names) if names else None)


@dataclass
class Transfer:
    """What a model received from its source, tensor by tensor (``state_dict`` names)."""

    source: str
    source_task: str
    source_classes: int | None
    target_classes: int | None
    n_source: int  # tensors in the source's state_dict
    n_target: int  # tensors in the model's state_dict
    transferred: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # name -> why
    head: str | None = None  # one sentence when the head was left out because the class count differs
    frozen: list[str] = field(default_factory=list)  # parameters that will not train (freeze=N)

    def line(self) -> str:
        """One line for the console."""
        text = f"transfer: {len(self.transferred)}/{self.n_target} tensors from {self.source}"
        if self.left_out:
            text += f"; left out {len(self.left_out)}: " + "; ".join(_grouped(self.left_out))
        if self.frozen:
            text += f"; frozen {len(self.frozen)} parameters (freeze)"
        return text


def _grouped(left_out: dict[str, str], limit: int = 6) -> list[str]:
    """Left-out tensors grouped by layer and reason: ``model.10 (5 tensors: not in the source)``."""
    groups: dict[tuple[str, str], int] = {}
    for name, why in left_out.items():
        layer = ".".join(name.split(".")[:2])
        key = (layer, why if not why.startswith("shape") else "another shape")
        groups[key] = groups.get(key, 0) + 1
    parts = [f"{layer} ({n} tensor{'s' * (n > 1)}: {why})" for (layer, why), n in groups.items()]
    return parts[:limit] + (
        [f"... {len(parts) - limit} more layers (see {TRANSFER_JSON})"] if len(parts) > limit else []
    )


def compare_state(target, source, source_path: Path) -> Transfer:
    """Compare ``target`` (the model as built and loaded for training) with ``source``, tensor by tensor.

    A tensor counts as transferred when the source has one of the same name and shape and the values are
    equal bit for bit (in FP32). Raises :class:`UserError` when nothing was transferred (BatchNorm's step
    counters aside).
    """
    import torch

    tsd, ssd = target.state_dict(), source.state_dict()
    result = Transfer(
        source=str(source_path),
        source_task=str(getattr(source, "task", "?")),
        source_classes=_class_count(source),
        target_classes=_class_count(target),
        n_source=len(ssd),
        n_target=len(tsd),
    )
    for name, value in tsd.items():
        theirs = ssd.get(name)
        if theirs is None:
            result.left_out[name] = "not in the source"
        elif tuple(theirs.shape) != tuple(value.shape):
            result.left_out[name] = f"shape {tuple(theirs.shape)} in the source, {tuple(value.shape)} here"
        elif torch.equal(value.detach().float().cpu(), theirs.detach().float().cpu()):
            result.transferred.append(name)
        else:
            result.left_out[name] = "same name and shape, not loaded (re-initialised by Ultralytics)"
    result.head = _head_sentence(target, source, result)
    result.frozen = [n for n, p in target.named_parameters() if not p.requires_grad]
    # BatchNorm's step counters (shape ()) match any other BatchNorm's: they do not make a source useful
    if not [n for n in result.transferred if not n.endswith("num_batches_tracked")]:
        raise UserError(
            f"pretrained={source_path}: shares no tensor (by name and shape) with this "
            f"{type(target).__name__} ({result.n_target} tensors; the source is a {result.source_task} model "
            f"with {result.n_source}): nothing to transfer. Use weights of the same family (a yolo11n "
            "detector for yolo11n-cls, basic_cnn_det for basic_cnn_cls)"
        )
    return result


def _head_sentence(target, source, result: Transfer) -> str | None:
    """One sentence when the model's head is the same kind of layer as the source's at that index but some
    of its tensors have another shape because the class counts differ (None otherwise)."""
    layers, theirs = getattr(target, "model", None), getattr(source, "model", None)
    if layers is None or theirs is None or len(theirs) < len(layers):
        return None
    index = len(layers) - 1
    kind = type(layers[index]).__name__
    if type(theirs[index]).__name__ != kind or result.source_classes == result.target_classes:
        return None
    prefix = f"model.{index}."
    shaped = [n for n, why in result.left_out.items() if n.startswith(prefix) and why.startswith("shape")]
    if not shaped:
        return None
    return (
        f"head model.{index} ({kind}) partly left out: the source has {result.source_classes} classes, this "
        f"model {result.target_classes} ({len(shaped)} tensors of another shape: {', '.join(shaped)})"
    )


def summary(transfer: Transfer | dict[str, Any]) -> dict[str, Any]:
    """The short record carried by ``kaggle.json`` / ``classify.json`` (no tensor lists)."""
    t = asdict(transfer) if isinstance(transfer, Transfer) else transfer
    return {
        "source": t["source"],
        "source_task": t["source_task"],
        "transferred": len(t["transferred"]),
        "of": t["n_target"],
        "left_out": len(t["left_out"]),
        "head": t["head"],
        "frozen": len(t["frozen"]),
        "record": TRANSFER_JSON,
    }


def write_record(run_dir: Path, transfer: Transfer) -> Path:
    """``run_dir/transfer.json``: the whole comparison (counts, each transferred / left-out tensor)."""
    record = {**asdict(transfer), "n_transferred": len(transfer.transferred)}
    return write_json_atomic(record, Path(run_dir) / TRANSFER_JSON)


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``transfer.json`` (None when the run did not start from other weights)."""
    path = Path(run_dir) / TRANSFER_JSON
    return json.loads(path.read_text()) if path.is_file() else None
