"""Scale equivariance between the groups of a multi-head network: the errors of eq. 12 between the groups'
features on an image and on the image at another scale, and which group should match which.

An image enlarged by ``s`` is seen by group ``k'`` as the original by group ``k`` when ``σ_k' ≈ s σ_k``
(:func:`matched_groups`); the network is equivariant when ``E[k, k']`` of :func:`equivariance_matrix` is small for
those pairs (:meth:`seunet_monai.networks.base.MultiHeadNetwork.check_equivariance` measures it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["equivariance_matrix", "matched_groups"]


def equivariance_matrix(reference: torch.Tensor, test: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Ω×Ω relative equivariance errors between groups (eq. 12), per sample.

    ``E[b, k, k'] = ||S_s Φ_k(f_b) − Φ_k'(S_s f_b)||² / ||S_s Φ_k(f_b)||²``

    Args:
        reference: ``S_s Φ(f)``: features of the original image resampled to the rescaled size,
            ``(B, Ω, F, *spatial)``.
        test: ``Φ(S_s f)``: features of the rescaled image ``(B, Ω', F, *spatial)``.
        eps: floor of the denominator (an all-zero reference feature map gives a huge ratio, not ``nan``).

    Returns:
        ``(B, Ω, Ω')`` errors (float64).
    """
    if reference.ndim < 4 or reference.ndim != test.ndim:
        raise ValueError(
            f"equivariance_matrix: expected (B, Ω, F, *spatial) tensors of equal rank, got {tuple(reference.shape)} "
            f"and {tuple(test.shape)}."
        )
    if reference.shape[0] != test.shape[0] or reference.shape[2:] != test.shape[2:]:
        raise ValueError(
            "equivariance_matrix: reference and test must agree in batch, features and space (resample the "
            f"reference first), got {tuple(reference.shape)} and {tuple(test.shape)}."
        )
    r = reference.flatten(2).double()  # (B, Ω, N)
    t = test.flatten(2).double()  # (B, Ω', N)
    # ||r_k - t_k'||² = ||r_k||² + ||t_k'||² - 2 <r_k, t_k'>, computed exactly with cdist for stability
    diff = torch.cdist(r, t, p=2.0) ** 2  # (B, Ω, Ω')
    norm = (r**2).sum(-1, keepdim=True).clamp_min(eps)  # (B, Ω, 1)
    return diff / norm


def matched_groups(sigmas: torch.Tensor | Sequence[float], scale: float) -> torch.Tensor:
    """For each group ``k``, the group ``k'`` whose σ ratio ``σ_k' / σ_k`` is closest to ``scale`` (log scale).

    An image enlarged by ``s`` is seen by group ``k'`` as the original by group ``k`` when ``σ_k' ≈ s σ_k``.

    Args:
        sigmas: σ of the Ω groups of one layer ``(Ω,)`` (positive).
        scale: the scale change ``s`` (> 0).

    Returns:
        ``(Ω,)`` int64 indices ``k'`` (0-based); the identity for ``s = 1`` and distinct σ.
    """
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    if scale <= 0:
        raise ValueError(f"matched_groups: scale must be > 0, got {scale}.")
    if sig.numel() == 0 or bool((sig <= 0).any()):
        raise ValueError(f"matched_groups: sigmas must be positive and non-empty, got {sig.tolist()}.")
    log_ratio = sig.log().view(1, -1) - sig.log().view(-1, 1)  # [k, k'] = log(σ_k' / σ_k)
    return (log_ratio - math.log(scale)).abs().argmin(dim=1)
