"""Exported models behind the same Predictor (``rsna-yolo export``, ``--backend onnx|openvino``).

One tiny detector (yolov8n, 1 epoch at 64 px) and one tiny classifier (yolo11n-cls, 1 epoch at 32 px) are
trained on synthetic films and exported once to each format; every test reads those. A detector this barely
trained is sure of nothing (every box near 0.003), so its class logits are raised by 5 before the export
(:func:`_confident`): the same boxes, with confidences from 0.1 to 0.65, as a trained model's. The
equal-answer tests compare each box of PyTorch with the exported backends' (IoU >= 0.98 and confidence
within 0.02 for at least 99% of them, both ways), the classifier's P(opacity) within 0.01, and a gated
submission with TTA and fusion row for row.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.inference import Predictor, TunedSetting
from analysis.inference.export import content_sha1, export_setting, exported_model
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.runs import EXPORTS_JSON, export_name

pytestmark = pytest.mark.slow
EXPORTED = ("onnx", "openvino")


def _quiet(*_a, **_k) -> None:
    return None


def _confident(weights: Path, shift: float = 5.0) -> None:
    """Add ``shift`` to the class logits of a detector's head (every anchor's), in place."""
    import torch

    ckpt = torch.load(weights, weights_only=False)
    for key in ("model", "ema"):
        if ckpt.get(key) is not None:
            for branch in ckpt[key].model[-1].cv3:
                branch[-1].bias.data += shift
    torch.save(ckpt, weights)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    from ultralytics import YOLO

    from convert.classify import write_classify_view
    from convert.rsna import convert_rsna
    from convert.synth import generate

    root = tmp_path_factory.mktemp("export")
    generate(root / "kaggle", 16, 6, seed=2, imgsz=256)
    convert_rsna(
        root / "kaggle", root / "ds", imgsz=64, val_fraction=0.3, workers=1, progress=False, echo=_quiet
    )
    write_classify_view(root / "ds")
    common = dict(epochs=1, batch=4, workers=0, device="cpu", project=str(root / "runs"), plots=False,
                  verbose=False, exist_ok=True, val=False)  # fmt: skip
    YOLO("yolov8n.yaml").train(data=str(root / "ds" / "data.yaml"), imgsz=64, name="det", **common)
    YOLO("yolo11n-cls.yaml").train(data=str(root / "ds" / "classify"), imgsz=32, name="cls", **common)
    det, cls = root / "runs" / "det", root / "runs" / "cls"
    _confident(det / "weights" / "best.pt")
    for fmt in EXPORTED:  # an untuned run: its weights at their training size
        export_setting(det, fmt, echo=_quiet)
        export_setting(cls, fmt, echo=_quiet)
    films = sorted((root / "kaggle" / "stage_2_test_images").glob("*.dcm"))
    films += sorted((root / "kaggle" / "stage_2_train_images").glob("*.dcm"))[:10]
    return {"root": root, "det": det, "cls": cls, "films": films}


def test_openvino_telemetry_is_unimportable_offline():
    with pytest.raises(ImportError):
        import openvino_telemetry  # noqa: F401


def test_the_export_is_recorded_beside_its_weights(exported):
    weights = exported["det"] / "weights" / "best.pt"
    record = json.loads((weights.parent / EXPORTS_JSON).read_text())
    assert set(record) == {"best_64.onnx", "best_64_openvino_model"}
    for name, entry in record.items():
        assert entry["source"] == "best.pt" and entry["imgsz"] == entry["trained_imgsz"] == 64
        assert entry["source_sha1"] == content_sha1(weights)
        assert entry["sha1"] == content_sha1(weights.parent / name)
    assert (weights.parent / "best_64_openvino_model" / "best.xml").is_file()
    assert exported_model(weights, "onnx") == (weights.parent / "best_64.onnx", 64)
    assert not list(weights.parent.glob(".*"))  # no temporary left


def test_openvino_computes_in_fp32_and_openvino_bf16_at_its_default(exported):
    """OpenVINO's default on a CPU with AMX is bfloat16; ``openvino`` asks for FP32."""
    from analysis.inference.predict import load_model

    folder = exported["det"] / "weights" / "best_64_openvino_model"
    model = load_model(folder, "openvino")
    for device in (None, "cpu"):  # another device sets the predictor up again
        model.predict(np.zeros((64, 64, 3), np.uint8), imgsz=64, device=device, verbose=False)
        compiled = model.predictor.model.backend.ov_compiled_model
        assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) in {"<Type: 'float32'>", "f32"}
    assert exported_model(exported["det"] / "weights" / "best.pt", "openvino-bf16")[0] == folder


