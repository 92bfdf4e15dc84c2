"""The paper's per-pixel fusions of the Ω heads' class probabilities into one prediction, and the heads' margins.

Implements sec. 3.4 and Algorithm 1 (Appendix A) of Yang et al., "Scale-Equivariant UNet for
Histopathology Image Segmentation" (:func:`fuse_heads`; every named fusion, ``"scale"`` included, goes through
:func:`seunet_monai.fusion.strategies.fuse`):

- ``"mean"``: arithmetic mean of the heads' probabilities.
- ``"pdist"``: per pixel, the head with the largest margin ``D_k = p_max - p_second`` decides.
- ``"pens"``: per pixel, heads weighted by ``softmax_k(D_k)``.
- ``"head:k"``: one head alone (1-based ``k``), as in the per-head columns of Table 1.
- ``"scale"`` (beyond the paper): estimate the input's scale from the heads and weight the heads by their
  validation IoU measured at that scale (:mod:`seunet_monai.fusion.scale`: design, justification and the
  uncalibrated fallback to PEns). It needs the calibration ``profile`` (the network's ``fusion_*`` buffers).

The per-pixel winning head of PDist (:func:`winning_head`) tells which scale group decided each pixel (winning-head
maps at inference); :func:`head_votes` counts the winners of an image and :func:`head_confidence` gives each head's
mean margin (the confidence the uncalibrated scale estimate of :mod:`seunet_monai.fusion.scale` weighs). The fusions as MONAI transforms for ``postprocessing``
(``Fuse``, ``Fused``) are in :mod:`seunet_monai.transforms.post`.

The fusions are ours: MONAI has no per-head fusion (its ``MeanEnsemble`` / ``VoteEnsemble`` average or vote over
whole models, not per pixel by each head's margin as Algorithm 1 does).
"""

from __future__ import annotations

import torch

__all__ = [
    "PAPER_STRATEGIES",
    "argmax",
    "check_head_probs",
    "fuse_heads",
    "head_confidence",
    "head_margins",
    "head_votes",
    "winning_head",
]

#: the paper's fusions (sec. 3.4)
PAPER_STRATEGIES = ("mean", "pdist", "pens")


def check_head_probs(probs: torch.Tensor, name: str = "fuse") -> None:
    """Refuse anything but per-head class probabilities ``(B, Ω, C, *spatial)`` with ``C >= 2``.

    Raises:
        ValueError: naming ``name``, for a tensor of the wrong rank or fewer than two classes.
    """
    if probs.ndim < 4:
        raise ValueError(f"{name}: probs must be (B, Ω, C, *spatial), got shape {tuple(probs.shape)}.")
    if probs.shape[2] < 2:
        raise ValueError(f"{name}: need at least 2 classes (dim 2) to compute margins, got {probs.shape[2]}.")


def fuse_heads(probs: torch.Tensor, kind: str, head: int | None = None) -> torch.Tensor:
    """The paper's fusions of per-head class probabilities (sec. 3.4, Algorithm 1) into one class-score map.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)`` (softmax over ``C`` already applied),
            ``C >= 2``.
        kind: ``"mean"``, ``"pdist"``, ``"pens"`` or ``"head"`` (as :func:`seunet_monai.fusion.strategies.parse_strategy`
            returns it).
        head: the 0-based head of ``"head"``.

    Returns:
        ``(B, C, *spatial)`` probabilities that sum to 1 over ``C`` (PDist and ``head`` return the chosen head's).

    Raises:
        ValueError: for a tensor of the wrong rank, fewer than two classes, or a head index beyond Ω.
    """
    check_head_probs(probs, "fuse")
    if kind not in (*PAPER_STRATEGIES, "head"):
        raise ValueError(f"fuse_heads: unknown kind {kind!r}: expected one of {PAPER_STRATEGIES} or 'head'.")
    num_heads = probs.shape[1]
    if kind == "mean":
        return probs.mean(dim=1)
    if kind == "head":
        if head is None or head >= num_heads:
            raise ValueError(f"fuse_heads: kind 'head' needs a 0-based head below {num_heads}, got {head}.")
        return probs[:, head]
    margins = head_margins(probs)
    if kind == "pdist":
        # ties between heads' margins go to the lowest head index (argmax returns the first maximum)
        best = argmax(margins, dim=1, keepdim=True).unsqueeze(2)  # (B, 1, 1, *spatial)
        index = best.expand(-1, 1, probs.shape[2], *probs.shape[3:])
        return probs.gather(1, index).squeeze(1)
    weights = torch.softmax(margins, dim=1).unsqueeze(2)  # (B, Ω, 1, *spatial)
    return (weights * probs).sum(dim=1)


