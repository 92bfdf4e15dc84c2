#!/usr/bin/env python
"""Controlled scale-shift benchmark: train at synthetic scale 1, test at other scales.

The same as the console script ``seunet-scale-shift`` (installed by ``pip install``); see
:mod:`seunet_monai.cli.scale_shift` for the options (``--help``).
"""

import sys

from seunet_monai.cli.scale_shift import main

if __name__ == "__main__":
    sys.exit(main())
