"""seunet-monai: the Scale-Equivariant UNet (SEUNet) for histopathology segmentation, as a MONAI library.

Reference: Y. Yang, S. Dasmahapatra, S. Mahmoodi, "Scale-Equivariant UNet for Histopathology Image
Segmentation" (2023).

Conventions used throughout the package:

- Per-head tensors are ``(B, Ω, C, *spatial)``: batch, scale group (head), channel/class, space.
- Inside the networks, the Ω scale groups are folded into the batch, group-major:
  ``(Ω·B, C, *spatial)`` with rows ``k·B .. k·B + B - 1`` holding group ``k`` of the ``B`` samples, so each
  group is one contiguous block of rows. See :mod:`seunet_monai.layers.group_ops`.

Package layout (by MONAI component type): :mod:`~seunet_monai.networks`, :mod:`~seunet_monai.layers`,
:mod:`~seunet_monai.losses`, :mod:`~seunet_monai.inferers` (per-head probabilities), :mod:`~seunet_monai.transforms`
(post-processing), :mod:`~seunet_monai.handlers` (Ignite handlers), :mod:`~seunet_monai.metrics`,
:mod:`~seunet_monai.data`, :mod:`~seunet_monai.evaluation`; for the bundle: :mod:`~seunet_monai.runtime.paths` (where the
bundle is), :mod:`~seunet_monai.runtime.checks` (pre-run checks), :mod:`~seunet_monai.checkpoint` (reading checkpoints).
"""

__version__ = "0.3.1"

__all__ = ["__version__"]
