"""Networks: the SEUNet and its baselines (CNN, SESN, DISCO), all following the per-head conventions of the package."""

from .cnn import CNNUNet, PlainConv
from .disco import DISCOConv, DISCOUNet
from .sesn import SESNConv, SESNUNet
from .seunet import GDBlock, SEUNet

__all__ = ["CNNUNet", "DISCOConv", "DISCOUNet", "GDBlock", "PlainConv", "SEUNet", "SESNConv", "SESNUNet"]
