"""The tuning door: tuning a detector's output by the Kaggle metric, and the one table of its grids.

- :data:`DEFAULTS` (``defaults.yaml``): the threshold grid, box scales, gates, WBF grid, prediction floor
  and default confidence that every signature reads;
- :func:`tune` / :func:`tune_gate` / :func:`breakdown_at` (:mod:`analysis.tuning.tuner`): the table, the
  best setting, the loss breakdown and the held-out score of a prediction frame, with or without the
  classifier gate;
- :func:`load_split`: a split's truth, images and PNG scales, read once; :func:`read_truth`: the truth
  of a dataset, a labels CSV or a ``boxes.csv``; :func:`read_p_opacity`: a ``classifier_<split>.csv``;
- :func:`rescore` (:mod:`analysis.tuning.rescoring`): predict a split once and tune it, writing
  ``kaggle.json``;
- :func:`tune_wbf` / :func:`fuse_parts` (:mod:`analysis.tuning.wbf`): the fusion of several models' or flips'
  boxes, tuned by the metric, and one fusion applied.

``threshold``, ``gating`` and ``wbf`` hold the pieces; callers outside ``analysis`` (``train``) use the
names here.
"""

from analysis.record.defaults import DEFAULTS
from analysis.record.gate import read_p_opacity
from analysis.scoring.truth import read_truth
from analysis.tuning.rescoring import SplitData, load_split, rescore
from analysis.tuning.tuner import Tuned, breakdown_at, tune, tune_gate
from analysis.tuning.wbf import fuse_parts, tune_wbf

__all__ = [
    "DEFAULTS",
    "SplitData",
    "Tuned",
    "breakdown_at",
    "fuse_parts",
    "load_split",
    "read_p_opacity",
    "read_truth",
    "rescore",
    "tune",
    "tune_gate",
    "tune_wbf",
]
