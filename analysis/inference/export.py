"""Exported models (ONNX Runtime, OpenVINO) of a tuned setting, and finding them again at prediction time.

:func:`export_setting` (``rsna-yolo export RUN --format onnx|openvino``) exports every model a tuned setting
uses (each fold's detector, the classifier(s)) through Ultralytics' exporter, at the image size the setting
predicts it at, into the weights' own folder (:func:`rsna_yolo.core.runs.export_name`), and records each one
in that folder's :data:`rsna_yolo.core.runs.EXPORTS_JSON`::

    {"best_256.onnx": {"format": "onnx", "imgsz": 256, "int8": false, "source": "best.pt",
                       "source_sha1": "...", "sha1": "...", "trained_imgsz": 256, "ultralytics": "8.4.190"}}

An export is written into a temporary folder beside its weights and renamed into place when complete, so an
interrupted or failed export leaves nothing half-written.

:func:`exported_model` is what ``--backend`` reads: the exported file of one weights file at one size, checked
against the record (the export is there, still has its recorded SHA-1, and its source weights have not
changed since: else one line, :class:`rsna_yolo.core.cli.UserError`). Prediction then runs the exported model
through Ultralytics (it letterboxes, runs ONNX Runtime or OpenVINO, and decodes the boxes as for ``.pt``);
everything else (TTA, fusion, threshold, box scale, gate) is the tuned setting's, unchanged.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import temp_path, write_json_atomic
from rsna_yolo.core.runs import EXPORTS_JSON, export_name, read_args

BACKENDS = ("torch", "onnx", "openvino", "openvino-bf16", "openvino-int8")
"""What ``--backend`` takes: PyTorch (the ``.pt`` itself, the default) or an export of it. ``openvino`` runs
the OpenVINO export in FP32; ``openvino-bf16`` runs the same export at OpenVINO's own default precision,
bfloat16 on a CPU with AMX (faster, and its confidences move by a few hundredths: docs/predicting.md);
``openvino-int8`` runs the INT8 export (``--int8``)."""
FORMATS = ("onnx", "openvino")
"""What ``--format`` takes (``--int8`` with ``openvino`` gives the ``openvino-int8`` backend)."""
PACKAGES = {"onnx": ("onnx", "onnxslim", "onnxruntime"), "openvino": ("openvino",), "int8": ("nncf",)}
"""The packages each format's export needs (Ultralytics would pip-install them; its auto-install is off)."""


def add_backend_argument(parser) -> None:
    """``--backend`` of ``analysis submit`` and ``analysis predict``."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="run the .pt weights with PyTorch (default) or their exports made by `rsna-yolo export`: ONNX "
        "Runtime, OpenVINO in FP32, OpenVINO at its default precision (bfloat16 on a CPU with AMX: faster, "
        "confidences a few hundredths off; refused where that default is FP32), OpenVINO INT8; the same "
        "sizes, TTA, fusion, threshold, box scale and gate",
    )


@functools.cache
def openvino_default_precision() -> str:
    """The precision OpenVINO's CPU plugin computes in by default on this machine (``bf16`` on a CPU with
    bfloat16 arithmetic, as the build machines' AMX Xeons; ``f32`` on most others). Asked once a process:
    the CPU does not change, and :func:`check_backend` runs for every model of every chunk."""
    import openvino as ov

    return ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


def check_backend(backend: str, default_precision: Callable[[], str] = openvino_default_precision) -> None:
    """One line (:class:`UserError`) for a ``backend`` that is not one of :data:`BACKENDS`, or for
    ``openvino-bf16`` on a CPU whose OpenVINO default is not bfloat16: there it would run in FP32, the same as
    ``openvino``, under a name that says otherwise."""
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend}: not one of {', '.join(BACKENDS)}")
    if backend == "openvino-bf16" and (precision := default_precision()) != "bf16":
        raise UserError(
            f"--backend openvino-bf16: OpenVINO computes in {precision} by default on this CPU (no bfloat16 "
            "arithmetic); --backend openvino gives the same answers"
        )


def content_sha1(path: str | Path) -> str:
    """SHA-1 of a file's content, or of a folder's files (each one's relative name and content, in name order:
    an OpenVINO model is a folder)."""
    path = Path(path)
    digest = hashlib.sha1()
    if path.is_file():
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(content_sha1(file)))
    return digest.hexdigest()


def check_packages(fmt: str, *, int8: bool = False) -> None:
    """:class:`UserError` (one line) when a package the export or runtime of ``fmt`` needs is missing."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: not one of {', '.join(FORMATS)}")
    if int8 and fmt != "openvino":
        raise UserError("--int8 is OpenVINO's post-training quantization: use it with --format openvino")
    for name in PACKAGES[fmt] + (PACKAGES["int8"] if int8 else ()):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UserError(
                f"--format {fmt}{' --int8' if int8 else ''} needs the package {name}, which is not installed "
                f"({exc}); `make venv` installs it (it is a dependency of rsna-yolo)"
            ) from exc


