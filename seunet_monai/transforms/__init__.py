"""MONAI transforms of the package (post-processing of per-head outputs); data-loading transforms are in
:mod:`seunet_monai.data` (e.g. :mod:`seunet_monai.data.stain.normalizers`)."""

from .post import Fuse, Fused

__all__ = ["Fuse", "Fused"]
