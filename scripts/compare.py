#!/usr/bin/env python
"""Merge several scale-sweep outputs into comparison.csv, comparison.md and iou_vs_scale.png.

The same as the console script ``seunet-compare`` (installed by ``pip install``); see
:mod:`seunet_monai.cli.compare` for the options (``--help``).
"""

import sys

from seunet_monai.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
