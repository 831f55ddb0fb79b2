"""The ground floor of rsna-yolo: what every stage (``convert``, ``analysis``, ``train``) stands on.

It holds the project's conventions and the formats of its files, and imports none of the stages:

- :mod:`rsna_yolo.core.cli`: command-line plumbing and :class:`~rsna_yolo.core.cli.UserError` (one fixable
  problem, one line);
- :mod:`rsna_yolo.core.boxes`: box coordinate frames and their conversions;
- :mod:`rsna_yolo.core.dicom`: reading a challenge DICOM to 8-bit pixels and header values;
- :mod:`rsna_yolo.core.images`: resizing a film and reading a PNG's header;
- :mod:`rsna_yolo.core.io`: the one atomic writer (bytes, text, CSV, JSON);
- :mod:`rsna_yolo.core.download`: the Kaggle download's file and folder names and where they are in a folder;
- :mod:`rsna_yolo.core.layout`: a converted dataset's contract (splits, classes, manifest columns, label and
  prediction files, readers of ``manifest.csv``, ``data.yaml`` and fold YAMLs);
- :mod:`rsna_yolo.core.runs`: a training run folder (weights, data YAML, ``kaggle.json``, prediction files).
"""
