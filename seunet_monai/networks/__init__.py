"""Networks: the SEUNet and (later) baselines, all following the per-head conventions of the package."""

from .seunet import GDBlock, SEUNet
from .sesn import SESNConv, SESNUNet

__all__ = ["GDBlock", "SEUNet", "SESNConv", "SESNUNet"]
