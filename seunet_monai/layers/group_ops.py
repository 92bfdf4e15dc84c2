"""The scale-group layout and the operations shared by all groups.

Layout (used by every layer in this package): the Ω scale groups are folded into the batch, batch-major,

    folded:    (B·Ω, C, *spatial)      row b·Ω + k = group k of sample b
    per-head:  (B, Ω, C, *spatial)     the same memory, unfolded
    grouped:   (B, Ω·C, *spatial)      the same memory again, as grouped convolutions (groups=Ω) see it

so anything applied per channel (norm statistics and affine, bias, activation, pooling, up-sampling, 1×1
convolutions, heads) runs once on the folded tensor and is automatically shared by all groups, as the
method requires (METHOD.md sec. 3: groups must differ only by σ). Batch norm on the folded tensor pools its
statistics over the batch and the groups.
"""

from __future__ import annotations

import torch

__all__ = ["fold_groups", "unfold_groups"]


def unfold_groups(x: torch.Tensor, num_scales: int) -> torch.Tensor:
    """``(B·Ω, C, *spatial) -> (B, Ω, C, *spatial)`` (a view)."""
    if x.shape[0] % num_scales:
        raise ValueError(f"batch {x.shape[0]} is not a multiple of num_scales={num_scales}.")
    return x.reshape(x.shape[0] // num_scales, num_scales, *x.shape[1:])


def fold_groups(x: torch.Tensor) -> torch.Tensor:
    """``(B, Ω, C, *spatial) -> (B·Ω, C, *spatial)``."""
    if x.ndim < 3:
        raise ValueError(f"expected (B, Ω, C, *spatial), got shape {tuple(x.shape)}.")
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
