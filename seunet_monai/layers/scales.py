"""Learnable, range-constrained scales σ of a GD layer (eq. 6, 7 of Yang et al.).

Every GD layer has Ω scales ``σ_k``, one per scale group ``k``, each inside its own interval
``(b_k, a_k)``; the intervals of one layer are disjoint and increase with ``k``. Three modes:

- ``"constrained"`` (eq. 6): ``σ = (a - b)/2 · tanh(x) + (a + b)/2`` from an unconstrained parameter
  ``x`` initialised to 0 (σ at the midpoint). σ can never leave ``(b, a)``.
- ``"fixed"``: σ at the midpoint ``(a + b)/2``, a buffer, not trained (ablation of Table 3).
- ``"free"``: σ trained without bounds, kept positive by ``σ = softplus(x)``, initialised at the midpoint
  (ablation of Table 3; groups may collapse onto the same σ).

The filter half-width follows σ (eq. 7): ``h = ⌈2σ⌉`` (size ``2h + 1``), recomputed from the current σ at
every forward pass, optionally capped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "SIGMA_LAYOUTS",
    "SIGMA_MODES",
    "ScaleParameter",
    "default_sigma_ranges",
    "half_widths",
    "validate_sigma_bounds",
]

SIGMA_MODES = ("constrained", "fixed", "free")


def validate_sigma_bounds(
    bounds: Sequence[Sequence[float]], num_scales: int, name: str = "layer"
) -> list[tuple[float, float]]:
    """Check the Ω intervals ``(b_k, a_k)`` of one layer.

    Args:
        bounds: ``num_scales`` pairs ``(b_k, a_k)`` (lower, upper).
        num_scales: Ω.
        name: layer name used in error messages.

    Returns:
        the bounds as a list of float pairs.

    Raises:
        ValueError: wrong count, a pair that is not two numbers, ``a <= b``, ``b < 0``, or intervals that
            overlap or are not sorted increasingly (``a_k <= b_{k+1}`` is required; touching is allowed since
            σ lies in the open interval).
    """
    try:
        pairs = [(float(p[0]), float(p[1])) for p in bounds]
        if any(len(p) != 2 for p in bounds):
            raise TypeError
    except (TypeError, IndexError, ValueError):
        raise ValueError(f"{name}: sigma bounds must be {num_scales} pairs (b, a), got {bounds!r}.") from None
    if len(pairs) != num_scales:
        raise ValueError(f"{name}: expected {num_scales} sigma intervals (one per scale group), got {len(pairs)}.")
    for k, (b, a) in enumerate(pairs):
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"{name}: group {k + 1} has a non-finite sigma bound ({b}, {a}).")
        if b < 0:
            raise ValueError(f"{name}: group {k + 1} lower sigma bound b={b} must be >= 0.")
        if a <= b:
            raise ValueError(f"{name}: group {k + 1} needs upper bound a > lower bound b, got (b={b}, a={a}).")
    for k in range(num_scales - 1):
        if pairs[k][1] > pairs[k + 1][0]:
            raise ValueError(
                f"{name}: sigma intervals must be disjoint and increasing, but group {k + 1} {pairs[k]} "
                f"overlaps or follows group {k + 2} {pairs[k + 1]}."
            )
    return pairs


SIGMA_LAYOUTS = ("centred", "offset")


def default_sigma_ranges(
    num_scales: int = 5,
    num_layers: int = 18,
    width: float = 0.5,
    growth: float = 0.25,
    layout: str = "centred",
) -> list[list[tuple[float, float]]]:
    """Paper-style σ intervals for the 18 GD layers of the SEUNet.

    First layer, group ``k`` (1-based):

    - ``"centred"`` (default, the paper's Appendix C / Fig. 4): the interval ``(k·w - w/2, k·w + w/2)`` centred
      on ``σ = k·w``; with ``w = 0.5`` the midpoints are 0.5, 1, 1.5, 2, 2.5 (ratios 1:2:3:4:5), so groups
      ``k`` and ``2k`` are exactly a factor 2 apart (equivariance at scale 2 of the sweep) and the filter
      sizes ``2⌈2σ⌉ + 1`` at the midpoints are 3, 5, 7, 9, 11, those of SESN/DISCO with scales 1..5.
    - ``"offset"`` (this project's first layout): ``((k-1)·w, k·w)``, midpoints 0.25, 0.75, ... (ratios
      1:3:5:7:9, no exact factor-2 pair), kept for comparisons with earlier runs.

    Deeper layers multiply the intervals by ``1 + growth · level``, where ``level`` is the UNet depth of the
    layer's block (0 for the first encoder block up to 4 for the bottleneck, and back down along the
    decoder), so the ranges increase along the encoder and decrease along the decoder (the paper, eq. 6, 7) and
    every layer keeps the first layer's σ ratios between groups. With the defaults the largest σ is
    ``2.75 · 2 = 5.5`` (bottleneck, group 5).

    Args:
        num_scales: Ω.
        num_layers: number of GD layers (two per UNet block; 18 for the 9-block SEUNet).
        width: spacing of the groups' midpoints and width of each group's interval in the first layer.
        growth: relative widening per UNet level.
        layout: ``"centred"`` or ``"offset"`` (above).

    Returns:
        ``num_layers`` lists of Ω ``(b, a)`` pairs.
    """
    if num_scales < 1:
        raise ValueError(f"num_scales must be >= 1, got {num_scales}.")
    if num_layers < 1 or num_layers % 2:
        raise ValueError(f"num_layers must be a positive even number (two per block), got {num_layers}.")
    if layout not in SIGMA_LAYOUTS:
        raise ValueError(f"sigma layout must be one of {SIGMA_LAYOUTS}, got {layout!r}.")
    # group k (0-based) spans (k + lo) * width .. (k + lo + 1) * width in the first layer
    lo = 0.5 if layout == "centred" else 0.0
    num_blocks = num_layers // 2
    depth = num_blocks // 2
    ranges = []
    for layer in range(num_layers):
        block = layer // 2
        level = block if block <= depth else num_blocks - 1 - block
        m = 1.0 + growth * level
        ranges.append([((k + lo) * width * m, (k + lo + 1) * width * m) for k in range(num_scales)])
    return ranges


def half_widths(sigma: torch.Tensor, max_half_width: int | None = None) -> list[int]:
    """Filter half-widths ``⌈2σ⌉`` of eq. 7 (at least 1), optionally capped, as Python ints."""
    values = sigma.detach().double().cpu().tolist()
    out = [max(1, math.ceil(2.0 * v - 1e-9)) for v in values]
    if max_half_width is not None:
        out = [min(h, int(max_half_width)) for h in out]
    return out


class ScaleParameter(nn.Module):
    """The Ω scales σ of one GD layer (eq. 6).

    Args:
        bounds: Ω intervals ``(b_k, a_k)``; validated by :func:`validate_sigma_bounds`. In ``"fixed"`` and
            ``"free"`` modes they set the initial (midpoint) value and are kept for reporting.
        mode: ``"constrained"``, ``"fixed"`` or ``"free"``.
        name: layer name for error messages and ``extra_repr``.

    ``forward()`` returns σ ``(Ω,)``.
    """

    def __init__(self, bounds: Sequence[Sequence[float]], mode: str = "constrained", name: str = "layer") -> None:
        super().__init__()
        if mode not in SIGMA_MODES:
            raise ValueError(f"{name}: sigma_mode must be one of {SIGMA_MODES}, got {mode!r}.")
        pairs = validate_sigma_bounds(bounds, len(bounds), name)
        self.mode = mode
        self.name = name
        self.num_scales = len(pairs)
        b = torch.tensor([p[0] for p in pairs], dtype=torch.float32)
        a = torch.tensor([p[1] for p in pairs], dtype=torch.float32)
        self.register_buffer("lower", b)
        self.register_buffer("upper", a)
        if mode == "fixed":
            self.register_buffer("fixed_sigma", (a + b) / 2)
            self.register_parameter("raw", None)
        else:
            self.raw = nn.Parameter(torch.zeros(self.num_scales))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """σ back to the interval midpoints."""
        if self.raw is None:
            return
        with torch.no_grad():
            if self.mode == "constrained":
                self.raw.zero_()
            else:  # free: softplus(raw) = midpoint
                mid = ((self.lower + self.upper) / 2).clamp_min(1e-3)
                self.raw.copy_(torch.log(torch.expm1(mid)))

    def bounds(self) -> torch.Tensor:
        """The configured intervals ``(Ω, 2)`` as ``(b, a)``."""
        return torch.stack([self.lower, self.upper], dim=1)

    def forward(self) -> torch.Tensor:
        if self.mode == "fixed":
            return self.fixed_sigma
        if self.mode == "constrained":
            return (self.upper - self.lower) / 2 * torch.tanh(self.raw) + (self.upper + self.lower) / 2
        return nn.functional.softplus(self.raw)

    def extra_repr(self) -> str:
        iv = ", ".join(f"({b:.3g}, {a:.3g})" for b, a in zip(self.lower.tolist(), self.upper.tolist()))
        return f"name={self.name!r}, mode={self.mode!r}, bounds=[{iv}]"
