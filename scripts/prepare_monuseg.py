#!/usr/bin/env python
"""Prepare MoNuSeg (official layout) as a dataset folder with datalist.json; see seunet_monai.data.monuseg.

Usage:
    python scripts/prepare_monuseg.py --src SRC --dst DST [--val-fraction F] [--tile 400] [--stride 200]
        [--stain-norm vahadane|macenko|none] [--stain-reference IMG] [--overwrite] [--skip-bad] [--strict] [--seed S]
"""

import sys

from seunet_monai.data.monuseg import main

if __name__ == "__main__":
    sys.exit(main())
