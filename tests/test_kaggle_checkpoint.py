"""Training steered by the competition metric: ``best_kaggle.pt``, ``kaggle_patience`` and the final choice.

Tiny real runs (yolo11n, imgsz 64, 12 images). A detector that small scores a Kaggle mAP of 0.0 at every
epoch of a short run, which would let any epoch pass for the best; so where the choice of an epoch is
tested, the per-epoch score is scripted (``rsna_yolo.train.scoring.EpochScorer`` replaced, nothing else): the
trainer, the checkpoints, the copy, the history file, the stop and the final rescoring are real. The stalled
run of ``kaggle_patience`` is real end to end (its real scores do not improve).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from tiny_yolo_data import make_tiny_dataset

from rsna_yolo.core.cli import UserError
from rsna_yolo.train import scoring
from rsna_yolo.train.args import parse_key_values

# nbs=4: every batch steps the optimiser (the default nominal batch 64 would step once in 5 epochs here)
TINY = ["model=yolo11n.yaml", "imgsz=64", "batch=4", "nbs=4", "workers=0", "plots=False", "mosaic=0"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"), n_train=12, n_val=6)


class ScriptedScorer:
    """Stands for ``EpochScorer``: returns the scripted values in turn and records which weights it saw."""

    values: ClassVar[list[float]] = []
    seen: ClassVar[list[str]] = []

    def __init__(self, data: Path, split: str = "val"):
        pass

    def __call__(self, weights: Path, **settings) -> float:
        ScriptedScorer.seen.append(str(weights))
        return ScriptedScorer.values[len(ScriptedScorer.seen) - 1]


def scripted(monkeypatch, values: list[float]) -> None:
    monkeypatch.setattr(ScriptedScorer, "values", list(values))
    monkeypatch.setattr(ScriptedScorer, "seen", [])
    monkeypatch.setattr(scoring, "EpochScorer", ScriptedScorer)


def run(tiny_data: Path, tmp_path: Path, name: str, *extra: str):
    from rsna_yolo.train.run import train

    args, options = parse_key_values([f"data={tiny_data}", *TINY, f"project={tmp_path}", f"name={name}",
                                      "wandb=False", *extra])  # fmt: skip
    return train(args, options)


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    from ultralytics.nn.tasks import load_checkpoint

    model, _ = load_checkpoint(str(path))
    return {k: v.detach().float().clone() for k, v in model.state_dict().items()}


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kaggle_patience_needs_kaggle_every():
    with pytest.raises(UserError, match=r"kaggle_patience=3: counts epochs scored .* kaggle_every=N"):
        parse_key_values(["kaggle_patience=3"])
    with pytest.raises(UserError, match="kaggle_patience=-1: expected a whole number"):
        parse_key_values(["kaggle_every=1", "kaggle_patience=-1"])
    assert parse_key_values(["kaggle_every=2", "kaggle_patience=3"])[1].kaggle_patience == 3


@pytest.mark.slow
def test_best_kaggle_pt_is_the_epoch_with_the_best_score(tiny_data: Path, tmp_path: Path, monkeypatch):
    scores = [0.10, 0.35, 0.20, 0.30]
    scripted(monkeypatch, scores)
    result = run(tiny_data, tmp_path, "ck", "epochs=4", "kaggle_every=1", "save_period=1")
    history = json.loads((result.run_dir / "kaggle_epochs.json").read_text())
    assert history["scores"] == {str(e): s for e, s in enumerate(scores, 1)}  # read back from the run
    best_epoch = max(history["scores"], key=lambda e: history["scores"][e])
    assert history["best_kaggle"] == {"epoch": int(best_epoch), "score": 0.35}
    weights = result.run_dir / "weights"
    assert ScriptedScorer.seen == [str(weights / "last.pt")] * 4  # each epoch's weights as saved
    kept = weights_of(weights / "best_kaggle.pt")
    # Ultralytics' save_period=1 files are named by the 0-based epoch: epoch1.pt holds epoch 2
    epochs = {e: weights_of(weights / f"epoch{e - 1}.pt") for e in range(1, 5)}
    assert [e for e, w in epochs.items() if same_weights(kept, w)] == [int(best_epoch)]
    checkpoint = result.kaggle["checkpoint"]
    assert set(checkpoint["candidates"]) == {"best.pt", "best_kaggle.pt"}
    candidate = checkpoint["candidates"]["best_kaggle.pt"]
    assert (candidate["epoch"], candidate["epoch_score"]) == (int(best_epoch), 0.35)
    assert checkpoint["candidates"]["best.pt"]["epoch"] in range(1, 5)
    # both rescored for real on val; the higher score is kept, a tie keeps Ultralytics' best.pt
    fitness, kaggle = checkpoint["candidates"]["best.pt"]["score"], candidate["score"]
    assert checkpoint["kept"] == ("best_kaggle.pt" if kaggle > fitness else "best.pt")
    assert json.loads((result.run_dir / "kaggle.json").read_text())["checkpoint"] == checkpoint
    assert (result.run_dir / "kaggle_best_kaggle" / "kaggle.json").is_file()
    assert torch.load(weights / "best_kaggle.pt", weights_only=False)["optimizer"] is None  # stripped


@pytest.mark.slow
def test_kept_best_kaggle_pt_becomes_the_runs_best_pt(tiny_data: Path, tmp_path: Path, monkeypatch):
    """The branch where best_kaggle.pt scores higher: the fitness pick is scored -1 (impossible for a real
    score, so the real score of best_kaggle.pt wins) to reach it with a tiny run."""
    scripted(monkeypatch, [0.2, 0.1])
    real_final_score = scoring.final_score

    def fitness_pick_scores_lower(trainer, data):
        return {**real_final_score(trainer, data), "score": -1.0}

    monkeypatch.setattr(scoring, "final_score", fitness_pick_scores_lower)
    result = run(tiny_data, tmp_path, "swap", "epochs=2", "kaggle_every=1")
    weights = result.run_dir / "weights"
    checkpoint = result.kaggle["checkpoint"]
    assert checkpoint["kept"] == "best_kaggle.pt"
    assert checkpoint["candidates"]["best.pt"]["file"] == "weights/best_fitness.pt"
    assert (weights / "best.pt").read_bytes() == (weights / "best_kaggle.pt").read_bytes()
    assert (weights / "best_fitness.pt").is_file()
    assert Path(result.kaggle["weights"]) == weights / "best.pt"
    assert result.kaggle["score"] == checkpoint["candidates"]["best_kaggle.pt"]["score"]  # rescored as kept


@pytest.mark.slow
def test_kaggle_patience_stops_a_stalled_run(tiny_data: Path, tmp_path: Path, capsys):
    """Real scores, no learning (SGD with lr0=0): the score cannot improve after the first epoch, so
    kaggle_patience=2 stops the 6-epoch run after epoch 3; Ultralytics' patience is not involved."""
    result = run(tiny_data, tmp_path, "stall", "epochs=6", "kaggle_every=1", "kaggle_patience=2",
                 "optimizer=SGD", "lr0=0", "momentum=0", "weight_decay=0", "warmup_epochs=0")  # fmt: skip
    assert result.epochs_done == 3 and result.stopped_by_kaggle_patience and not result.stopped_by_hook
    assert sorted(result.epoch_scores) == [1, 2, 3]
    assert (
        result.epoch_scores[2] <= result.epoch_scores[1] and result.epoch_scores[3] <= result.epoch_scores[1]
    )
    assert "kaggle_patience=2: no better Kaggle mAP in the last 2 scored epochs" in capsys.readouterr().out
    assert result.kaggle is not None and "checkpoint" in result.kaggle  # the final rescoring still ran


