"""DISCO: discrete scale convolutions as a UNet baseline.

I. Sosnovik, A. Moskalev, A. Smeulders, "DISCO: accurate Discrete Scale Convolutions", BMVC 2021. Written from
the paper's description, not from its code.

SESN (:mod:`~seunet_monai.networks.sesn`) builds the filter of scale ``s`` by sampling a continuous function
stretched by ``s``; on a pixel grid that stretched copy is not what rescaling the image does, so the
equivariance is only approximate, worst for small filters. DISCO keeps the steerable layer (a fixed basis per
scale, learned coefficients shared by all scales) but **computes the basis so that the scale-convolution is as
equivariant as possible to discrete rescaling**: for every pair of scales ``t < s`` of the layer, rescaling an
image ``f`` down by ``r = s/t`` should commute with the filters,

    ``D_r(f ⋆ ψ_{s,n}) ≈ D_r(f) ⋆ ψ_{t,n}``   (the equivariance error ``‖D_r(f ⋆ ψ_s) − D_r(f) ⋆ ψ_t‖²``),

where ``D_r`` is the evaluation's rescaling (anti-aliased linear interpolation with pixel-centre alignment,
:mod:`seunet_monai.layers.rescale`). The smallest scale's basis is the complete basis of its grid (the
``3 × 3`` filter of a conventional CNN: one delta per pixel, so 9 functions in 2-D), and the bases of the
larger scales are the least-squares solution of the equivariance error above, summed over all pairs of scales
and over smooth random signals. Where an exact solution exists (integer ratios such as 1:2, where the dilated
filter commutes exactly with rescaling), the least squares finds it for that pair; the pairs of non-integer
ratio (2:3, 3:4, ...) have none and get the best compromise. This is the paper's approach ("we find the exact
solution for all cases where it exists, and compute the approximation for the rest").

Implementation choices (documented assumptions, where the paper leaves room):

- Scales ``1..Ω`` with filter sizes ``2·round(s) + 1`` (3, 5, ..., 11), those of the SESN baseline.
- The basis is computed in 1-D and extended to ``d`` dimensions by outer products (the rescaling is separable:
  PyTorch's anti-aliased bilinear resampling filters each axis in turn). So the 2-D basis of scale ``k`` is
  ``ψ_{k,(a,b)} = φ_{k,a} ⊗ φ_{k,b}``, exactly the 9 deltas at scale 1.
- The equivariance error is a quadratic function of the unknown kernels, so the optimum is the solution of its
  normal equations (a small dense system: 264 unknowns for scales 2..5), solved once with a tiny ridge term;
  no iterative optimiser, no randomness beyond a fixed-seed set of signals. Computing it takes milliseconds
  and is deterministic; the result is cached per process and stored in every layer as a buffer.
- The signals are white noise smoothed by a Gaussian of σ = 1 px (band-limited, like a digitised image).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from seunet_monai.layers.rescale import rescale_image

from .sesn import SESNConv, SESNUNet

__all__ = ["DISCOConv", "DISCOUNet", "basis_equivariance_error", "disco_basis", "disco_basis_1d"]


def _shrink(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Rescale the last axis of ``x (..., L)`` by ``1/ratio`` (``round(L / ratio)`` samples) as the sweep does:
    anti-aliased linear interpolation, pixel-centre alignment (``rescale_image`` in 1-D)."""
    size = max(1, int(round(x.shape[-1] / ratio)))
    flat = x.reshape(-1, 1, 1, x.shape[-1])
    out = F.interpolate(flat, size=(1, size), mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*x.shape[:-1], size)


def _shifted(x: torch.Tensor, half_width: int) -> torch.Tensor:
    """``(S, L) -> (2h + 1, S, L)``: row ``u`` is ``x(· + u - h)`` with zeros outside (the correlation's taps)."""
    padded = F.pad(x, (half_width, half_width))
    length = x.shape[-1]
    return torch.stack([padded[:, u : u + length] for u in range(2 * half_width + 1)])


def _smooth_signals(num: int, length: int, smoothing: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pad = int(4 * smoothing) + 1
    noise = torch.randn(num, 1, length + 2 * pad, generator=g, dtype=torch.float64)
    x = torch.arange(-pad, pad + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / smoothing) ** 2)
    return F.conv1d(noise, (kernel / kernel.sum()).view(1, 1, -1))[:, 0]


