"""``python -m rsna_yolo ...``: the same as the installed ``rsna-yolo`` command."""

import sys

from rsna_yolo.cli import main

sys.exit(main())
