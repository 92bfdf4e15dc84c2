"""Networks: the SEUNet and (later) baselines, all following the per-head conventions of the package."""

from .seunet import GDBlock, SEUNet

__all__ = ["GDBlock", "SEUNet"]
