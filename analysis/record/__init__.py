"""The tuned record: what tuning leaves behind and inference reads back, below both doors.

- :data:`DEFAULTS` (``defaults.yaml``): the one table of grids and defaults every signature reads;
- :mod:`~analysis.record.fusion`: weighted box fusion of several models or flips (numpy, bit-equal to
  ``ensemble_boxes``), tuned by :mod:`analysis.tuning.wbf` and applied by inference;
- :mod:`~analysis.record.gate`: a classifier's P(opacity) per image and :func:`apply_gate`, the one way a
  tuned gate is applied.

Layers (``lint-imports``): scoring < record < inference < tuning < reports; nothing here imports upwards.
"""
