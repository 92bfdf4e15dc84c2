"""Gaussian-derivative basis functions (eq. 3 of Yang et al.; Lindeberg's scale-space derivatives).

A filter of a GD layer is a linear combination of the separable basis functions

    G_n(x; σ) = Π_a  σ^{n_a} ∂^{n_a} G(x_a; σ) / ∂x_a^{n_a},      |n| = Σ_a n_a <= N,

one per multi-index ``n`` over the spatial axes, with the 1-D Gaussian ``G(x; σ) = exp(-x²/2σ²)/(σ√(2π))``.
The factor ``σ^{n_a}`` is Lindeberg's γ-normalisation (γ = 1): it makes a filter at σ applied to an image
respond like the same filter at ``s·σ`` applied to the image enlarged ``s`` times.

Two discretisations of the 1-D kernels are offered (``discretization`` argument):

- ``"sampled"``: the Hermite closed form sampled on the integer grid,
  ``σ^n G^{(n)}(x; σ) = (-1/√2)^n H_n(x / (σ√2)) G(x; σ)`` (physicists' Hermite polynomials ``H_n``),
  with the sampled Gaussian normalised to unit sum. This is the paper's construction. At fine scales
  (σ below ~0.7) the sampled Gaussian becomes a delta and the derivative kernels vanish.
- ``"hybrid"``: Lindeberg's hybrid discretisation: the unit-sum sampled Gaussian followed by central
  differences ``δ_1 = [-1/2, 0, 1/2]``, ``δ_2 = [1, -2, 1]``, ``δ_{2m} = δ_2^m``, ``δ_{2m+1} = δ_1 δ_2^m``.
  One smoothing pass serves every derivative order, which is what makes the fast path of
  :class:`~seunet_monai.layers.gd_conv.GDConv` cheap, and derivatives stay meaningful as σ → 0 (they
  become plain central differences). The kernel is ``2⌈N/2⌉`` taps wider than the Gaussian.

Spatial axes are the tensor's axes in order (for 2-D ``(H, W)``: axis 0 is y, axis 1 is x); a multi-index
``n = (n_0, ..., n_{d-1})`` gives the derivative order along each axis.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

__all__ = [
    "DISCRETIZATIONS",
    "central_difference",
    "derivative_multi_indices",
    "gaussian_derivative_kernels_1d",
    "gaussian_kernel_1d",
    "gd_basis",
    "hermite_polynomial",
    "outer_basis",
    "stencil_radius",
]

DISCRETIZATIONS = ("sampled", "hybrid")


def derivative_multi_indices(spatial_dims: int, order: int) -> list[tuple[int, ...]]:
    """All multi-indices ``n`` with ``|n| <= order`` over ``spatial_dims`` axes.

    Sorted by total order, then lexicographically descending, so for ``spatial_dims=2, order=1`` the list
    is ``[(0, 0), (1, 0), (0, 1)]`` (the basis ``G_00, G_10, G_01`` of the paper, N = 1) and order 2 adds
    ``(2, 0), (1, 1), (0, 2)``.

    Args:
        spatial_dims: number of spatial axes (>= 1).
        order: highest total derivative order N (>= 0).
    """
    if spatial_dims < 1:
        raise ValueError(f"spatial_dims must be >= 1, got {spatial_dims}.")
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}.")
    idx = [n for n in itertools.product(range(order + 1), repeat=spatial_dims) if sum(n) <= order]
    return sorted(idx, key=lambda n: (sum(n), tuple(-v for v in n)))


def hermite_polynomial(n: int, t: torch.Tensor) -> torch.Tensor:
    """Physicists' Hermite polynomial ``H_n(t)`` by the three-term recurrence ``H_{k+1} = 2t H_k - 2k H_{k-1}``."""
    if n < 0:
        raise ValueError(f"Hermite order must be >= 0, got {n}.")
    h_prev, h = torch.ones_like(t), 2.0 * t
    if n == 0:
        return h_prev
    for k in range(1, n):
        h_prev, h = h, 2.0 * t * h - 2.0 * k * h_prev
    return h