def read_exports(weights_dir: str | Path) -> dict[str, dict]:
    """The :data:`EXPORTS_JSON` of a weights folder (empty when there is none; :class:`UserError` when it
    cannot be read)."""
    path = Path(weights_dir) / EXPORTS_JSON
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not readable ({type(exc).__name__}); delete it and export again") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a mapping of exported models; delete it and export again")
    return data


@dataclass(frozen=True)
class Exported:
    """One exported model: its ``path`` (a file, or an OpenVINO folder), what it was exported from and how,
    and the seconds the export took (0 when an up-to-date export was kept)."""

    source: Path
    path: Path
    format: str
    imgsz: int
    int8: bool
    sha1: str
    source_sha1: str
    seconds: float


def _replace(new: Path, target: Path) -> None:
    """``new`` (a file or folder) takes ``target``'s place in renames (an old folder is set aside first)."""
    if target.is_dir():
        old = temp_path(target, "old")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def export_weights(
    weights: str | Path,
    fmt: str,
    imgsz: int,
    *,
    int8: bool = False,
    data: str | Path | None = None,
    trained_imgsz: int | None = None,
    force: bool = False,
) -> Exported:
    """Export ``weights`` (a ``.pt``) to ``fmt`` at ``imgsz`` into its own folder and record it in that
    folder's :data:`EXPORTS_JSON`. An export recorded from the same weights content is kept unless
    ``force``. ``int8`` (OpenVINO) calibrates on ``data`` (the data YAML or classification folder the
    weights trained on).

    The graph has dynamic batch and image shape (``dynamic=True``): Ultralytics then letterboxes a film for
    it exactly as for the ``.pt`` (the smallest stride-multiple padding): both see the same pixels."""
    from ultralytics import YOLO
    from ultralytics import __version__ as ultralytics_version

    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"{weights}: no such weights file")
    check_packages(fmt, int8=int8)
    folder = weights.parent
    target = folder / export_name(weights, fmt, imgsz, int8=int8)
    source_sha1 = content_sha1(weights)
    entry = read_exports(folder).get(target.name)
    up_to_date = entry and entry.get("source_sha1") == source_sha1 and target.exists()
    if not force and up_to_date and content_sha1(target) == entry.get("sha1"):
        return Exported(weights, target, fmt, int(imgsz), int8, entry["sha1"], source_sha1, 0.0)
    if int8 and not (data and Path(str(data)).exists()):
        raise UserError(
            f"{weights}: --int8 calibrates on the images the model trained on, but its data {data} is not on "
            "this machine (pass --data)"
        )
    work = temp_path(target, "export")
    start = time.perf_counter()
    try:
        work.mkdir(parents=True)
        copy = work / weights.name
        try:
            os.link(weights, copy)  # Ultralytics writes its export beside the file it exports
        except OSError:
            shutil.copyfile(weights, copy)
        options = {"format": fmt, "imgsz": int(imgsz), "dynamic": True, "device": "cpu", "verbose": False}
        if int8:
            options.update(int8=True, data=str(data))
        made = Path(YOLO(str(copy)).export(**options))
        seconds = time.perf_counter() - start
        sha1 = content_sha1(made)
        _replace(made, target)
    except UserError:
        raise
    except Exception as exc:  # an exporter failure is one line; nothing of it stays behind
        raise UserError(f"{weights}: the {fmt} export failed ({type(exc).__name__}: {exc})") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = {
        "format": fmt, "imgsz": int(imgsz), "int8": bool(int8), "source": weights.name,
        "source_sha1": source_sha1, "sha1": sha1, "trained_imgsz": trained_imgsz,
        "ultralytics": ultralytics_version, "seconds": round(seconds, 2),
    }  # fmt: skip
    write_json_atomic({**read_exports(folder), target.name: record}, folder / EXPORTS_JSON)
    return Exported(weights, target, fmt, int(imgsz), int8, sha1, source_sha1, seconds)


