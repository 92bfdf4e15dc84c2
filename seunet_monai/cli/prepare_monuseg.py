"""``seunet-prepare-monuseg``: prepare MoNuSeg (official layout) as a dataset folder with datalist.json.

Usage::

    seunet-prepare-monuseg --src SRC --dst DST [--val-fraction F] [--tile 400] [--stride 200]
        [--stain-norm vahadane|macenko|none] [--stain-reference IMG] [--overwrite] [--skip-bad] [--strict] [--seed S]

See :mod:`seunet_monai.data.monuseg`.
"""

from seunet_monai.data.monuseg import main

__all__ = ["main"]
