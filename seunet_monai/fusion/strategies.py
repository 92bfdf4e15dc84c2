"""The named fusions of the Ω heads, one entry point: :func:`fuse` (the network's eval-mode output, the bundle's
``fusion`` key, the sweep's columns).

- ``"mean"``, ``"pdist"``, ``"pens"``, ``"head:k"``: the paper's (sec. 3.4, Algorithm 1),
  :mod:`seunet_monai.fusion.heads`;
- ``"scale"`` (beyond the paper): weights the heads by their validation IoU at the input's estimated scale,
  :mod:`seunet_monai.fusion.scale`.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from seunet_monai.fusion.heads import PAPER_STRATEGIES, check_head_probs, fuse_heads
from seunet_monai.fusion.scale import scale_fuse

__all__ = ["FUSION_STRATEGIES", "all_strategies", "fuse", "parse_strategy"]

#: every named fusion (``"head:k"`` aside)
FUSION_STRATEGIES = (*PAPER_STRATEGIES, "scale")

_HEAD_RE = re.compile(r"^head:?(\d+)$")


def all_strategies(num_heads: int) -> list[str]:
    """Every strategy of a network with ``num_heads`` heads: the named fusions, then ``"head:1"`` .. ``"head:Ω"``."""
    return [*FUSION_STRATEGIES, *(f"head:{k + 1}" for k in range(int(num_heads)))]


def parse_strategy(strategy: str) -> tuple[str, int | None]:
    """Split a strategy name into ``(kind, head)``; ``head`` is 0-based for ``"head:k"``.

    Accepts ``"mean"``, ``"pdist"``, ``"pens"``, ``"scale"``, ``"head:k"`` and its short form ``"headk"``.

    Raises:
        ValueError: for an unknown name or a head index below 1.
    """
    name = str(strategy).strip().lower()
    if name in FUSION_STRATEGIES:
        return name, None
    m = _HEAD_RE.match(name)
    if m is None:
        raise ValueError(
            f"unknown fusion strategy {strategy!r}: expected one of {FUSION_STRATEGIES} or 'head:k' (k >= 1)."
        )
    k = int(m.group(1))
    if k < 1:
        raise ValueError(f"fusion strategy {strategy!r}: head indices are 1-based, got {k}.")
    return "head", k - 1


def fuse(probs: torch.Tensor, strategy: str = "pens", profile: Any = None, temperature: float = 0.01) -> torch.Tensor:
    """Fuse per-head class probabilities into one class-score map.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)`` (softmax over ``C`` already applied),
            ``C >= 2``.
        strategy: ``"mean"``, ``"pdist"``, ``"pens"``, ``"scale"`` or ``"head:k"`` (1-based ``k``).
        profile: ``"scale"`` only: the calibration (:func:`seunet_monai.fusion.scale.resolve_profile`: a network
            with the ``fusion_*`` buffers, a state dict or a ``ScaleProfile``); without a calibrated one,
            ``"scale"`` falls back to ``"pens"`` with a one-time warning. Ignored by the other strategies.
        temperature: ``"scale"`` only: ``τ`` of the head weights in IoU units (0: best expected head alone).

    Returns:
        ``(B, C, *spatial)`` class scores whose argmax over ``C`` is the prediction. Every strategy returns
        probabilities that sum to 1 over ``C`` (PDist and ``head:k`` return the chosen head's probabilities).

    Raises:
        ValueError: for a tensor of the wrong rank, fewer than two classes, an unknown strategy, or a head
            index beyond Ω.
    """
    check_head_probs(probs, "fuse")
    kind, head = parse_strategy(strategy)
    if kind == "scale":
        return scale_fuse(probs, profile, temperature)
    if kind == "head" and head >= probs.shape[1]:
        raise ValueError(f"fuse: strategy {strategy!r} asks for head {head + 1} but there are {probs.shape[1]} heads.")
    return fuse_heads(probs, kind, head)