def _grid(half_width: int, sigma: torch.Tensor) -> torch.Tensor:
    return torch.arange(-half_width, half_width + 1, dtype=sigma.dtype, device=sigma.device)


def gaussian_kernel_1d(sigma: torch.Tensor, half_width: int | Sequence[int]) -> torch.Tensor:
    """Sampled 1-D Gaussian on ``[-h, h]``, normalised to unit sum on its support.

    Args:
        sigma: scale(s), any shape ``S``; differentiable.
        half_width: kernel half-width ``h`` (size ``2h + 1``), or one half-width per element of a 1-D
            ``sigma``: then every kernel has size ``2·max(h) + 1`` and is zero outside its own ``[-h_k, h_k]``
            (the same kernel, zero-padded), so kernels of different sizes can be applied in one call.

    Returns:
        ``(*S, 2h + 1)`` kernels.
    """
    h_max, mask = _support(sigma, half_width)
    x = _grid(h_max, sigma)
    g = torch.exp(-0.5 * (x / sigma.unsqueeze(-1)) ** 2)
    if mask is not None:
        g = g * mask
    return g / g.sum(dim=-1, keepdim=True)


def _support(sigma: torch.Tensor, half_width: int | Sequence[int]) -> tuple[int, torch.Tensor | None]:
    if isinstance(half_width, int):
        return half_width, None
    hw = [int(h) for h in half_width]
    if sigma.ndim != 1 or len(hw) != sigma.shape[0]:
        raise ValueError(
            f"per-kernel half_width needs a 1-D sigma of the same length, got {len(hw)} half-widths for sigma "
            f"of shape {tuple(sigma.shape)}."
        )
    h_max = max(hw)
    x = torch.arange(-h_max, h_max + 1, device=sigma.device)
    mask = (x.abs().unsqueeze(0) <= torch.tensor(hw, device=sigma.device).unsqueeze(1)).to(sigma.dtype)
    return h_max, mask


