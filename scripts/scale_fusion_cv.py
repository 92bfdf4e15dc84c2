#!/usr/bin/env python
"""Leave-one-image-out validation of the ``scale`` fusion: ``cache`` (runs the network once per image and scale)
and ``score`` (offline, candidate rules); see :mod:`seunet_monai.cli.scale_fusion_cv` for the options (``--help``).
"""

import sys

from seunet_monai.cli.scale_fusion_cv import main

if __name__ == "__main__":
    sys.exit(main())