def exported_model(weights: str | Path, backend: str, imgsz: int | None = None) -> tuple[Path, int]:
    """``(path, imgsz)`` of the ``backend`` export of ``weights`` at ``imgsz`` (None: at the size it was
    trained at), checked against :data:`EXPORTS_JSON`; ``backend == "torch"`` gives ``weights`` itself (and
    ``imgsz`` as given). One line (:class:`UserError`) when there is no such export, or it or its source
    weights changed since it was made."""
    weights = Path(weights)
    if backend == "torch":
        return weights, imgsz  # type: ignore[return-value]
    check_backend(backend)
    fmt, int8 = backend.partition("-")[0], backend.endswith("-int8")  # openvino-bf16: the openvino export
    exports = read_exports(weights.parent)
    found = {
        name: e
        for name, e in exports.items()
        if e.get("source") == weights.name and e.get("format") == fmt and bool(e.get("int8")) == int8
    }
    if imgsz is None:
        found = {n: e for n, e in found.items() if e.get("imgsz") == e.get("trained_imgsz")}
    else:
        found = {n: e for n, e in found.items() if e.get("imgsz") == int(imgsz)}
    how = f"--format {fmt}{' --int8' if int8 else ''}"
    at = f"at {imgsz} px" if imgsz is not None else "at its training size"
    if not found:
        raise UserError(f"{weights}: no {backend} export {at}; make it with `rsna-yolo export RUN {how}`")
    name, entry = next(iter(found.items()))
    path = weights.parent / name
    if not path.exists():
        raise UserError(
            f"{path}: recorded in {EXPORTS_JSON} but missing; export again (`rsna-yolo export {how}`)"
        )
    if content_sha1(weights) != entry.get("source_sha1"):
        raise UserError(
            f"{weights} changed since it was exported to {name} (retrained?): export again "
            f"(`rsna-yolo export RUN {how}`)"
        )
    if content_sha1(path) != entry.get("sha1"):
        raise UserError(f"{path} changed since it was exported: export again (`rsna-yolo export RUN {how}`)")
    return path, int(entry["imgsz"])


@contextmanager
def _openvino_fp32() -> Iterator[None]:
    """Every OpenVINO ``Core`` made inside computes in FP32 on the CPU."""
    import openvino as ov

    original = ov.Core

    class FP32Core(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.set_property("CPU", {"INFERENCE_PRECISION_HINT": ov.Type.f32})

    ov.Core = FP32Core
    try:
        yield
    finally:
        ov.Core = original


def open_exported(path: str | Path, backend: str):
    """``YOLO(path)`` that predicts as ``backend``. For ``openvino`` every ``predict`` runs with OpenVINO's
    ``Core`` computing in FP32: Ultralytics compiles the model (at the first prediction, and again whenever a
    setup argument such as ``device`` changes) with a ``Core`` of its own and OpenVINO's default precision,
    which is bfloat16 on a CPU with AMX (its confidences then differ from PyTorch's by up to a few
    hundredths), and no argument reaches that ``Core``."""
    from ultralytics import YOLO

    model = YOLO(str(path))
    if backend == "openvino":
        predict = model.predict

        def predict_fp32(*args, **kwargs):
            with _openvino_fp32():
                return predict(*args, **kwargs)

        model.predict = predict_fp32
    return model


def _trained_size(weights: Path, default: int) -> int:
    from analysis.inference.predict import resolve_imgsz

    return resolve_imgsz(weights, default)


def export_setting(
    run: str | Path,
    fmt: str,
    *,
    int8: bool = False,
    data: str | Path | None = None,
    force: bool = False,
    echo: Callable[[str], object] = print,
) -> list[Exported]:
    """Export every model of ``run``'s tuned setting to ``fmt`` (:meth:`TunedSetting.from_run`: a run
    folder, ``RUN/kaggle_gated``, a fold set or a ``kaggle*.json``; an untuned run or fold set: its weights):
    each detector at the size the setting predicts it at, each classifier at its training size. ``data``
    (``--int8``): the calibration images, default each model's own training data (its ``args.yaml``)."""
    check_packages(fmt, int8=int8)
    detectors, sizes, classifiers = _models_of(Path(run))
    done: list[Exported] = []
    models = [(w, s, 640) for w, s in zip(detectors, sizes, strict=True)] + [
        (c, None, 224) for c in classifiers
    ]
    for weights, size, default in models:
        trained = _trained_size(weights, default)
        calibration = data or (read_args(_run_dir(weights)) or {}).get("data")
        exported = export_weights(
            weights, fmt, size or trained, int8=int8, data=calibration, trained_imgsz=trained, force=force
        )
        kept = "up to date, kept" if exported.seconds == 0 else f"{exported.seconds:.1f} s"
        echo(f"{exported.path} ({exported.imgsz} px, sha1 {exported.sha1[:12]}; from {weights}: {kept})")
        done.append(exported)
    return done


def _run_dir(weights: Path) -> Path:
    return weights.parent.parent if weights.parent.name == "weights" else weights.parent


def _models_of(run: Path) -> tuple[list[Path], Sequence[int | None], list[Path]]:
    """The detectors, their sizes (None: the training size) and the classifiers of ``run``."""
    from analysis.record.setting import TunedSetting, tuned_file
    from rsna_yolo.core.runs import expand_weights, read_kaggle

    if not run.exists():
        raise UserError(f"{run}: no such run folder, fold set or kaggle*.json")
    if run.suffix == ".json" or read_kaggle(tuned_file(run)) is not None:
        setting = TunedSetting.from_run(run)
        if not setting.weights:
            raise UserError(f"{setting.source}: names no weights to export")
        sizes = list(setting.sizes) if setting.sizes else [None] * len(setting.weights)
        return list(setting.weights), sizes, list(setting.classifiers)
    weights = [w for w, _ in expand_weights([run])]  # untuned: one line when it has no weights
    return weights, [None] * len(weights), []
