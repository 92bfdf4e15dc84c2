"""``seunet-prepare-bcss``: prepare BCSS (RGB regions + code masks) as a 5-class tiled dataset folder.

Usage::

    seunet-prepare-bcss --images DIR --masks DIR --dst DST [--tile 512] [--test-institutions CODES]
        [--class-map FILE] [--overwrite] [--skip-bad] [--val-fraction F] [--seed S]
        [--stain-norm none|vahadane|macenko] [--stain-reference IMG]

See :mod:`seunet_monai.data.bcss`.
"""

from seunet_monai.data.bcss import main

__all__ = ["main"]
