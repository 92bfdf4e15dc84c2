"""seunet-monai: the Scale-Equivariant UNet (SEUNet) for histopathology segmentation, as a MONAI library.

Reference: Y. Yang, S. Dasmahapatra, S. Mahmoodi, "Scale-Equivariant UNet for Histopathology Image
Segmentation" (2023).

Conventions used throughout the package:

- Per-head tensors are ``(B, Ω, C, *spatial)``: batch, scale group (head), channel/class, space.
- Inside the networks, the Ω scale groups are folded into the batch, batch-major:
  ``(B * Ω, C, *spatial)`` with row ``b * Ω + k`` holding group ``k`` of sample ``b``. The same memory
  viewed as ``(B, Ω * C, *spatial)`` is what grouped convolutions (``groups=Ω``) see. See
  :mod:`seunet_monai.layers.group_ops`.
"""

__version__ = "0.3.0"

__all__ = ["__version__"]
