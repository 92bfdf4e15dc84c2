#!/usr/bin/env python
"""Prepare BCSS (RGB regions + code masks) as a 5-class tiled dataset folder; see seunet_monai.data.bcss.

Usage:
    python scripts/prepare_bcss.py --images DIR --masks DIR --dst DST [--tile 512] [--test-institutions CODES]
        [--class-map FILE] [--overwrite] [--skip-bad] [--val-fraction F] [--seed S]
        [--stain-norm none|vahadane|macenko] [--stain-reference IMG]
"""

import sys

from seunet_monai.data.bcss import main

if __name__ == "__main__":
    sys.exit(main())
