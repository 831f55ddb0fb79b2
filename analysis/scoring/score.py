"""Scoring a submission CSV against the ground truth with the exact Kaggle metric (``analysis score``).

:func:`score_submission` reads the truth (:func:`analysis.scoring.truth.read_truth`: the Kaggle labels CSV
or a
converted dataset) and the submission (:func:`analysis.scoring.submission.read_submission`), optionally
drops boxes
below a threshold and scales the rest about their centre, and returns a :class:`ScoreResult`: the score, one
row per truth patient and, when the classes are known, where the loss comes from
(:func:`analysis.scoring.breakdown.breakdown`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.scoring.breakdown import breakdown
from analysis.scoring.checks import check_settings
from analysis.scoring.metric import accumulate, evaluate_images, summarize
from analysis.scoring.submission import read_submission, submission_preds
from analysis.scoring.truth import read_truth
from rsna_yolo.core.cli import UserError
from rsna_yolo.core.io import write_csv_atomic


@dataclass(frozen=True)
class ScoreResult:
    """What :func:`score_submission` found.

    ``score``: the Kaggle score (NaN when no image counts). ``per_image``: one row per truth patient scored,
    ``patientId, class, n_truth, n_pred, score`` (``n_pred``: boxes kept; ``score`` NaN for an image left
    out: no truth and no box). ``n_scored`` / ``n_left_out``: images counted / left out of the mean.
    ``n_absent``: truth patients the submission does not name (scored as "no box"). ``breakdown``: the
    loss per class of image, None when the truth has no classes.
    """

    score: float
    per_image: pd.DataFrame
    n_scored: int
    n_left_out: int
    n_absent: int
    breakdown: dict | None


def score_submission(
    truth_path: str | Path,
    submission_path: str | Path,
    *,
    split: str | None = None,
    subset: bool = False,
    conf: float = 0.0,
    box_scale: float = 1.0,
    per_image_csv: str | Path | None = None,
    echo: Callable[[str], object] = print,
) -> ScoreResult:
    """Score ``submission_path`` against ``truth_path`` (see :func:`analysis.scoring.truth.read_truth`;
    ``split``
    restricts a converted dataset to one split).

    Patients of the truth missing from the submission count as "no box". A patient of the submission not in
    the truth is a :class:`UserError` unless ``subset``, which scores only the truth patients the submission
    names. Boxes below ``conf`` are dropped and the rest scaled about their centre by ``box_scale`` first.
    ``per_image_csv``: where to write :attr:`ScoreResult.per_image`. ``echo`` receives the notes worth
    telling (truth rows skipped, patients ignored), as they arise.
    """
    check_settings(conf, box_scale, hint=False)
    gt = read_truth(truth_path, split=split)
    sub = read_submission(submission_path)
    for note in gt.notes:
        echo(f"note: {note}")
    preds = {k: v for k, v in submission_preds(sub).items() if k not in gt.excluded}
    ids = [i for i in sub.ids if i not in gt.excluded]
    unknown = [
        (i, r) for i, r in zip(sub.ids, sub.rows, strict=True) if i not in gt.truth and i not in gt.excluded
    ]
    if unknown and not subset:
        pid, row = unknown[0]
        raise UserError(
            f"{submission_path}:{row} ({pid}): patient not in the truth ({len(unknown)} such rows); "
            "use --subset to score only patients of the truth named in the submission"
        )
    truth = gt.truth
    if subset:
        truth = {i: gt.truth[i] for i in ids if i in gt.truth}
        preds = {k: v for k, v in preds.items() if k in truth}
        if unknown:
            echo(f"note: {len(unknown)} patient(s) not in the truth ignored, e.g. {unknown[0][0]}")
    if not truth:
        raise UserError(f"{submission_path}: no patient of the truth to score")
    ev = evaluate_images(truth, preds, box_scale=box_scale)
    scores = accumulate(ev, [conf])[0]
    per = {i: float(s) for i, s in zip(ev.ids, scores, strict=True) if s == s}
    n_kept = dict(zip(ev.ids, ev.n_kept(conf).tolist(), strict=True))
    per_image = pd.DataFrame(
        {
            "patientId": list(ev.ids),
            "class": [gt.classes.get(i, "") for i in ev.ids],
            "n_truth": ev.n_gt,
            "n_pred": [n_kept[i] for i in ev.ids],
            "score": scores,
        }
    )
    if per_image_csv:
        write_csv_atomic(per_image, per_image_csv)
    return ScoreResult(
        score=summarize(scores),
        per_image=per_image,
        n_scored=len(per),
        n_left_out=len(truth) - len(per),
        n_absent=len(set(truth) - set(sub.ids)),
        breakdown=breakdown(per, truth, gt.classes, n_kept) if gt.classes else None,
    )
