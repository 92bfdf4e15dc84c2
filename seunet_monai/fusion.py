"""Per-pixel fusion of the Ω heads' class probabilities into one prediction.

Implements sec. 3.4 and Algorithm 1 (Appendix A) of Yang et al., "Scale-Equivariant UNet for
Histopathology Image Segmentation":

- ``"mean"``: arithmetic mean of the heads' probabilities.
- ``"pdist"``: per pixel, the head with the largest margin ``D_k = p_max - p_second`` decides.
- ``"pens"``: per pixel, heads weighted by ``softmax_k(D_k)``.
- ``"head:k"``: one head alone (1-based ``k``), as in the per-head columns of Table 1.
"""

from __future__ import annotations

import re

import torch

__all__ = ["FUSION_STRATEGIES", "fuse", "head_margins", "parse_strategy"]

FUSION_STRATEGIES = ("mean", "pdist", "pens")

_HEAD_RE = re.compile(r"^head:?(\d+)$")


def parse_strategy(strategy: str) -> tuple[str, int | None]:
    """Split a strategy name into ``(kind, head)``; ``head`` is 0-based for ``"head:k"``.

    Accepts ``"mean"``, ``"pdist"``, ``"pens"``, ``"head:k"`` and its short form ``"headk"``.

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


def head_margins(probs: torch.Tensor) -> torch.Tensor:
    """Margin ``D_k = p_max - p_second`` of every head at every pixel (Algorithm 1).

    Taken from the top two probabilities, so that two equal maxima give a margin of 0.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)`` with ``C >= 2``.

    Returns:
        margins ``(B, Ω, *spatial)``.
    """
    top2 = probs.topk(2, dim=2).values
    return top2[:, :, 0] - top2[:, :, 1]


def fuse(probs: torch.Tensor, strategy: str = "pens") -> torch.Tensor:
    """Fuse per-head class probabilities into one class-score map.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)`` (softmax over ``C`` already applied),
            ``C >= 2``.
        strategy: ``"mean"``, ``"pdist"``, ``"pens"`` or ``"head:k"`` (1-based ``k``).

    Returns:
        ``(B, C, *spatial)`` class scores whose argmax over ``C`` is the prediction. Every strategy returns
        probabilities that sum to 1 over ``C`` (PDist and ``head:k`` return the chosen head's probabilities).

    Raises:
        ValueError: for a tensor of the wrong rank, fewer than two classes, an unknown strategy, or a head
            index beyond Ω.
    """
    if probs.ndim < 4:
        raise ValueError(f"fuse: probs must be (B, Ω, C, *spatial), got shape {tuple(probs.shape)}.")
    if probs.shape[2] < 2:
        raise ValueError(f"fuse: need at least 2 classes (dim 2) to compute margins, got {probs.shape[2]}.")
    kind, head = parse_strategy(strategy)
    num_heads = probs.shape[1]
    if kind == "mean":
        return probs.mean(dim=1)
    if kind == "head":
        if head >= num_heads:
            raise ValueError(f"fuse: strategy {strategy!r} asks for head {head + 1} but there are {num_heads} heads.")
        return probs[:, head]
    margins = head_margins(probs)
    if kind == "pdist":
        # ties between heads' margins go to the lowest head index (argmax returns the first maximum)
        best = margins.argmax(dim=1, keepdim=True).unsqueeze(2)  # (B, 1, 1, *spatial)
        index = best.expand(-1, 1, probs.shape[2], *probs.shape[3:])
        return probs.gather(1, index).squeeze(1)
    weights = torch.softmax(margins, dim=1).unsqueeze(2)  # (B, Ω, 1, *spatial)
    return (weights * probs).sum(dim=1)