def central_difference(order: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """Central-difference stencil ``δ_n`` of Lindeberg's hybrid discretisation, length ``2⌈n/2⌉ + 1``.

    ``δ_0 = [1]``, ``δ_1 = [-1/2, 0, 1/2]``, ``δ_2 = [1, -2, 1]``, ``δ_{2m} = δ_2^m``, ``δ_{2m+1} = δ_1 δ_2^m``
    (powers are convolutions). Written as correlation taps (index ``i`` multiplies ``f(x + i - r)``), so
    ``δ_1`` applied to ``f`` gives ``(f(x+1) - f(x-1)) / 2``.
    """
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}.")
    taps = torch.ones(1, dtype=torch.float64)
    d2 = torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64)
    for _ in range(order // 2):
        taps = torch.nn.functional.conv1d(taps.view(1, 1, -1), d2.view(1, 1, -1), padding=2).view(-1)
    if order % 2:
        d1 = torch.tensor([-0.5, 0.0, 0.5], dtype=torch.float64)
        taps = torch.nn.functional.conv1d(taps.view(1, 1, -1), d1.flip(0).view(1, 1, -1), padding=2).view(-1)
    return taps.to(dtype=dtype, device=device)


def stencil_radius(order: int) -> int:
    """Radius ``⌈order/2⌉`` of the central-difference stencil for derivatives up to ``order``."""
    return (order + 1) // 2


def gaussian_derivative_kernels_1d(
    sigma: torch.Tensor,
    order: int,
    half_width: int | Sequence[int],
    discretization: str = "sampled",
    scale_normalize: bool = True,
) -> torch.Tensor:
    """1-D Gaussian-derivative kernels of orders ``0..order`` (eq. 3).

    Args:
        sigma: scale(s), any shape ``S``; differentiable.
        order: highest derivative order N.
        half_width: half-width ``h`` of the Gaussian (eq. 7 uses ``⌈2σ⌉``), or one per element of a 1-D
            ``sigma`` (kernels zero-padded to the largest; see :func:`gaussian_kernel_1d`).
        discretization: ``"sampled"`` (Hermite closed form) or ``"hybrid"`` (sampled Gaussian + central
            differences); see the module docstring.
        scale_normalize: multiply the n-th derivative by ``σ^n`` (γ-normalisation, γ = 1).

    Returns:
        ``(*S, order + 1, K)`` kernels with ``K = 2h + 1`` (sampled) or ``2(h + ⌈N/2⌉) + 1`` (hybrid), centred,
        as correlation taps (the tap at index ``i`` multiplies ``f(x + i - K//2)``), ready for ``conv``.
    """
    if discretization not in DISCRETIZATIONS:
        raise ValueError(f"discretization must be one of {DISCRETIZATIONS}, got {discretization!r}.")
    g = gaussian_kernel_1d(sigma, half_width)
    kernels = []
    if discretization == "sampled":
        x = _grid(g.shape[-1] // 2, sigma)
        t = x / (sigma.unsqueeze(-1) * math.sqrt(2.0))
        for n in range(order + 1):
            # d^n/dx^n G = (-1/(σ√2))^n H_n(x/(σ√2)) G; the σ^n of γ-normalisation cancels the σ^-n.
            k = (-1.0 / math.sqrt(2.0)) ** n * hermite_polynomial(n, t) * g
            if not scale_normalize:
                k = k / sigma.unsqueeze(-1) ** n
            # convolution kernel -> correlation taps: G^(n)(-x) = (-1)^n G^(n)(x)
            kernels.append(k.flip(-1))
        return torch.stack(kernels, dim=-2)
    r = stencil_radius(order)
    g = torch.nn.functional.pad(g, (r, r))
    size = g.shape[-1]
    flat = g.reshape(-1, 1, size)
    for n in range(order + 1):
        d = central_difference(n, dtype=g.dtype, device=g.device)
        # smoothing then differencing = correlation with the true convolution of g and δ_n (hence the flip)
        k = torch.nn.functional.conv1d(flat, d.flip(0).view(1, 1, -1), padding=d.numel() // 2).view(g.shape)
        if scale_normalize:
            k = k * sigma.unsqueeze(-1) ** n
        kernels.append(k)
    return torch.stack(kernels, dim=-2)


def gd_basis(
    sigma: torch.Tensor,
    spatial_dims: int,
    order: int,
    half_width: int,
    discretization: str = "sampled",
    scale_normalize: bool = True,
) -> torch.Tensor:
    """Dense ``spatial_dims``-D Gaussian-derivative basis (eq. 3): outer products of the 1-D kernels.

    Args:
        sigma: scale(s), shape ``S``.
        spatial_dims: 2 or 3 (any >= 1 works).
        order: highest total order N; the basis holds every multi-index of
            :func:`derivative_multi_indices` (3 functions for 2-D, N = 1).
        half_width: half-width of the Gaussian.
        discretization: see :func:`gaussian_derivative_kernels_1d`.
        scale_normalize: γ-normalisation.

    Returns:
        ``(*S, num_basis, K, ..., K)`` correlation kernels.
    """
    k1 = gaussian_derivative_kernels_1d(sigma, order, half_width, discretization, scale_normalize)
    return outer_basis(k1, derivative_multi_indices(spatial_dims, order))


def outer_basis(kernels_1d: torch.Tensor, multi_indices: Sequence[tuple[int, ...]]) -> torch.Tensor:
    """Separable n-D basis from 1-D kernels.

    Args:
        kernels_1d: ``(*S, m, K)`` 1-D kernels of orders ``0..m-1``.
        multi_indices: one derivative order per axis for every basis function.

    Returns:
        ``(*S, len(multi_indices), K, ..., K)`` with one ``K`` per axis.
    """
    batch = kernels_1d.shape[:-2]
    out = []
    for n in multi_indices:
        b = kernels_1d[..., n[0], :]
        for a in range(1, len(n)):
            b = b.unsqueeze(-1) * kernels_1d[..., n[a], :].reshape(*batch, *([1] * a), -1)
        out.append(b)
    return torch.stack(out, dim=len(batch))
