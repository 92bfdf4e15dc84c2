"""Gaussian-derivative convolutions with learnable scales: lifting and group-wise layers (eq. 4, 5).

A GD layer holds coefficients ``α[c_out, c_in, n]`` over the basis of
:mod:`~seunet_monai.layers.gaussian_basis` (one ``n`` per multi-index, ``|n| <= N``) and Ω scales ``σ_k``
(:mod:`~seunet_monai.layers.scales`). Group ``k`` filters with ``F_k = Σ_n α[:, :, n] G_n(·; σ_k)``: the
coefficients are shared by all groups, only σ differs.

- The **lifting** layer (first layer) feeds the whole input to every group:
  ``(B, C_in, *spatial) -> (Ω·B, C_out, *spatial)``.
- The **group-wise** layer lets group ``k`` see only group ``k``:
  ``(Ω·B, C_in, *spatial) -> (Ω·B, C_out, *spatial)``.

Layout: groups folded into the batch, group-major (see :mod:`~seunet_monai.layers.group_ops`).

Two implementations give the same result (up to float rounding):

- ``"dense"`` (reference, the paper's way): build the full ``k^d`` kernel of every group and run one
  convolution per group.
- ``"fast"``: never builds dense Gaussian-size kernels. Each group is a contiguous block of rows of the
  folded batch, processed with its own kernel sizes (no padding to the largest group).
  * ``discretization="hybrid"``: one separable Gaussian smoothing per group (a depthwise 1-D pass per axis),
    then one small convolution with a ``(2⌈N/2⌉+1)^d`` kernel that applies every central-difference stencil,
    the σ^|n| normalisation and the α mixing at once (``W_k = Σ_n α_n σ_k^{|n|} δ_n``; 3×3 for N <= 2).
    The smoothing costs ``d·(2h+1)`` multiply-adds per input channel; the mixing ``C_out·C_in·3^d`` per
    group, so a layer of total width ``Ω·C`` does ``1/Ω`` of the work of an ordinary 3×3 convolution.
  * ``discretization="sampled"``: separable 1-D passes with every derivative order per axis (a depthwise
    pass per axis, orders as channel multiplier), then α as a 1×1 convolution shared by all groups.

Inference: in eval mode with gradients off (``torch.no_grad``/``inference_mode``, not while tracing), the
filters of every group (Gaussian kernels, α mixing) depend only on σ and α, so they are built once and cached;
a batch norm passed as ``forward(x, norm=bn)`` (as :class:`~seunet_monai.networks.GDBlock` does) is folded
into them (weights scaled per output channel, a bias added), which saves one pass over the activations per
layer. The cache compares copies of the parameters and buffers it was built from at every call, so any
change of weights, statistics, dtype or device rebuilds it; ``train()`` and ``load_state_dict`` drop it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .gaussian_basis import (
    DISCRETIZATIONS,
    central_difference,
    derivative_multi_indices,
    gaussian_derivative_kernels_1d,
    gaussian_kernel_1d,
    gd_basis,
    outer_basis,
    stencil_radius,
)
from .scales import ScaleParameter, half_widths

__all__ = ["GDConv", "IMPLEMENTATIONS"]

IMPLEMENTATIONS = ("fast", "dense")

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_REDUCED = (torch.bfloat16, torch.float16)


class GDConv(nn.Module):
    """Gaussian-derivative convolution with Ω learnable scales (eq. 4-7), lifting or group-wise.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3; 1 works too).
        in_channels: input channels (per group for a group-wise layer).
        out_channels: output channels per group.
        sigma_bounds: Ω intervals ``(b_k, a_k)`` of this layer (sets Ω).
        order: highest total derivative order N (the paper uses 1: basis G_00, G_10, G_01).
        sigma_mode: ``"constrained"`` (eq. 6), ``"fixed"`` or ``"free"``.
        discretization: ``"hybrid"`` (Gaussian + central differences) or ``"sampled"`` (Hermite closed form).
        lifting: True for the first layer (every group sees the whole input).
        bias: add a bias per output channel, shared by all groups.
        max_half_width: optional cap on the half-width ``⌈2σ⌉`` (eq. 7).
        implementation: ``"fast"`` or ``"dense"`` (reference).
        name: layer name, used in error messages and reports.

    Shapes:
        lifting: ``(B, C_in, *spatial) -> (Ω·B, C_out, *spatial)``; group-wise:
        ``(Ω·B, C_in, *spatial) -> (Ω·B, C_out, *spatial)``, group-major (rows ``k·B .. k·B + B - 1`` are
        group ``k``).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        sigma_bounds: Sequence[Sequence[float]],
        order: int = 1,
        sigma_mode: str = "constrained",
        discretization: str = "hybrid",
        lifting: bool = False,
        bias: bool = False,
        max_half_width: int | None = None,
        implementation: str = "fast",
        name: str = "gdconv",
    ) -> None:
        super().__init__()
        if spatial_dims not in _CONV:
            raise ValueError(f"{name}: spatial_dims must be 1, 2 or 3, got {spatial_dims}.")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"{name}: in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}.")
        if order < 0:
            raise ValueError(f"{name}: order must be >= 0, got {order}.")
        if discretization not in DISCRETIZATIONS:
            raise ValueError(f"{name}: discretization must be one of {DISCRETIZATIONS}, got {discretization!r}.")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"{name}: implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}.")
        if max_half_width is not None and max_half_width < 1:
            raise ValueError(f"{name}: max_half_width must be >= 1 or None, got {max_half_width}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.order = order
        self.discretization = discretization
        self.lifting = lifting
        self.max_half_width = max_half_width
        self.implementation = implementation
        self.name = name
        self.scales = ScaleParameter(sigma_bounds, sigma_mode, name)
        self.num_scales = self.scales.num_scales
        self.multi_indices = derivative_multi_indices(spatial_dims, order)
        self.num_basis = len(self.multi_indices)
        # per-axis order lists: places of the basis functions in the full (N+1)^d tensor-product grid
        self._basis_index = tuple(list(v) for v in zip(*self.multi_indices))
        self.alpha = nn.Parameter(torch.empty(out_channels, in_channels, self.num_basis))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.register_buffer(
            "basis_orders", torch.tensor([sum(n) for n in self.multi_indices], dtype=torch.float32), persistent=False
        )
        self.register_buffer("stencils", self._stencils(), persistent=False)
        self.reset_parameters()

    # ------------------------------------------------------------------ set-up
    def _stencils(self) -> torch.Tensor:
        """Dense central-difference stencils ``(num_basis, K, ..., K)``, ``K = 2⌈N/2⌉ + 1`` (hybrid path)."""
        r = stencil_radius(self.order)
        out = []
        for n in self.multi_indices:
            s = torch.ones([1] * self.spatial_dims, dtype=torch.float64)
            for a, na in enumerate(n):
                d = central_difference(na)
                d = F.pad(d, (r - d.numel() // 2,) * 2)
                s = s * d.reshape([1] * a + [-1] + [1] * (self.spatial_dims - a - 1))
            out.append(s)
        return torch.stack(out).float()

    def reset_parameters(self) -> None:
        """He-style initialisation of α over the fan-in ``C_in · num_basis``; σ back to the midpoints."""
        fan_in = self.in_channels * self.num_basis
        bound = math.sqrt(6.0 / fan_in)
        nn.init.uniform_(self.alpha, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self.scales.reset_parameters()

    # ------------------------------------------------------------------ helpers
    def sigma(self) -> torch.Tensor:
        """Current scales ``(Ω,)``."""
        return self.scales()

    def half_widths(self) -> list[int]:
        """Current Gaussian half-widths ``⌈2σ_k⌉`` (eq. 7), capped by ``max_half_width``."""
        return half_widths(self.sigma(), self.max_half_width)

    def kernel_sizes(self) -> list[int]:
        """Current filter sizes per group (eq. 7: ``2⌈2σ⌉ + 1``; the hybrid stencil adds ``2⌈N/2⌉``)."""
        extra = 2 * stencil_radius(self.order) if self.discretization == "hybrid" else 0
        return [2 * h + 1 + extra for h in self.half_widths()]

    def dense_filters(self) -> torch.Tensor:
        """Every group's full filters ``(Ω, C_out, C_in, K, ..., K)``, zero-padded to the largest size."""
        sigma = self.sigma()
        k1 = gaussian_derivative_kernels_1d(sigma, self.order, self.half_widths(), self.discretization)
        basis = outer_basis(k1, self.multi_indices)  # (Ω, nb, K..K)
        return torch.einsum("oin,kn...->koi...", self.alpha, basis)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"{self.name}: expected a {self.spatial_dims + 2}-D input (B, C, *spatial), got shape {tuple(x.shape)}."
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self.name}: expected {self.in_channels} input channels, got {x.shape[1]}.")
        if not self.lifting and x.shape[0] % self.num_scales:
            raise ValueError(
                f"{self.name}: a group-wise layer needs a batch folded as (Ω·B, C, ...) with Ω={self.num_scales}, "
                f"got batch {x.shape[0]}."
            )

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, norm: nn.Module | None = None) -> torch.Tensor:
        """Filter ``x``; see the class docstring for shapes.

        Args:
            x: the input.
            norm: an optional normalisation applied to the output (``norm(conv(x))``). In inference (eval
                mode, gradients off, not tracing) a batch norm with running statistics is folded into the
                filters (scaled weights and a bias), and the filters are cached (see :meth:`clear_cache`).
        """
        self._check_input(x)
        if self._can_cache(norm):
            plan = self._cached_plan(x, norm)
            return self._run(x, plan)
        out = self._run(x, self._plan(x.dtype))
        return out if norm is None else norm(out)

    # A "plan" is, per group, the tensors that one forward pass applies: ``(smoothing, weight, bias, pad)``.
    # ``smoothing`` is a list of depthwise weights (one per spatial axis, already expanded to the input's
    # channels) or None (dense), ``weight``/``bias`` the final convolution's, ``pad`` its padding. Building it
    # (σ, half-widths, Gaussian kernels, the α mixing) depends only on the parameters, not on the input.
    def _plan(self, dtype: torch.dtype, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None) -> list:
        """The plan in ``dtype``; ``scale``/``shift`` ``(C_out,)`` fold an affine map of the output channels."""
        d = self.spatial_dims
        sigma = self.sigma()
        halves = self.half_widths()
        bias = self.bias
        if scale is not None:
            bias = shift if bias is None else bias * scale + shift
        bias = None if bias is None else bias.to(dtype)

        def scaled(w: torch.Tensor) -> torch.Tensor:  # fold the output scaling into a (C_out, ...) weight
            return w if scale is None else w * scale.to(w.dtype).view(-1, *([1] * (w.ndim - 1)))

        plan = []
        if self.implementation == "dense":
            for k, h in enumerate(halves):
                basis = gd_basis(sigma[k], d, self.order, h, self.discretization)  # (nb, K..K)
                kernel = scaled(torch.einsum("oin,n...->oi...", self.alpha, basis)).to(dtype)
                plan.append((None, kernel, bias, kernel.shape[-1] // 2))
        elif self.discretization == "hybrid":
            r = stencil_radius(self.order)
            # W_k = Σ_n α_n σ_k^{|n|} δ_n: central differences, γ-normalisation and α in one small kernel per group
            pw = sigma.unsqueeze(1) ** self.basis_orders.to(sigma.dtype).unsqueeze(0)  # (Ω, nb)
            weights = torch.einsum("oin,kn,n...->koi...", self.alpha, pw, self.stencils.to(sigma.dtype))
            for k, h in enumerate(halves):
                g = gaussian_kernel_1d(sigma[k : k + 1], h).to(dtype)  # (1, 2h + 1): this group's own size
                # smoothing on a domain r pixels larger on each side, so that the 'valid' stencil sees the exact
                # Gaussian response beyond the border (equal to the dense reference with zero padding)
                smooth = [self._depthwise_weight(g, self.in_channels, a, r) for a in range(d)]
                plan.append((smooth, scaled(weights[k]).to(dtype), bias, 0))
        else:
            m, cin = self.order + 1, self.in_channels
            # α over the full tensor-product basis (orders with |n| > N get zero weight), shared by all groups
            full = self.alpha.new_zeros(self.out_channels, cin, *([m] * d))
            full[(slice(None), slice(None), *self._basis_index)] = self.alpha
            weight = scaled(full.reshape(self.out_channels, cin * m**d, *([1] * d))).to(dtype)
            for k, h in enumerate(halves):
                k1 = gaussian_derivative_kernels_1d(sigma[k], self.order, h, "sampled").to(dtype)  # (m, 2h + 1)
                # channel layout after axis a: (c, t_0, ..., t_a)
                smooth = [self._depthwise_weight(k1, cin * m**a, a, 0) for a in range(d)]
                plan.append((smooth, weight, bias, 0))
        return plan

    def _depthwise_weight(self, kernels: torch.Tensor, channels: int, axis: int, extra_pad: int) -> tuple:
        """``(weight, padding, groups)`` of a depthwise correlation along spatial ``axis``.

        ``kernels``: ``(m, K)``: every input channel is filtered with each of the ``m`` kernels (output channel
        ``j·m + t`` is channel ``j`` with kernel ``t``). Zero padding ``K//2 + extra_pad`` along ``axis``, so the
        output grows by ``2·extra_pad`` there.
        """
        d = self.spatial_dims
        m, size = kernels.shape
        shape = [size if a == axis else 1 for a in range(d)]
        weight = kernels.unsqueeze(0).expand(channels, m, size).reshape(channels * m, 1, *shape)
        padding = [size // 2 + extra_pad if a == axis else 0 for a in range(d)]
        return weight, padding, channels

    def _run(self, x: torch.Tensor, plan: list) -> torch.Tensor:
        conv = _CONV[self.spatial_dims]
        groups = [x] * self.num_scales if self.lifting else list(x.chunk(self.num_scales, dim=0))
        outs = []
        for xk, (smooth, weight, bias, pad) in zip(groups, plan):
            if smooth is None:
                # contiguous (not channels-last): oneDNN's backward for large dense kernels in channels-last took
                # 100x longer than in contiguous format on CPU (torch 2.13, 17x17 and 23x23 kernels)
                xk = xk.contiguous()
            if smooth:
                xk = self._smooth(xk, smooth)
            outs.append(conv(xk, weight, bias, padding=pad))
        return torch.cat(outs, dim=0)

    def _smooth(self, x: torch.Tensor, smooth: list) -> torch.Tensor:
        """The separable Gaussian passes of one group (``smooth``: per axis ``(weight, padding, groups)``).

        On the CPU in reduced precision (bfloat16 / float16 input, or under ``torch.autocast("cpu")``) they run in
        float32 and the result is cast back to the input's dtype: oneDNN's bfloat16 depthwise convolution along
        the last axis of a channels-last tensor does not return for kernels of 15 taps and more (torch 2.13,
        σ ≳ 3.5), and these passes are a small share of the layer's multiply-adds.
        """
        conv = _CONV[self.spatial_dims]
        if x.device.type == "cpu" and (x.dtype in _REDUCED or torch.is_autocast_enabled("cpu")):
            dtype = x.dtype
            with torch.autocast("cpu", enabled=False):
                x = x.float()
                for w, padding, channels in smooth:
                    x = conv(x, w.float(), padding=padding, groups=channels)
            return x.to(dtype)
        for w, padding, channels in smooth:
            x = conv(x, w, padding=padding, groups=channels)
        return x

    # ------------------------------------------------------------------ inference cache
    def _can_cache(self, norm: nn.Module | None) -> bool:
        """True in inference: eval mode, gradients off, not tracing, and a foldable (or no) norm."""
        if self.training or torch.is_grad_enabled() or torch.jit.is_tracing() or torch.jit.is_scripting():
            return False
        return norm is None or _foldable(norm)

    def _cached_plan(self, x: torch.Tensor, norm: nn.Module | None) -> list:
        """The plan with ``norm`` folded in, rebuilt only when a parameter, a buffer, dtype or device changed.

        The cache keeps copies of the tensors it was built from and compares them at every call (a few
        thousand numbers per layer, negligible next to the convolutions), so in-place edits, ``.data``
        assignments, ``load_state_dict`` and optimiser steps all invalidate it; :meth:`train` drops it.
        """
        sources = [t for t in (*self.parameters(), *self.buffers()) if t is not None]
        if norm is not None:
            sources += [t for t in (norm.running_mean, norm.running_var, norm.weight, norm.bias) if t is not None]
        cache = self.__dict__.get("_inference_cache")
        if (
            cache is not None
            and cache[0] == (x.dtype, x.device, id(norm))
            and len(cache[1]) == len(sources)
            and all(
                a.shape == b.shape and a.device == b.device and a.dtype == b.dtype and torch.equal(a, b)
                for a, b in zip(cache[1], sources)
            )
        ):
            return cache[2]
        scale = shift = None
        if norm is not None:
            scale = torch.rsqrt(norm.running_var + norm.eps)
            shift = -norm.running_mean * scale
            if norm.weight is not None:
                scale, shift = scale * norm.weight, shift * norm.weight
            if norm.bias is not None:
                shift = shift + norm.bias
        plan = self._plan(x.dtype, scale, shift)
        self.__dict__["_inference_cache"] = ((x.dtype, x.device, id(norm)), [t.clone() for t in sources], plan)
        return plan

    def clear_cache(self) -> None:
        """Drop the cached inference filters (they are rebuilt at the next inference call)."""
        self.__dict__.pop("_inference_cache", None)

    def train(self, mode: bool = True) -> "GDConv":
        self.clear_cache()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self.clear_cache()
        super()._load_from_state_dict(*args, **kwargs)

    def extra_repr(self) -> str:
        sig = ", ".join(f"{v:.3g}" for v in self.sigma().detach().cpu().tolist())
        return (
            f"spatial_dims={self.spatial_dims}, in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"num_scales={self.num_scales}, order={self.order}, lifting={self.lifting}, "
            f"discretization={self.discretization!r}, implementation={self.implementation!r}, "
            f"sigma=[{sig}], kernel_sizes={self.kernel_sizes()}, bias={self.bias is not None}"
        )


def _foldable(norm: nn.Module) -> bool:
    """A batch norm in eval mode with running statistics: an affine map per channel that folds into a filter."""
    return (
        isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and not norm.training
        and norm.running_mean is not None
        and norm.running_var is not None
    )