def _pair_design(signals: torch.Tensor, ratio: float, h_small: int, h_large: int, margin: int):
    """Design matrices of one pair of scales: ``A`` maps the large scale's kernel to ``D_r(f ⋆ ψ)``, ``B`` the small
    scale's kernel to ``D_r(f) ⋆ ψ``; rows are the interior samples of every signal."""
    a = _shrink(_shifted(signals, h_large), ratio)  # (2h_l + 1, S, M)
    b = _shifted(_shrink(signals, ratio), h_small)  # (2h_s + 1, S, M)
    inner = slice(margin, a.shape[-1] - margin)
    a, b = a[..., inner].flatten(1).T, b[..., inner].flatten(1).T  # (rows, taps)
    if a.shape[0] == 0:
        raise ValueError(f"disco_basis_1d: signals too short for the ratio {ratio:g}; raise length.")
    return a, b


@functools.lru_cache(maxsize=16)
def _disco_basis_1d_cached(
    scales: tuple[float, ...],
    half_widths: tuple[int, ...],
    num_signals: int,
    length: int,
    smoothing: float,
    ridge: float,
    seed: int,
) -> tuple[torch.Tensor, ...]:
    signals = _smooth_signals(num_signals, length, smoothing, seed)
    m = 2 * half_widths[0] + 1  # complete basis of the smallest scale: one delta per tap
    sizes = [2 * h + 1 for h in half_widths]
    offsets = [0]
    for n in sizes[1:]:
        offsets.append(offsets[-1] + n)  # unknowns of scales 1..K-1 (scale 0 is fixed)
    n_unknown = offsets[-1]
    gram = torch.zeros(n_unknown, n_unknown, dtype=torch.float64)
    rhs = torch.zeros(n_unknown, m, dtype=torch.float64)
    margin = max(half_widths) + 2
    for t, s in itertools.combinations(range(len(scales)), 2):
        ratio = scales[s] / scales[t]
        a, b = _pair_design(signals, ratio, half_widths[t], half_widths[s], margin)
        w = 1.0 / float((_shrink(signals, ratio) ** 2).sum())  # every pair weighs the same (relative error)
        ls = slice(offsets[s - 1], offsets[s - 1] + sizes[s])
        gram[ls, ls] += w * a.T @ a
        if t == 0:
            rhs[ls] += w * a.T @ b  # ψ_0 = identity: D_r(f) ⋆ ψ_0,n is column n of b
        else:
            lt = slice(offsets[t - 1], offsets[t - 1] + sizes[t])
            gram[lt, lt] += w * b.T @ b
            gram[ls, lt] -= w * a.T @ b
            gram[lt, ls] -= w * b.T @ a
    gram += ridge * torch.trace(gram) / n_unknown * torch.eye(n_unknown, dtype=torch.float64)
    solution = torch.linalg.solve(gram, rhs)  # (n_unknown, m)
    out = [torch.eye(m, dtype=torch.float64)]
    for k in range(1, len(scales)):
        out.append(solution[offsets[k - 1] : offsets[k - 1] + sizes[k]].T.contiguous())
    return tuple(out)


