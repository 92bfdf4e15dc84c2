"""Scale-group layers: Gaussian-derivative bases, learnable scales, GD convolutions, group layout, and the scale
action on images, labels and features (:mod:`~seunet_monai.layers.rescale`: the sweep's rescaling, which the
DISCO basis also uses; import it from there).

These are ours: MONAI's convolutions (``Conv[...]``, ``Convolution``) learn free kernels of a fixed size; a GD
layer's kernels are a learnt mix of Gaussian derivatives whose σ is itself learnt within a range per scale group,
with kernel sizes following σ and coefficients shared by all groups (the paper, eq. 4-7), which no MONAI layer
provides. Per-channel parts of the networks (norms, activations, pooling, up-sampling) use MONAI/PyTorch layers.
"""

from .gaussian_basis import (
    DISCRETIZATIONS,
    central_difference,
    derivative_multi_indices,
    gaussian_derivative_kernels_1d,
    gaussian_kernel_1d,
    gd_basis,
    hermite_polynomial,
    outer_basis,
)
from .gd_conv import IMPLEMENTATIONS, GDConv
from .group_ops import fold_groups, unfold_groups
from .scales import SIGMA_MODES, ScaleParameter, default_sigma_ranges, half_widths, validate_sigma_bounds

__all__ = [
    "DISCRETIZATIONS",
    "IMPLEMENTATIONS",
    "SIGMA_MODES",
    "GDConv",
    "ScaleParameter",
    "central_difference",
    "default_sigma_ranges",
    "derivative_multi_indices",
    "fold_groups",
    "gaussian_derivative_kernels_1d",
    "gaussian_kernel_1d",
    "gd_basis",
    "half_widths",
    "hermite_polynomial",
    "outer_basis",
    "unfold_groups",
    "validate_sigma_bounds",
]
