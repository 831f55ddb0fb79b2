"""rsna-yolo: RSNA Pneumonia Detection Challenge DICOMs to a scored Kaggle submission with Ultralytics YOLO.

One installed package holds the project's own modules (``rsna_yolo.core``, ``rsna_yolo.train``,
``rsna_yolo.offline``) beside the two stages named for what they are, ``convert`` and ``analysis``, so an
install puts no ``core``, ``train`` or ``offline`` on ``sys.path`` to shadow another package's modules.
``rsna-yolo convert|train|analysis|predict`` (:mod:`rsna_yolo.cli`) is the installed command.
"""

from rsna_yolo import offline  # noqa: F401  (must run before anything imports ultralytics or wandb)
