"""seunet-monai: the Scale-Equivariant UNet (SEUNet) for histopathology segmentation, as a MONAI library.

Reference: Y. Yang, S. Dasmahapatra, S. Mahmoodi, "Scale-Equivariant UNet for Histopathology Image
Segmentation" (2023).

Conventions used throughout the package:

- Per-head tensors are ``(B, Ω, C, *spatial)``: batch, scale group (head), channel/class, space.
- Inside the networks, the Ω scale groups are folded into the batch, group-major:
  ``(Ω·B, C, *spatial)`` with rows ``k·B .. k·B + B - 1`` holding group ``k`` of the ``B`` samples, so each
  group is one contiguous block of rows. See :mod:`seunet_monai.layers.group_ops`.

Package layout, in layers that import only downward (:mod:`~seunet_monai.errors` and the plumbing of
:mod:`~seunet_monai.runtime` are usable from every layer above :mod:`~seunet_monai.layers`):

1. :mod:`~seunet_monai.layers`: Gaussian-derivative bases, learnable scales, GD convolutions, group layout, rescaling;
2. :mod:`~seunet_monai.fusion`: per-head outputs -> one prediction (the paper's fusions and the ``scale`` fusion);
3. :mod:`~seunet_monai.networks`: SEUNet and the baselines (their eval-mode output is fused);
4. :mod:`~seunet_monai.inferers`, :mod:`~seunet_monai.transforms`, :mod:`~seunet_monai.data`,
   :mod:`~seunet_monai.losses`, :mod:`~seunet_monai.metrics`, :mod:`~seunet_monai.checkpoint`;
5. :mod:`~seunet_monai.handlers` (Ignite), :mod:`~seunet_monai.evaluation` (the scale sweep), :mod:`~seunet_monai.apps`;
6. :mod:`~seunet_monai.experiments` (variants, runner, presets);
7. :mod:`~seunet_monai.cli` (the console scripts).
"""

__version__ = "0.5.0"

__all__ = ["__version__"]
