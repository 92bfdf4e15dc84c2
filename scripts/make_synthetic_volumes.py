#!/usr/bin/env python
"""Write a synthetic fluorescence-like 3D nuclei dataset (NIfTI volumes, labels, datalist.json) for the bundle's
volume variant (``bundle/configs/variants/3d/``).

The same as the console script ``seunet-make-synthetic-volumes`` (installed by ``pip install``); see
:mod:`seunet_monai.cli.make_synthetic_volumes` for the options (``--help``).
"""

import sys

from seunet_monai.cli.make_synthetic_volumes import main

if __name__ == "__main__":
    sys.exit(main())