def test_an_up_to_date_export_is_kept(exported):
    done = export_setting(exported["det"], "onnx", echo=_quiet)
    assert [e.seconds for e in done] == [0.0]


def _match(a: pd.DataFrame, b: pd.DataFrame) -> tuple[int, int]:
    """How many boxes of ``a`` have a box of ``b`` on the same film with IoU >= 0.98 and confidence within
    0.02, of how many."""
    from analysis.scoring.metric import iou_xywh

    xywh, matched = ["x", "y", "width", "height"], 0
    for pid, boxes in a.groupby("patientId"):
        other = b[b["patientId"] == pid]
        if len(other):
            near = np.abs(boxes["conf"].to_numpy()[:, None] - other["conf"].to_numpy()[None, :]) <= 0.02
            matched += int(((iou_xywh(boxes[xywh], other[xywh]) >= 0.98) & near).any(axis=1).sum())
    return matched, len(a)


@pytest.mark.parametrize("backend", EXPORTED)
def test_exported_detectors_give_the_boxes_pytorch_gives(exported, backend):
    """Every box at the floor (0.01), both ways."""
    setting = TunedSetting(weights=(exported["det"] / "weights" / "best.pt",), conf=0.01)
    torch_raw = Predictor(setting).raw(exported["films"], progress=False)
    other = Predictor(setting, backend=backend).raw(exported["films"], progress=False)
    matched, total = _match(torch_raw, other)
    assert total >= 100, "too few boxes to compare"
    assert matched >= 0.99 * total, f"{backend}: {matched} of {total} boxes matched"
    matched_back, total_back = _match(other, torch_raw)
    assert matched_back >= 0.99 * total_back, f"{backend}: {matched_back} of {total_back} matched back"


@pytest.mark.parametrize("backend", EXPORTED)
def test_exported_classifiers_give_pytorch_s_p_opacity(exported, backend):
    setting = TunedSetting(
        weights=(), classifiers=(exported["cls"] / "weights" / "best.pt",), classifier_tta=True
    )
    a = Predictor(setting).probabilities(exported["films"], progress=False)
    b = Predictor(setting, backend=backend).probabilities(exported["films"], progress=False)
    assert list(a["patientId"]) == list(b["patientId"]) and len(a) == len(exported["films"])
    np.testing.assert_allclose(a["p_opacity"], b["p_opacity"], atol=0.01)


@pytest.mark.parametrize("backend", EXPORTED)
def test_a_gated_submission_with_tta_is_the_same(exported, backend, tmp_path):
    """The whole path of ``analysis submit``: flip TTA fused by WBF, a hard gate, threshold and box scale."""
    from analysis.inference.submit import make_submission

    folder = tmp_path / "films"
    folder.mkdir()
    for film in exported["films"]:
        (folder / film.name).symlink_to(film)
    subs = {}
    for name in ("torch", backend):
        subs[name] = tmp_path / f"{name}.csv"
        make_submission([exported["det"]], folder, subs[name], conf=0.15, box_scale=0.9, tta=True,
                        classifier=[exported["cls"]], gate=0.2, backend=name, progress=False,
                        echo=_quiet)  # fmt: skip
    a, b = (pd.read_csv(subs[n], dtype=str) for n in ("torch", backend))
    assert list(a["patientId"]) == list(b["patientId"]) and a["PredictionString"].notna().sum() >= 5
    differ = a[a["PredictionString"].fillna("") != b["PredictionString"].fillna("")]
    # the strings hold confidences to 5 decimals and boxes to whole pixels: compare the boxes they hold
    for pid in differ["patientId"]:
        sa = np.array(str(a.set_index("patientId").loc[pid, "PredictionString"]).split(), float).reshape(
            -1, 5
        )
        sb = np.array(str(b.set_index("patientId").loc[pid, "PredictionString"]).split(), float).reshape(
            -1, 5
        )
        assert sa.shape == sb.shape, f"{pid}: {len(sa)} boxes with torch, {len(sb)} with {backend}"
        np.testing.assert_allclose(sa[:, 0], sb[:, 0], atol=0.02)
        np.testing.assert_allclose(sa[:, 1:], sb[:, 1:], atol=2)


