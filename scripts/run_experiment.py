#!/usr/bin/env python
"""Train and scale-sweep several model variants through the bundle, then compare them.

The same as the console script ``seunet-experiment`` (installed by ``pip install``); see
:mod:`seunet_monai.cli.experiment` for the options (``--help``).
"""

import sys

from seunet_monai.cli.experiment import main

if __name__ == "__main__":
    sys.exit(main())
