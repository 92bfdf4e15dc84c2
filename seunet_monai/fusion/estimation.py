"""Estimating an image's relative scale from which heads are confident (beyond the paper).

Heads are tuned to scales: on an enlarged image, heads of larger σ should be the more confident ones.
Per image, each head's confidence is its mean margin ``c_k = mean_n D_k,n`` (``D = p_max - p_second``,
Algorithm 1) over the image's pixels; the heads' ``log σ`` (σ of the last GD layer, the layer the heads
read) are averaged with weights ``softmax_k(c_k / τ)``:

    ``log σ̂ = Σ_k softmax_k(c_k / τ) log σ_k``

The relative scale of an image is ``ŝ = exp(log σ̂ − log σ̂_ref)``, with ``log σ̂_ref`` the mean over the
test split at scale 1 (a dataset-level calibration, so the same reference serves images of unknown scale).
``ŝ`` tracks the true scale in rank, not in magnitude (it is not calibrated; the sweep reports the
Spearman and Pearson correlations of ``log ŝ`` with ``log s``).

Why head-level confidence and not the PDist winners: on a small synthetic check (tiny SEUNet, Ω = 5,
4 test images, 7 scales) the margin-weighted share of PDist *wins* correlated negatively with the scale
(Spearman −0.51): winners are mostly the small-σ head inside objects and larger-σ heads only along
boundaries, whose share of the image shrinks when it is enlarged. Mean margins per head gave +0.68 with
linear weights and +0.71 with ``τ = 0.05`` (the default, picked on that check; an assumption, not a
tuned constant). The PDist winner histogram is still recorded per image and scale.

Without σ (plain networks, or a network that does not expose them) the head index ``k`` stands in for
``log σ_k``; with one head every estimate is the same and the correlation is undefined (``nan``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from seunet_monai.fusion.heads import head_margins

__all__ = [
    "head_confidence",
    "head_votes",
    "last_layer_log_sigmas",
    "log_sigma_estimate",
    "relative_scale_estimates",
    "scale_correlation",
]


def last_layer_log_sigmas(network: torch.nn.Module, num_heads: int) -> tuple[torch.Tensor, str]:
    """``log σ`` of the last GD layer's Ω groups and where they came from.

    Returns:
        ``(log_sigmas (Ω,), source)`` with ``source`` the layer name, or ``"head index"`` when the network
        exposes no σ (then ``log σ_k = k``).
    """
    sigmas = getattr(network, "sigmas", None)
    if callable(sigmas):
        table = sigmas()
        if table:
            name, sig = list(table.items())[-1]
            sig = torch.as_tensor(sig, dtype=torch.float64).detach().cpu().flatten()
            if sig.numel() == num_heads and bool((sig > 0).all()):
                return sig.log(), str(name)
    return torch.arange(num_heads, dtype=torch.float64), "head index"


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
    """Mean margin ``D_k = p_max - p_second`` of every head over the (masked) pixels, ``(Ω,)`` float64.

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


def log_sigma_estimate(confidence: np.ndarray | torch.Tensor, log_sigmas: np.ndarray | torch.Tensor,
                       temperature: float = 0.05) -> np.ndarray:
    """``Σ_k softmax_k(c_k / τ) log σ_k`` over the last axis of ``confidence`` ``(..., Ω)``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    c = torch.as_tensor(np.asarray(confidence, dtype=np.float64))
    ls = torch.as_tensor(np.asarray(log_sigmas, dtype=np.float64))
    w = torch.softmax(c / temperature, dim=-1)
    return (w * ls).sum(-1).numpy()


def relative_scale_estimates(
    confidence: np.ndarray,
    scales: Sequence[float],
    log_sigmas: torch.Tensor | np.ndarray,
    temperature: float = 0.05,
    reference_scale: float = 1.0,
) -> np.ndarray:
    """Estimated relative scales ``ŝ`` ``(N, S)`` from per-head confidences ``(N, S, Ω)``.

    The reference ``log σ̂_ref`` is the mean estimate over images at the sweep scale closest to
    ``reference_scale`` (in log), shifted by that scale's log so that ``ŝ`` is relative to scale 1.
    """
    c = np.asarray(confidence, dtype=np.float64)
    ls = np.asarray(log_sigmas, dtype=np.float64)
    if c.ndim != 3 or c.shape[1] != len(scales) or c.shape[2] != ls.shape[0]:
        raise ValueError(f"confidence must be (N, {len(scales)}, {ls.shape[0]}), got {c.shape}.")
    est = log_sigma_estimate(c, ls, temperature)  # (N, S)
    log_scales = np.log(np.asarray(scales, dtype=np.float64))
    j_ref = int(np.argmin(np.abs(log_scales - math.log(reference_scale))))
    ref = np.nanmean(est[:, j_ref]) - (log_scales[j_ref] - math.log(reference_scale)) if est.size else float("nan")
    return np.exp(est - ref)


def scale_correlation(estimates: np.ndarray, scales: Sequence[float]) -> dict[str, float]:
    """Spearman and Pearson correlation of ``log ŝ`` with ``log s`` over all (image, scale) pairs.

    Returns ``nan`` values when the estimates are constant (e.g. one head) or fewer than 3 pairs exist.
    """
    est = np.log(np.asarray(estimates, dtype=np.float64))
    true = np.broadcast_to(np.log(np.asarray(scales, dtype=np.float64)), est.shape)
    ok = np.isfinite(est)
    x, y = true[ok], est[ok]
    if x.size < 3 or np.std(y) == 0 or np.std(x) == 0:
        return {"spearman": float("nan"), "pearson": float("nan"), "num_pairs": int(x.size)}
    return {
        "spearman": float(spearmanr(x, y).statistic),
        "pearson": float(pearsonr(x, y).statistic),
        "num_pairs": int(x.size),
    }