def disco_basis_1d(
    scales: Sequence[float] = (1, 2, 3, 4, 5),
    half_widths: Sequence[int] | None = None,
    num_signals: int = 64,
    length: int = 360,
    smoothing: float = 1.0,
    ridge: float = 1e-6,
    seed: int = 0,
) -> list[torch.Tensor]:
    """The 1-D DISCO basis: for every scale, the kernels minimising the equivariance error to discrete rescaling.

    Args:
        scales: increasing scales ``s_k`` (the first is the reference, whose basis is the identity).
        half_widths: kernel half-width per scale (default ``max(1, round(s))``: sizes 3, 5, ..., 11).
        num_signals: number of smooth random signals the error is summed over.
        length: length of each signal (a multiple of 60 keeps ``length / r`` whole for the ratios of 1..5).
        smoothing: σ (px) of the Gaussian that smooths the white noise.
        ridge: relative ridge term (× the mean diagonal of the normal equations).
        seed: seed of the signals (the result is deterministic).

    Returns:
        one ``(m, 2h_k + 1)`` float64 tensor per scale, ``m = 2h_1 + 1``; row ``n`` of scale ``k`` is the kernel
        that plays, at scale ``s_k``, the role of the delta at tap ``n`` of the reference scale.
    """
    scales_t = tuple(float(s) for s in scales)
    if not scales_t or any(not s > 0 for s in scales_t) or list(scales_t) != sorted(set(scales_t)):
        raise ValueError(f"disco_basis_1d: scales must be positive and strictly increasing, got {list(scales)}.")
    hw = tuple(max(1, int(round(s))) for s in scales_t) if half_widths is None else tuple(int(h) for h in half_widths)
    if len(hw) != len(scales_t) or any(h < 1 for h in hw):
        raise ValueError(f"disco_basis_1d: need one half-width >= 1 per scale, got {list(hw)} for {list(scales_t)}.")
    if num_signals < 1 or length < 8 or not smoothing > 0 or ridge < 0:
        raise ValueError("disco_basis_1d: num_signals >= 1, length >= 8, smoothing > 0 and ridge >= 0 are required.")
    out = _disco_basis_1d_cached(scales_t, hw, int(num_signals), int(length), float(smoothing), float(ridge), int(seed))
    return [b.clone() for b in out]


def disco_basis(
    scales: Sequence[float] = (1, 2, 3, 4, 5), spatial_dims: int = 2, half_widths: Sequence[int] | None = None
) -> list[torch.Tensor]:
    """The ``d``-D DISCO basis: outer products of the 1-D kernels of :func:`disco_basis_1d`.

    Args:
        scales: increasing scales (default 1..5).
        spatial_dims: number of spatial dimensions d.
        half_widths: kernel half-width per scale (default ``max(1, round(s))``).

    Returns:
        one ``(m^d, K_k, ..., K_k)`` float64 tensor per scale (``m = 3`` for the default: 9 functions in 2-D, the
        deltas of the 3×3 grid at scale 1), functions ordered by multi-index ``(a_0, ..., a_{d-1})``.
    """
    if spatial_dims < 1:
        raise ValueError(f"disco_basis: spatial_dims must be >= 1, got {spatial_dims}.")
    out = []
    for b1 in disco_basis_1d(scales, half_widths):
        m, size = b1.shape
        funcs = []
        for idx in itertools.product(range(m), repeat=spatial_dims):
            f = torch.ones([1] * spatial_dims, dtype=torch.float64)
            for axis, a in enumerate(idx):
                f = f * b1[a].reshape([1] * axis + [size] + [1] * (spatial_dims - axis - 1))
            funcs.append(f)
        out.append(torch.stack(funcs))
    return out


