"""Estimating an image's relative scale from which head wins (beyond the paper).

Heads are tuned to scales: on an enlarged image, heads of larger σ should win PDist more often. Per image
we take the PDist winner at every pixel (:func:`seunet_monai.fusion.winning_head`), weight each win by its
margin ``D = p_max - p_second`` (confident pixels count more; near-ties, e.g. flat background, hardly
count), and average the winners' ``log σ`` (σ of the last GD layer, the layer the heads read):

    ``log σ̂ = Σ_n D_n log σ_{k(n)} / Σ_n D_n``

The relative scale of an image is ``ŝ = exp(log σ̂ − log σ̂_ref)``, with ``log σ̂_ref`` the mean over the
test split at scale 1 (a dataset-level calibration, so the same reference serves images of unknown scale).
Without σ (plain networks, or a network that does not expose them) the head index ``k`` stands in for
``log σ_k``; with one head every estimate is the same and the correlation is undefined (``nan``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from seunet_monai.fusion import head_margins

__all__ = ["head_votes", "last_layer_log_sigmas", "relative_scale_estimates", "scale_correlation"]


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


def _log_sigma_estimate(weights: np.ndarray, log_sigmas: np.ndarray) -> float:
    total = float(weights.sum())
    return float((weights * log_sigmas).sum() / total) if total > 0 else float("nan")


def relative_scale_estimates(
    weights: np.ndarray, scales: Sequence[float], log_sigmas: torch.Tensor | np.ndarray, reference_scale: float = 1.0
) -> np.ndarray:
    """Estimated relative scales ``ŝ`` ``(N, S)`` from margin-weighted votes ``weights`` ``(N, S, Ω)``.

    The reference ``log σ̂_ref`` is the mean estimate over images at the sweep scale closest to
    ``reference_scale`` (in log), shifted by that scale's log so that ``ŝ`` is relative to scale 1.
    """
    w = np.asarray(weights, dtype=np.float64)
    ls = np.asarray(log_sigmas, dtype=np.float64)
    if w.ndim != 3 or w.shape[1] != len(scales) or w.shape[2] != ls.shape[0]:
        raise ValueError(f"weights must be (N, {len(scales)}, {ls.shape[0]}), got {w.shape}.")
    est = np.array([[_log_sigma_estimate(w[i, j], ls) for j in range(w.shape[1])] for i in range(w.shape[0])])
    log_scales = np.log(np.asarray(scales, dtype=np.float64))
    j_ref = int(np.argmin(np.abs(log_scales - math.log(reference_scale))))
    ref = np.nanmean(est[:, j_ref]) - (log_scales[j_ref] - math.log(reference_scale)) if est.size else float("nan")
    return np.exp(est - ref)


def scale_correlation(estimates: np.ndarray, scales: Sequence[float]) -> dict[str, float]:
    """Spearman and Pearson correlation of ``log ŝ`` with ``log s`` over all (image, scale) pairs.

    Returns ``nan`` values when the estimates are constant (e.g. one head) or fewer than 3 pairs exist.
    """
    from scipy.stats import pearsonr, spearmanr

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
