"""``python -m rsna_yolo.recipe RECIPE.yaml --out DIR``: the same as ``rsna-yolo recipe``."""

import sys

from rsna_yolo.recipe.cli import main

sys.exit(main())
