"""Transfer learning from local weights (``pretrained=<run folder or .pt>``), checked tensor by tensor.

Tiny real runs (imgsz 64, 24 synthetic patients, 1 epoch). What arrived is read from the model itself, in a
callback of our own at ``on_pretrain_routine_end`` (the model is built and loaded, no optimiser step taken),
and compared with the source checkpoint loaded independently, by name; the run's ``transfer.json`` must
say the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO_ROOT, subprocess_env
from tiny_yolo_data import make_synthetic_dataset

from rsna_yolo.core.cli import UserError
from rsna_yolo.train.args import TrainOptions, parse_key_values

TINY = ["imgsz=64", "batch=4", "workers=0", "plots=False", "epochs=1"]
NO_STEP = ["optimizer=SGD", "lr0=0", "momentum=0", "weight_decay=0", "warmup_epochs=0"]


@pytest.fixture(scope="module")
def views(tmp_path_factory) -> dict[str, Path]:
    """Two converted datasets of different patients (seed 0 and 1), the first with both classification
    views (three classes and binary)."""
    from convert.classify import write_classify_view

    first = make_synthetic_dataset(tmp_path_factory.mktemp("a"), patients=24, imgsz=64, seed=0)
    other = make_synthetic_dataset(tmp_path_factory.mktemp("b"), patients=24, imgsz=64, seed=1)
    write_classify_view(first.parent)
    write_classify_view(first.parent, binary=True)
    return {"det": first, "other": other, "cls": first.parent / "classify",
            "binary": first.parent / "classify_binary"}  # fmt: skip


@pytest.fixture(scope="module")
def detector(views, tmp_path_factory) -> Path:
    """A yolo11n detector run (1 epoch): the source of the transfers."""
    from rsna_yolo.train.run import train

    project = tmp_path_factory.mktemp("runs")
    args, _ = parse_key_values([f"data={views['det']}", "model=yolo11n.yaml", *TINY, f"project={project}",
                                "name=det"])  # fmt: skip
    return train(args, TrainOptions(wandb=False, rescore=False)).run_dir


def source_state(weights: Path) -> dict[str, torch.Tensor]:
    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(str(weights))
    return {k: v.detach().float().clone() for k, v in model.state_dict().items()}


def snapshot_at_setup() -> tuple[dict, dict]:
    """A callback that copies the model's state at ``on_pretrain_routine_end`` (before any optimiser step)."""
    from ultralytics.utils.torch_utils import unwrap_model

    seen: dict[str, dict] = {}

    def grab(trainer) -> None:
        model = unwrap_model(trainer.model)
        seen["state"] = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
        seen["frozen"] = {n for n, p in model.named_parameters() if not p.requires_grad}

    return {"on_pretrain_routine_end": [grab]}, seen


def train_with(args: list[str], callbacks=None, **options):
    from rsna_yolo.train.run import train

    parsed, _ = parse_key_values(args)
    return train(parsed, TrainOptions(wandb=False, **options), callbacks=callbacks)


@pytest.mark.slow
def test_classifier_gets_every_shared_tensor_of_a_detector_run_folder(views, detector, tmp_path):
    callbacks, seen = snapshot_at_setup()
    args = ["task=classify", f"data={views['cls']}", "model=yolo11n-cls.yaml", f"pretrained={detector}"]
    result = train_with([*args, *TINY, f"project={tmp_path}", "name=cls"], callbacks)
    source = source_state(detector / "weights" / "best.pt")
    state = seen["state"]
    shared = sorted(k for k in state if k in source and source[k].shape == state[k].shape)
    assert (len(shared), len(state)) == (192, 236)  # FACTS.md: yolo11n -> yolo11n-cls, Ultralytics' own count
    for name in shared:  # bit for bit, before the first optimiser step
        assert torch.equal(state[name], source[name]), name
    record = json.loads((result.run_dir / "transfer.json").read_text())
    assert sorted(record["transferred"]) == shared
    assert set(record["left_out"]) == set(state) - set(shared)
    assert record["source"] == str(detector / "weights" / "best.pt")  # the run folder resolved to its best.pt
    saved = yaml.safe_load((result.run_dir / "args.yaml").read_text())
    assert saved["pretrained"] == record["source"]  # what Ultralytics was given, as args.yaml records it
    assert record["left_out"]["model.10.linear.weight"] == "not in the source"  # the Classify head
    assert result.transfer["transferred"] == 192 and result.transfer["of"] == 236
    assert result.classify["transfer"] == result.transfer  # classify.json says where the weights came from
    saved = json.loads((result.run_dir / "classify.json").read_text())
    assert saved["transfer"]["source"] == record["source"]


