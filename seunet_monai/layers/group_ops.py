"""The scale-group layout shared by every layer of the package.

Inside the networks the Ω scale groups are folded into the batch, **group-major**:

    folded:    (Ω·B, C, *spatial)      rows k·B ... k·B + B - 1 hold group k of the B samples
    per-head:  (B, Ω, C, *spatial)     the public layout (network outputs, fusion, losses, metrics)

Group-major folding keeps every group a contiguous block of rows, in both contiguous and channels-last
memory formats, so a GD layer filters each group with its own kernel sizes without copies, and anything
applied per channel (norm statistics and affine, bias, activation, pooling, up-sampling, 1×1
convolutions, heads) runs once on the folded tensor and is automatically shared by all groups, as the
method requires (the paper, sec. 3.1: groups differ only by σ). Batch norm on the folded tensor pools its
statistics over the batch and the groups.
"""

from __future__ import annotations

import torch

__all__ = ["fold_groups", "unfold_groups"]


def unfold_groups(x: torch.Tensor, num_scales: int) -> torch.Tensor:
    """``(Ω·B, C, *spatial) -> (B, Ω, C, *spatial)`` (a permuted view, not contiguous)."""
    if x.shape[0] % num_scales:
        raise ValueError(f"batch {x.shape[0]} is not a multiple of num_scales={num_scales}.")
    return x.reshape(num_scales, x.shape[0] // num_scales, *x.shape[1:]).transpose(0, 1)


def fold_groups(x: torch.Tensor) -> torch.Tensor:
    """``(B, Ω, C, *spatial) -> (Ω·B, C, *spatial)`` (a copy unless the input is an unfolded view)."""
    if x.ndim < 3:
        raise ValueError(f"expected (B, Ω, C, *spatial), got shape {tuple(x.shape)}.")
    return x.transpose(0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])