def basis_equivariance_error(
    bases: Sequence[torch.Tensor], scales: Sequence[float], images: torch.Tensor, margin: int | None = None
) -> dict[tuple[float, float], float]:
    """The equivariance error a DISCO basis minimises, measured in 2-D for any steerable basis.

    For every pair of scales ``t < s`` (ratio ``r = s/t``), the relative error averaged over the basis functions
    ``n`` and the images: ``‖D_r(f ⋆ ψ_{s,n}) − D_r(f) ⋆ ψ_{t,n}‖² / ‖D_r(f) ⋆ ψ_{t,n}‖²`` on the interior
    (``margin`` pixels of the rescaled maps left out; default the largest half-width + 2), with ``D_r`` the
    sweep's rescaling (:func:`~seunet_monai.layers.rescale.rescale_image`) and ``⋆`` correlation.

    Args:
        bases: per scale ``(num_basis, K_k, K_k)``.
        scales: the scales of ``bases``.
        images: ``(N, H, W)`` test images.
        margin: border left out.

    Returns:
        ``{(s_t, s_s): error}``.
    """
    if len(bases) != len(scales):
        raise ValueError(f"basis_equivariance_error: {len(bases)} bases for {len(scales)} scales.")
    margin = max(b.shape[-1] for b in bases) // 2 + 2 if margin is None else int(margin)
    x = images.double().unsqueeze(1)  # (N, 1, H, W)
    out = {}
    for t, s in itertools.combinations(range(len(scales)), 2):
        ratio = float(scales[s]) / float(scales[t])
        bs, bt = bases[s].double().unsqueeze(1), bases[t].double().unsqueeze(1)
        test = torch.stack([rescale_image(y, 1.0 / ratio) for y in F.conv2d(x, bs, padding=bs.shape[-1] // 2)])
        small = torch.stack([rescale_image(y, 1.0 / ratio) for y in x])
        ref = F.conv2d(small, bt, padding=bt.shape[-1] // 2)
        inner = (slice(None), slice(None), slice(margin, -margin), slice(margin, -margin))
        num = ((test[inner] - ref[inner]) ** 2).sum(dim=(0, 2, 3))
        den = (ref[inner] ** 2).sum(dim=(0, 2, 3)).clamp_min(1e-300)
        out[(float(scales[t]), float(scales[s]))] = float((num / den).mean())
    return out


class DISCOConv(SESNConv):
    """Discrete scale convolution: a :class:`~seunet_monai.networks.sesn.SESNConv` with the DISCO basis.

    Lifting or scale-to-scale without inter-scale mixing, coefficients shared by all scales, the basis a fixed
    buffer (``basis0`` ... ``basis{Ω-1}``, in the state dict) computed by :func:`disco_basis`.

    Args:
        spatial_dims: 1, 2 or 3.
        in_channels: input channels (per group for a scale-to-scale layer).
        out_channels: output channels per group.
        scales: the scales ``s_k`` (default ``1..num_scales``); filter sizes ``2·round(s_k) + 1``.
        num_scales: Ω, used when ``scales`` is None.
        envelope: reported σ per unit scale (``sigma()`` gives ``envelope · s_k``, as SESN).
        lifting: True for the first layer.
        bias: add a bias per output channel, shared by all groups.
        name: layer name for messages.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        scales: Sequence[float] | None = None,
        num_scales: int = 5,
        envelope: float = 0.5,
        lifting: bool = False,
        bias: bool = False,
        name: str = "discoconv",
    ) -> None:
        super().__init__(
            spatial_dims,
            in_channels,
            out_channels,
            scales=scales,
            num_scales=num_scales,
            max_order=1,
            envelope=envelope,
            lifting=lifting,
            bias=bias,
            name=name,
        )

    def _make_bases(self) -> list[torch.Tensor]:
        if list(self.scale_factors) != sorted(set(self.scale_factors)):
            raise ValueError(f"{self.name}: DISCO scales must be strictly increasing, got {list(self.scale_factors)}.")
        return disco_basis(self.scale_factors, self.spatial_dims, self.half_width_list)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, scales={self.scale_factors}, kernel_sizes={self.kernel_sizes()}, "
            f"num_basis={self.num_basis} (DISCO), lifting={self.lifting}"
        )


class DISCOUNet(SESNUNet):
    """The SEUNet architecture with DISCO layers (scales 1..Ω, filter sizes 3..2Ω+1, Ω heads).

    Same forward modes, heads, fusion and reporting API as :class:`~seunet_monai.networks.seunet.SEUNet`; the
    σ-related arguments of SEUNet do not apply (the scales are fixed; ``sigmas()`` reports ``0.5 · s_k`` per layer,
    as for SESN, ``sigma_bounds()`` is empty).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes C.
        num_scales: Ω (scales ``1..Ω``) when ``scales`` is None.
        channels: total widths of the five UNet levels, split evenly over the Ω groups.
        scales: explicit increasing scale factors ``s_k`` (overrides ``num_scales``).
        envelope: reported σ per unit scale.
        norm: MONAI norm spec or None.
        act: MONAI activation spec.
        dropout: dropout after each block.
        share_heads: one 1×1 head shared by all groups (default) or one per group.
        fusion: eval-mode fusion of the heads.
        aux_channels: extra maps after the classes (e.g. 1 for a separation map), as for the SEUNet.
    """

    conv_class = DISCOConv
    basis_name = "DISCO"

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 2,
        num_scales: int = 5,
        channels: Sequence[int] = (60, 120, 240, 480, 960),
        scales: Sequence[float] | None = None,
        envelope: float = 0.5,
        norm: str | tuple | None = "batch",
        act: str | tuple = "relu",
        dropout: float = 0.0,
        share_heads: bool = True,
        fusion: str = "pens",
        aux_channels: int = 0,
    ) -> None:
        self._init_fixed_basis(
            dict(envelope=float(envelope)),
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