@pytest.mark.slow
def test_detector_fine_tuned_on_another_dataset_keeps_frozen_tensors(views, detector, tmp_path):
    """Pretrain on one dataset, fine-tune on another with freeze=3: the first three layers' parameters are
    the source's, byte for byte, after an epoch of training; the other transferred ones did train."""
    from ultralytics.utils.torch_utils import unwrap_model

    after: dict[str, torch.Tensor] = {}

    def grab_end(trainer) -> None:
        after.update(
            {k: v.detach().float().cpu().clone() for k, v in unwrap_model(trainer.model).named_parameters()}
        )

    callbacks, seen = snapshot_at_setup()
    callbacks["on_train_end"] = [grab_end]
    result = train_with([f"data={views['other']}", "model=yolo11n.yaml", f"pretrained={detector}", "freeze=3",
                         "optimizer=SGD", "lr0=0.05", *TINY, f"project={tmp_path}", "name=ft"],
                        callbacks, rescore=False)  # fmt: skip
    source = source_state(detector / "weights" / "best.pt")
    record = json.loads((result.run_dir / "transfer.json").read_text())
    assert len(record["transferred"]) == len(seen["state"]) == len(source)  # same architecture, same classes
    frozen = sorted(n for n in after if n.split(".")[1] in {"0", "1", "2"})
    assert frozen and set(frozen) <= seen["frozen"] and set(record["frozen"]) == seen["frozen"]
    for name in frozen:
        assert after[name].numpy().tobytes() == source[name].numpy().tobytes(), name
    trained = [n for n in after if n not in seen["frozen"] and not torch.equal(after[n], source[n])]
    assert len(trained) > len(after) // 2, "the unfrozen layers did not train: the check above proves nothing"


@pytest.mark.slow
def test_a_head_of_another_class_count_is_left_out_and_said(views, tmp_path, capsys):
    model = "model=yolo_configs/models/basic_cnn_cls.yaml"
    three = train_with(["task=classify", f"data={views['cls']}", model, *TINY, f"project={tmp_path}",
                        "name=three"], rescore=False)  # fmt: skip
    two = train_with(["task=classify", f"data={views['binary']}", model,
                      f"pretrained={three.run_dir / 'weights' / 'last.pt'}", *TINY, *NO_STEP,
                      f"project={tmp_path}", "name=two"], rescore=False)  # fmt: skip
    record = json.loads((two.run_dir / "transfer.json").read_text())
    assert record["left_out"] == {
        "model.5.linear.weight": "shape (3, 1280) in the source, (2, 1280) here",
        "model.5.linear.bias": "shape (3,) in the source, (2,) here",
    }
    assert record["head"].startswith("head model.5 (Classify) partly left out: the source has 3 classes, "
                                     "this model 2")  # fmt: skip
    assert len(record["transferred"]) == record["n_target"] - 2
    out = capsys.readouterr().out
    assert f"transfer: {record['n_target'] - 2}/{record['n_target']} tensors from" in out
    assert "transfer: head model.5 (Classify) partly left out" in out


def write_checkpoint(path: Path, yaml_text: str, nc: int = 3) -> Path:
    """An Ultralytics-style checkpoint of a model built from ``yaml_text`` (as ``load_checkpoint`` reads)."""
    from ultralytics.nn.tasks import ClassificationModel

    cfg = path.with_suffix(".yaml")
    cfg.write_text(yaml_text)
    torch.save({"model": ClassificationModel(str(cfg), nc=nc, verbose=False).half(), "train_args": {}}, path)
    return path


def test_sources_that_cannot_be_used_are_one_line_each(views, tmp_path):
    common = ["task=classify", f"data={views['cls']}", "model=yolo_configs/models/basic_cnn_cls.yaml", *TINY,
              f"project={tmp_path}"]  # fmt: skip
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint" * 10)
    (tmp_path / "empty_run" / "weights").mkdir(parents=True)
    cases = {
        str(corrupt): "not a readable Ultralytics checkpoint",
        str(tmp_path / "empty_run"): "no weights/best.pt or weights/last.pt in this run folder",
        str(tmp_path / "missing.pt"): "no such weights file or run folder",
    }
    for value, message in cases.items():
        with pytest.raises(UserError, match=message) as caught:
            train_with([*common, f"pretrained={value}", "name=x"])
        assert "\n" not in str(caught.value) and str(caught.value).startswith(f"pretrained={value}")
    assert not (tmp_path / "x").exists()  # refused before Ultralytics made a run folder


def test_a_source_that_shares_nothing_stops_before_the_first_epoch(views, tmp_path):
    # One 8-channel conv and a Classify head: no tensor of basic_cnn_cls has its name and shape.
    source = write_checkpoint(tmp_path / "narrow.pt", "nc: 3\nbackbone:\n  - [-1, 1, Conv, [8, 3, 2]]\n"
                              "head:\n  - [-1, 1, Classify, [nc]]\n")  # fmt: skip
    with pytest.raises(UserError, match="shares no tensor \\(by name and shape\\)"):
        train_with(["task=classify", f"data={views['cls']}", "model=yolo_configs/models/basic_cnn_cls.yaml",
                    f"pretrained={source}", *TINY, f"project={tmp_path}", "name=nothing"])  # fmt: skip
    assert not (tmp_path / "nothing" / "results.csv").exists()  # no epoch was trained


def test_command_line_corrupt_source_is_one_line(views, tmp_path):
    corrupt = tmp_path / "bad.pt"
    corrupt.write_bytes(b"\x00" * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "train", "task=classify", f"data={views['cls']}", "model=yolo11n-cls.yaml",
         f"pretrained={corrupt}", *TINY, f"project={tmp_path}", "wandb=False"],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not a readable Ultralytics checkpoint" in lines[0], proc.stderr[-2000:]