@pytest.mark.slow
def test_kaggle_patience_counts_scored_epochs_only(tiny_data: Path, tmp_path: Path, monkeypatch):
    """kaggle_every=2: epochs 2, 4, 6 are scored; 0.3, 0.2, 0.25 -> two scored epochs without a better one
    after epoch 2 -> stop after epoch 6, not after epoch 4."""
    scripted(monkeypatch, [0.3, 0.2, 0.25, 0.9])
    result = run(tiny_data, tmp_path, "every2", "epochs=8", "kaggle_every=2", "kaggle_patience=2",
                 "rescore=False")  # fmt: skip
    assert result.epochs_done == 6 and result.stopped_by_kaggle_patience
    assert result.epoch_scores == {2: 0.3, 4: 0.2, 6: 0.25}


def test_sweeps_and_folds_pass_kaggle_patience_through():
    """A sweep trial's values go through split_values, a fold set's command line through parse_key_values:
    both hand kaggle_patience to train() in TrainOptions, not to Ultralytics."""
    from rsna_yolo.train.args import split_values

    args, options = split_values([("kaggle_every", 2), ("kaggle_patience", 3), ("epochs", 5)])
    assert (options.kaggle_every, options.kaggle_patience, args) == (2, 3, {"epochs": 5})
    args, options = parse_key_values(["epochs=5", "kaggle_every=1", "kaggle_patience=4"])
    assert (options.kaggle_patience, "kaggle_patience" in args) == (4, False)
