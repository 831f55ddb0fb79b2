"""``python -m train ...`` from a clone's root: :func:`rsna_yolo.train.__main__.main`."""

import sys

from rsna_yolo.train.__main__ import main

sys.exit(main())
