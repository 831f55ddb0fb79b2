"""``python -m train`` in a clone of the repository: a shim for :mod:`rsna_yolo.train`.

The training stage lives in ``rsna_yolo/train`` (an installed package puts no top-level ``train`` on
``sys.path``). From a clone's root, ``python -m train ...`` keeps working through this folder, which the
install leaves out; elsewhere use ``rsna-yolo train ...`` or ``python -m rsna_yolo.train ...``.
"""
