"""Fusing per-head extra maps (e.g. the nucleus separation map) with the head weights of a class fusion.

A network with ``aux_channels`` predicts, besides the class probabilities ``ŷ_k`` of every head ``k``, maps
``m_k ∈ [0, 1]`` (a boundary probability, a normalised distance to the nucleus border). They are fused with the
**same head weights** the class fusion gives each head at each pixel, so that the head that decides the class
there also decides the map, and the maps keep the scale behaviour of the heads:

- ``"mean"``: ``w_k = 1/Ω``: the mean map;
- ``"pens"``: ``w_k = softmax_k(D_k)`` of the class margins ``D_k = p_max - p_second`` (Algorithm 1): a per-pixel
  weighted mean;
- ``"pdist"``: ``w_k = 1`` for the head of the largest class margin (ties: the lowest index), else 0: that head's
  value;
- ``"head:k"``: head ``k`` alone;
- ``"scale"``: the per-image weights of :func:`seunet_monai.fusion.scale.scale_head_weights` (PEns while the
  profile is not calibrated, as the class fusion).

``Σ_k w_k m_k`` is a convex combination, so a fused map stays in ``[0, 1]``: for a probability (boundary) it is a
mixture of the heads' probabilities, for a regression target (the normalised distance) a weighted mean of the heads'
estimates, which is what PEns and the mean do to the class probabilities. :func:`head_weights` applied to the class
probabilities themselves gives :func:`seunet_monai.fusion.strategies.fuse` (up to rounding).
"""

from __future__ import annotations

from typing import Any

import torch

from seunet_monai.fusion.heads import argmax, check_head_probs, head_margins
from seunet_monai.fusion.scale import resolve_profile, scale_head_weights
from seunet_monai.fusion.strategies import parse_strategy

__all__ = ["fuse_auxiliary", "head_weights"]


def head_weights(
    probs: torch.Tensor, strategy: str = "pens", profile: Any = None, temperature: float = 0.01
) -> torch.Tensor:
    """The weight of every head at every pixel under ``strategy`` (module docstring).

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)``, ``C >= 2``.
        strategy: ``"mean"``, ``"pdist"``, ``"pens"``, ``"scale"`` or ``"head:k"`` (1-based ``k``).
        profile: ``"scale"`` only: the calibration (:func:`seunet_monai.fusion.scale.resolve_profile`).
        temperature: ``"scale"`` only: ``τ`` of the head weights (IoU units).

    Returns:
        ``(B, Ω, *spatial)`` weights (the dtype and device of ``probs``), summing to 1 over ``Ω``; ``"mean"``,
        ``"head:k"`` and ``"scale"`` give weights that do not depend on the pixel, broadcast to the full shape.

    Raises:
        ValueError: for a tensor of the wrong rank, fewer than two classes, an unknown strategy or a head index
            beyond Ω.
    """
    check_head_probs(probs, "head_weights")
    kind, head = parse_strategy(strategy)
    b, omega, spatial = probs.shape[0], probs.shape[1], probs.shape[3:]
    if kind == "head" and head >= omega:
        raise ValueError(f"head_weights: strategy {strategy!r} asks for head {head + 1} but there are {omega} heads.")
    if kind == "scale":
        prof = resolve_profile(profile)
        if prof is not None:
            w, _ = scale_head_weights(probs, prof, temperature)
            w = w.to(device=probs.device, dtype=probs.dtype)
            return w.view(b, omega, *([1] * len(spatial))).expand(b, omega, *spatial)
        kind = "pens"  # as the class fusion falls back (it warns once)
    if kind == "mean":
        return probs.new_full((b, omega, *spatial), 1.0 / omega)
    if kind == "head":
        w = probs.new_zeros((b, omega, *spatial))
        w[:, head] = 1.0
        return w
    margins = head_margins(probs)
    if kind == "pdist":
        return torch.nn.functional.one_hot(argmax(margins, dim=1), omega).movedim(-1, 1).to(probs.dtype)
    return torch.softmax(margins, dim=1)


def fuse_auxiliary(
    probs: torch.Tensor, maps: torch.Tensor, strategy: str = "pens", profile: Any = None, temperature: float = 0.01
) -> torch.Tensor:
    """``Σ_k w_k m_k``: per-head maps fused with the head weights of the class fusion ``strategy``.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)`` (they give the weights).
        maps: per-head maps ``(B, Ω, A, *spatial)``.
        strategy: see :func:`head_weights`.
        profile: ``"scale"`` only, see :func:`head_weights`.
        temperature: ``"scale"`` only, see :func:`head_weights`.

    Returns:
        ``(B, A, *spatial)`` fused maps.

    Raises:
        ValueError: when ``maps`` does not match ``probs`` in batch, heads and spatial size, or as :func:`head_weights`.
    """
    if maps.ndim != probs.ndim or maps.shape[:2] != probs.shape[:2] or maps.shape[3:] != probs.shape[3:]:
        raise ValueError(
            f"fuse_auxiliary: maps {tuple(maps.shape)} must be (B, Ω, A, *spatial) matching the class probabilities "
            f"{tuple(probs.shape)}."
        )
    weights = head_weights(probs, strategy, profile, temperature).to(maps.dtype)
    return (weights.unsqueeze(2) * maps).sum(dim=1)
