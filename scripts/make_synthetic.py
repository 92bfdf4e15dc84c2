#!/usr/bin/env python
"""Write a synthetic H&E-like dataset (images, labels, datalist.json) for the bundle.

The same as the console script ``seunet-make-synthetic`` (installed by ``pip install``); see
:mod:`seunet_monai.cli.make_synthetic` for the options (``--help``).
"""

import sys

from seunet_monai.cli.make_synthetic import main

if __name__ == "__main__":
    sys.exit(main())
