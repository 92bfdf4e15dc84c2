#!/usr/bin/env python
"""Prepare MoNuSeg (official layout) as a dataset folder with datalist.json.

The same as the console script ``seunet-prepare-monuseg`` (installed by ``pip install``); see
:mod:`seunet_monai.cli.prepare_monuseg` for the options (``--help``).
"""

import sys

from seunet_monai.cli.prepare_monuseg import main

if __name__ == "__main__":
    sys.exit(main())
