#!/usr/bin/env python
"""Prepare BCSS (RGB regions + code masks) as a 5-class tiled dataset folder.

The same as the console script ``seunet-prepare-bcss`` (installed by ``pip install``); see
:mod:`seunet_monai.cli.prepare_bcss` for the options (``--help``).
"""

import sys

from seunet_monai.cli.prepare_bcss import main

if __name__ == "__main__":
    sys.exit(main())
