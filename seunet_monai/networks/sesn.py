"""Scale-Equivariant Steerable Networks (SESN) as a UNet baseline.

I. Sosnovik, M. Szmaja, A. Smeulders, "Scale-Equivariant Steerable Networks", ICLR 2020. Written from the
paper's description (sec. 4-5), not from its code.

A SESN convolution expands every filter in a **fixed** basis of functions defined for each scale of a
discrete set; only the expansion coefficients are learned, and they are shared by all scales, so the
filter at scale ``s`` is the same function as at scale 1 stretched by ``s``. This module uses:

- **Basis functions** (2D; any ``d`` by the same product rule): Gaussian-weighted Hermite polynomials
  ``ψ_ij(x, y; σ) = H_i(x/σ) H_j(y/σ) exp(-(x² + y²) / (2σ²))`` with the physicists' Hermite polynomials
  ``H_n`` and **total order** ``i + j <= 4`` (15 functions in 2D, 35 in 3D; ``max_order`` changes it).
- **Scales**: ``s_k = 1, 2, ..., Ω`` (Ω = 5: the paper's SESN setting, scales 1..5 with filter sizes
  3..11). Filter sizes ``2 s_k + 1`` mean half-widths ``h_k = s_k``; the Gaussian envelope has standard
  deviation ``σ_k = s_k / 2`` so that every filter is truncated at ``2σ_k``, the same truncation rule
  (``⌈2σ⌉``, eq. 7 of Yang et al.) as the SEUNet's Gaussian-derivative layers. So the basis at scale
  ``k`` is ``(15, 2k + 1, 2k + 1)``.
- **Normalisation**: every sampled function is scaled to unit L2 norm over its grid (per scale and per
  function). The functions are *not* orthogonal on the discrete grid (the Hermite-Gaussian products are
  orthogonal only for the weight ``exp(-x²/σ²)``, and at scale 1 the 15 functions live on 9 pixels, so
  they span at most 9 dimensions); they are linearly independent from scale 2 (25 pixels) on.
- The basis is a registered **buffer** (saved in the state dict, not trained).
- **Layers**: a lifting layer ``(B, C_in, *sp) -> (Ω·B, C_out, *sp)`` (every scale sees the image) then
  scale-to-scale layers ``(Ω·B, C_in, *sp) -> (Ω·B, C_out, *sp)`` **without inter-scale mixing** (scale
  ``k`` sees only scale ``k``: the SESN paper's "scale-convolution" with a kernel of size 1 along the
  scale axis), group-major as everywhere in the package.

:class:`SESNUNet` is the :class:`~seunet_monai.networks.seunet.SEUNet` architecture (blocks, skip
connections, Ω heads, multi-head loss, fusion) with every Gaussian-derivative layer replaced by
:class:`SESNConv`; it therefore has exactly the SEUNet's outputs and reporting API. Its scales are fixed:
``sigmas()`` reports the fixed envelope σ of every layer, ``sigma_bounds()`` is empty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import product

import numpy as np
import torch
import torch.nn.functional as F
from numpy.polynomial import hermite as np_hermite
from torch import nn

from .seunet import SEUNet

__all__ = ["SESNConv", "SESNUNet", "hermite_gaussian_basis", "hermite_multi_indices"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def hermite_multi_indices(spatial_dims: int, max_order: int = 4) -> list[tuple[int, ...]]:
    """Multi-indices ``n`` with total order ``|n| <= max_order``, ordered by total order then lexicographically.

    Args:
        spatial_dims: number of spatial dimensions d.
        max_order: highest total order.

    Returns:
        a list of ``d``-tuples (15 for d = 2, max_order = 4).
    """
    if spatial_dims < 1 or max_order < 0:
        raise ValueError(f"spatial_dims must be >= 1 and max_order >= 0, got {spatial_dims}, {max_order}.")
    idx = [n for n in product(range(max_order + 1), repeat=spatial_dims) if sum(n) <= max_order]
    return sorted(idx, key=lambda n: (sum(n), tuple(-v for v in n)))


def hermite_gaussian_basis(
    scale: float, spatial_dims: int = 2, max_order: int = 4, half_width: int | None = None, envelope: float = 0.5
) -> torch.Tensor:
    """Sampled, L2-normalised Gaussian-weighted Hermite functions at one scale (float64).

    ``ψ_n(x; σ) = Π_a H_{n_a}(x_a / σ) exp(-x_a² / (2σ²))`` with ``σ = envelope · scale``, sampled at the
    integer points ``-h..h`` of every axis (``h = half_width``, default ``round(scale)``), each function
    divided by its L2 norm over the grid.

    Args:
        scale: the scale ``s`` (1 for the finest filters).
        spatial_dims: number of spatial dimensions d.
        max_order: highest total order of the Hermite products.
        half_width: grid half-width (default ``max(1, round(scale))``: sizes 3, 5, ..., 11 for s = 1..5).
        envelope: ``σ / s`` (default 0.5: truncation at 2σ).

    Returns:
        ``(num_basis, K, ..., K)`` with ``K = 2h + 1``.
    """
    if not scale > 0 or not envelope > 0:
        raise ValueError(f"scale and envelope must be > 0, got {scale}, {envelope}.")
    h = max(1, int(round(scale))) if half_width is None else int(half_width)
    if h < 1:
        raise ValueError(f"half_width must be >= 1, got {half_width}.")
    sigma = envelope * scale
    x = np.arange(-h, h + 1, dtype=np.float64) / sigma
    gauss = np.exp(-0.5 * x**2)
    # 1-D factors H_m(x/σ) exp(-x²/(2σ²)) for m = 0..max_order (numpy's physicists' Hermite series)
    one_d = [np_hermite.hermval(x, [0.0] * m + [1.0]) * gauss for m in range(max_order + 1)]
    out = []
    for n in hermite_multi_indices(spatial_dims, max_order):
        f = np.ones([1] * spatial_dims)
        for a, m in enumerate(n):
            f = f * one_d[m].reshape([1] * a + [-1] + [1] * (spatial_dims - a - 1))
        f = f / np.linalg.norm(f)
        out.append(f)
    return torch.from_numpy(np.stack(out))


class SESNConv(nn.Module):
    """Scale-equivariant steerable convolution, lifting or scale-to-scale (no inter-scale mixing).

    Group ``k`` filters with ``W_k = Σ_n w[:, :, n] ψ_n(·; s_k)``: learned coefficients ``w`` shared by all
    scales, fixed basis ``ψ`` per scale (see the module docstring).

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: input channels (per group for a scale-to-scale layer).
        out_channels: output channels per group.
        scales: the scales ``s_k`` (default ``1..num_scales``).
        num_scales: Ω, used when ``scales`` is None.
        max_order: highest total Hermite order (4: 15 functions in 2D).
        envelope: Gaussian σ per unit scale (``σ_k = envelope · s_k``).
        lifting: True for the first layer (every group sees the whole input).
        bias: add a bias per output channel, shared by all groups.
        name: layer name for messages.

    Shapes:
        lifting: ``(B, C_in, *sp) -> (Ω·B, C_out, *sp)``; scale-to-scale: ``(Ω·B, C_in, *sp) -> (Ω·B, C_out, *sp)``,
        group-major.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        scales: Sequence[float] | None = None,
        num_scales: int = 5,
        max_order: int = 4,
        envelope: float = 0.5,
        lifting: bool = False,
        bias: bool = False,
        name: str = "sesnconv",
    ) -> None:
        super().__init__()
        if spatial_dims not in _CONV:
            raise ValueError(f"{name}: spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"{name}: in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}.")
        scales = tuple(float(s) for s in (range(1, int(num_scales) + 1) if scales is None else scales))
        if not scales or any(not s > 0 for s in scales):
            raise ValueError(f"{name}: scales must be a non-empty list of positive numbers, got {scales}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = scales
        self.num_scales = len(scales)
        self.max_order = int(max_order)
        self.envelope = float(envelope)
        self.lifting = lifting
        self.name = name
        self.multi_indices = hermite_multi_indices(spatial_dims, self.max_order)
        self.half_width_list = [max(1, int(round(s))) for s in scales]
        bases = self._make_bases()
        self.num_basis = int(bases[0].shape[0])
        for k, b in enumerate(bases):
            self.register_buffer(f"basis{k}", b.float())
        self.register_buffer("fixed_sigma", torch.tensor([self.envelope * s for s in scales]), persistent=False)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, self.num_basis))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation: the basis functions have unit norm, so ``||W_k||² ≈ Σ_n w_n²`` and
        ``w ~ N(0, 2 / (C_in · num_basis))`` gives filters of squared norm ≈ ``2 / C_in``."""
        nn.init.normal_(self.weight, 0.0, math.sqrt(2.0 / (self.in_channels * self.num_basis)))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _make_bases(self) -> list[torch.Tensor]:
        """The fixed basis of every scale, ``(num_basis, K_k, ..., K_k)`` each (subclasses give other bases)."""
        return [
            hermite_gaussian_basis(s, self.spatial_dims, self.max_order, h, self.envelope)
            for s, h in zip(self.scale_factors, self.half_width_list)
        ]

    def basis(self, k: int) -> torch.Tensor:
        """The fixed basis of scale ``k`` (0-based), ``(num_basis, K_k, ..., K_k)``."""
        return getattr(self, f"basis{k}")

    def sigma(self) -> torch.Tensor:
        """The fixed Gaussian σ of every scale ``(Ω,)`` (not trained)."""
        return self.fixed_sigma

    def kernel_sizes(self) -> list[int]:
        """Filter size per scale, ``2 h_k + 1`` (3, 5, ..., 11 for scales 1..5)."""
        return [2 * h + 1 for h in self.half_width_list]

    def filters(self, k: int) -> torch.Tensor:
        """Filters of scale ``k``, ``(C_out, C_in, K_k, ..., K_k)``."""
        return torch.einsum("oin,n...->oi...", self.weight, self.basis(k).to(self.weight.dtype))

    def dense_filters(self) -> torch.Tensor:
        """Every scale's filters ``(Ω, C_out, C_in, K, ..., K)``, zero-padded (centred) to the largest size."""
        hmax = max(self.half_width_list)
        out = []
        for k, h in enumerate(self.half_width_list):
            f = self.filters(k)
            out.append(F.pad(f, (hmax - h,) * (2 * self.spatial_dims)))
        return torch.stack(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter ``x``; see the class docstring for shapes."""
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"{self.name}: expected a {self.spatial_dims + 2}-D input (B, C, *spatial), got {tuple(x.shape)}."
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self.name}: expected {self.in_channels} input channels, got {x.shape[1]}.")
        if not self.lifting and x.shape[0] % self.num_scales:
            raise ValueError(
                f"{self.name}: a scale-to-scale layer needs a batch folded as (Ω·B, C, ...) with Ω={self.num_scales}, "
                f"got batch {x.shape[0]}."
            )
        conv = _CONV[self.spatial_dims]
        b = x.shape[0] if self.lifting else x.shape[0] // self.num_scales
        outs = []
        for k, h in enumerate(self.half_width_list):
            xk = x if self.lifting else x[k * b : (k + 1) * b]
            outs.append(conv(xk, self.filters(k), self.bias, padding=h))
        return torch.cat(outs, dim=0)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, scales={self.scale_factors}, kernel_sizes={self.kernel_sizes()}, "
            f"num_basis={self.num_basis} (Hermite total order <= {self.max_order}), lifting={self.lifting}"
        )


class SESNUNet(SEUNet):
    """The SEUNet architecture with SESN layers (a fixed Hermite-Gaussian basis at scales 1..Ω).

    Same forward modes, heads, fusion and reporting API as :class:`~seunet_monai.networks.seunet.SEUNet`;
    the σ-related arguments of SEUNet do not apply (scales are fixed).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes C.
        num_scales: Ω (scales ``1..Ω``, filter sizes ``3..2Ω+1``) when ``scales`` is None.
        channels: total widths of the five UNet levels, split evenly over the Ω groups.
        scales: explicit scale factors ``s_k`` (overrides ``num_scales``).
        max_order: highest total Hermite order of the basis (4).
        envelope: Gaussian σ per unit scale (0.5: truncation at 2σ).
        norm: MONAI norm spec or None.
        act: MONAI activation spec.
        dropout: dropout after each block.
        share_heads: one 1×1 head shared by all groups (default) or one per group.
        fusion: eval-mode fusion of the heads.
        aux_channels: extra maps after the classes (e.g. 1 for a separation map), as for the SEUNet.
    """

    conv_class: type = SESNConv
    basis_name = "SESN"

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 2,
        num_scales: int = 5,
        channels: Sequence[int] = (60, 120, 240, 480, 960),
        scales: Sequence[float] | None = None,
        max_order: int = 4,
        envelope: float = 0.5,
        norm: str | tuple | None = "batch",
        act: str | tuple = "relu",
        dropout: float = 0.0,
        share_heads: bool = True,
        fusion: str = "pens",
        aux_channels: int = 0,
    ) -> None:
        self._init_fixed_basis(
            dict(max_order=int(max_order), envelope=float(envelope)),
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            num_scales=num_scales,
            channels=channels,
            scales=scales,
            norm=norm,
            act=act,
            dropout=dropout,
            share_heads=share_heads,
            fusion=fusion,
            aux_channels=aux_channels,
        )

    def _init_fixed_basis(self, basis_kwargs: dict, scales: Sequence[float] | None, num_scales: int, **kwargs) -> None:
        """Build the SEUNet architecture with :attr:`conv_class` layers of fixed scales (shared by subclasses
        with another fixed basis, e.g. :class:`~seunet_monai.networks.disco.DISCOUNet`)."""
        if scales is not None:
            num_scales = len(scales)
        self._basis_kwargs = dict(
            scales=None if scales is None else tuple(float(s) for s in scales),
            num_scales=int(num_scales),
            **basis_kwargs,
        )
        super().__init__(num_scales=num_scales, sigma_mode="fixed", **kwargs)
        self.sigma_mode = f"fixed ({self.basis_name} basis)"

    def _make_conv(self, cin: int, cout: int, bounds, lifting: bool, name: str) -> nn.Module:
        """A :attr:`conv_class` layer (the σ ``bounds`` of the SEUNet layer are ignored: the scales are fixed)."""
        return self.conv_class(self.spatial_dims, cin, cout, lifting=lifting, name=name, **self._basis_kwargs)

    def extra_repr(self) -> str:
        k = dict(self._basis_kwargs)
        k["scales"] = k["scales"] or tuple(range(1, self.num_scales + 1))
        del k["num_scales"]
        basis = ", ".join(f"{key}={value}" for key, value in k.items())
        return (
            f"spatial_dims={self.spatial_dims}, in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"num_scales={self.num_scales}, channels={self.channels}, {basis}, share_heads={self.share_heads}, "
            f"fusion={self.fusion!r}" + (f", aux_channels={self.aux_channels}" if self.aux_channels else "")
        )