def head_margins(probs: torch.Tensor) -> torch.Tensor:
    """Margin ``D_k = p_max - p_second`` of every head at every pixel (Algorithm 1).

    Taken from the top two probabilities, so that two equal maxima give a margin of 0.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)`` with ``C >= 2``.

    Returns:
        margins ``(B, Ω, *spatial)``.
    """
    n = probs.shape[2]
    if n < 2:
        raise ValueError(f"head_margins: need at least 2 classes (dim 2), got {n}.")
    if n == 2:
        return (probs[:, :, 1] - probs[:, :, 0]).abs()
    # the two largest by elementwise passes (torch.topk over this short axis is slow on the CPU)
    first = torch.maximum(probs[:, :, 0], probs[:, :, 1])
    second = torch.minimum(probs[:, :, 0], probs[:, :, 1])
    for c in range(2, n):
        x = probs[:, :, c]
        second = torch.maximum(second, torch.minimum(first, x))
        first = torch.maximum(first, x)
    return first - second


def argmax(x: torch.Tensor, dim: int = 1, keepdim: bool = False) -> torch.Tensor:
    """``torch.argmax(x, dim, keepdim)`` for a short ``dim`` (classes, heads), computed by elementwise comparisons.

    The result is identical to ``torch.argmax`` for finite inputs (ties go to the lowest index), and much faster on
    the CPU, where ``torch.argmax`` over a short, non-innermost axis is slow (``bundle/docs/benchmarks.md``).

    Args:
        x: scores with the reduced axis ``dim``; finite values (NaN is not treated as a maximum).
        dim: axis to reduce.
        keepdim: keep ``dim`` with size 1.

    Returns:
        int64 indices, the shape of ``x`` without ``dim`` (or with size 1 there).
    """
    n = x.shape[dim]
    if n == 0 or n > 32 or x.ndim == 0:
        return torch.argmax(x, dim=dim, keepdim=keepdim)
    best = x.select(dim, 0)
    index = torch.zeros(best.shape, dtype=torch.int64, device=x.device)
    for k in range(1, n):
        xk = x.select(dim, k)
        better = xk > best
        index.masked_fill_(better, k)
        best = torch.maximum(best, xk)
    return index.unsqueeze(dim) if keepdim else index


def winning_head(probs: torch.Tensor) -> torch.Tensor:
    """Per-pixel index of the head that PDist picks (largest margin; ties go to the lowest index).

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)``, ``C >= 2``.

    Returns:
        0-based head indices ``(B, *spatial)`` (int64). Add 1 for the ``head1..headΩ`` names.
    """
    if probs.ndim < 4:
        raise ValueError(f"winning_head: probs must be (B, Ω, C, *spatial), got shape {tuple(probs.shape)}.")
    if probs.shape[2] < 2:
        raise ValueError(f"winning_head: need at least 2 classes (dim 2), got {probs.shape[2]}.")
    return argmax(head_margins(probs), dim=1)


def head_votes(probs: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """PDist winner histogram and margin-weighted votes of one image.

    Args:
        probs: per-head probabilities ``(1, Ω, C, *spatial)`` (or ``(B, ...)``: pixels of all samples pooled).
        mask: optional boolean ``(B, *spatial)``; only these pixels vote (e.g. not the ignore value).

    Returns:
        ``(counts (Ω,), weights (Ω,))`` float64: pixels won by each head, and the sum of their margins.
    """
    margins = head_margins(probs)  # (B, Ω, *spatial)
    best_margin, winner = margins.max(dim=1)  # (B, *spatial)
    omega = probs.shape[1]
    if mask is not None:
        winner, best_margin = winner[mask], best_margin[mask]
    winner = winner.flatten()
    counts = torch.bincount(winner, minlength=omega).double()
    weights = torch.bincount(winner, weights=best_margin.flatten().double(), minlength=omega)
    return counts, weights


def head_confidence(probs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean margin ``D_k = p_max - p_second`` of every head over the (masked) pixels, ``(Ω,)`` float64 (NaN when no
    pixel is left).

    Args:
        probs: per-head probabilities ``(B, Ω, C, *spatial)`` (pixels of all samples pooled).
        mask: optional boolean ``(B, *spatial)``: only these pixels count.
    """
    margins = head_margins(probs).movedim(1, -1)  # (B, *spatial, Ω)
    if mask is not None:
        margins = margins[mask]
    margins = margins.reshape(-1, probs.shape[1]).double()
    if margins.shape[0] == 0:
        return torch.full((probs.shape[1],), float("nan"), dtype=torch.float64)
    return margins.mean(0)