def test_no_export_is_one_line(exported, tmp_path):
    setting = TunedSetting(weights=(exported["det"] / "weights" / "last.pt",), conf=0.1)
    with pytest.raises(UserError, match=r"last\.pt: no onnx export at its training size; make it with"):
        Predictor(setting, backend="onnx").raw(exported["films"][:1], progress=False)
    with pytest.raises(UserError, match="no openvino-int8 export"):
        exported_model(exported["det"] / "weights" / "best.pt", "openvino-int8")
    with pytest.raises(UserError, match="--backend tensorrt: not one of"):
        Predictor(setting, backend="tensorrt")


def test_openvino_bf16_is_refused_where_openvino_would_not_compute_in_bfloat16():
    """On a CPU whose OpenVINO default is FP32 (most without AMX or AVX512-BF16) ``openvino-bf16`` would run
    in FP32 under a name saying bfloat16: one line, before anything loads. This machine's own answer decides
    the real call; the FP32 CPU is the precision query's answer given (no such CPU here)."""
    from analysis.inference.export import check_backend, openvino_default_precision

    here = openvino_default_precision()
    assert here in {"bf16", "f32", "f16"}
    if here == "bf16":
        check_backend("openvino-bf16")
    else:
        with pytest.raises(UserError, match="--backend openvino-bf16: OpenVINO computes in"):
            check_backend("openvino-bf16")
    with pytest.raises(UserError) as err:
        check_backend("openvino-bf16", default_precision=lambda: "f32")
    assert str(err.value) == (
        "--backend openvino-bf16: OpenVINO computes in f32 by default on this CPU (no bfloat16 arithmetic); "
        "--backend openvino gives the same answers"
    )
    for backend in ("torch", "onnx", "openvino", "openvino-int8"):  # never asks: no precision involved
        check_backend(backend, default_precision=lambda: pytest.fail("asked"))


def test_weights_changed_since_the_export_are_one_line(exported, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported["det"], run)
    weights = run / "weights" / "best.pt"
    shutil.copyfile(run / "weights" / "last.pt", weights)  # as if retrained
    (weights.parent / "last.pt").write_bytes(b"")  # another content than best.pt had
    with open(weights, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(UserError, match=r"best\.pt changed since it was exported to best_64\.onnx"):
        exported_model(weights, "onnx")


def test_exporting_a_run_without_weights_is_one_line_and_writes_nothing(tmp_path):
    from analysis.__main__ import main

    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    assert main(["export", str(run), "--format", "onnx"]) == 2
    assert sorted(p.name for p in run.rglob("*")) == ["weights"]


def test_a_missing_package_is_one_line(exported, monkeypatch, capsys):
    from analysis.__main__ import main

    monkeypatch.setitem(sys.modules, "openvino", None)
    before = sorted(p.name for p in (exported["det"] / "weights").iterdir())
    assert main(["export", str(exported["det"]), "--format", "openvino", "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--format openvino needs the package openvino" in err[0]
    assert sorted(p.name for p in (exported["det"] / "weights").iterdir()) == before


def test_a_failed_export_leaves_nothing_half_written(exported, monkeypatch, tmp_path):
    from ultralytics.engine.exporter import Exporter

    run = tmp_path / "run"
    shutil.copytree(exported["det"], run)
    before = {p.name: content_sha1(p) for p in (run / "weights").iterdir()}

    def broken(self, *args, **kwargs):  # the exporter dies after writing part of its file
        Path(self.file).with_suffix(".onnx").write_bytes(b"half")
        raise RuntimeError("killed")

    monkeypatch.setattr(Exporter, "export_onnx", broken)
    with pytest.raises(UserError, match=r"best\.pt: the onnx export failed"):
        export_setting(run, "onnx", force=True, echo=_quiet)
    assert {p.name: content_sha1(p) for p in (run / "weights").iterdir()} == before
    assert export_name("x/best.pt", "onnx", 64) in before
