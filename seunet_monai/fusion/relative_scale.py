"""The uncalibrated scale estimate, for any multi-head network (the ``scale`` fusion's estimate needs a calibration:
:mod:`seunet_monai.fusion.scale`). Reasons and measurements: ``bundle/docs/scale_fusion.md``.

The heads' ``log σ`` (of the layer the heads read; the caller passes them, e.g.
``networks.base.last_layer_log_sigmas``) averaged with weights ``softmax_k(c_k / τ)`` of their mean margins ``c_k``
(:func:`~seunet_monai.fusion.heads.head_confidence`): ``log σ̂ = Σ_k softmax_k(c_k / τ) log σ_k``
(:func:`log_sigma_estimate`). It is a scale only relative to a reference ``log σ̂_ref`` of the same data at scale 1
(:func:`relative_scale_estimates`: ``ŝ = exp(log σ̂ − log σ̂_ref)``), and tracks the true scale in rank, not in
magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["log_sigma_estimate", "relative_scale_estimates"]


def log_sigma_estimate(
    confidence: np.ndarray | torch.Tensor, log_sigmas: np.ndarray | torch.Tensor, temperature: float = 0.05
) -> np.ndarray:
    """The uncalibrated estimate ``log σ̂ = Σ_k softmax_k(c_k / τ) log σ_k`` over the last axis of ``confidence``.

    Args:
        confidence: the heads' mean margins ``(..., Ω)`` (:func:`~seunet_monai.fusion.heads.head_confidence`).
        log_sigmas: ``(Ω,)`` log σ of the heads (or the head index for a network without σ).
        temperature: ``τ`` (> 0).

    Returns:
        ``(...)`` float64.
    """
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
    """Uncalibrated relative scales ``ŝ`` ``(N, S)`` of N images seen at S scales, from their heads' confidences
    ``(N, S, Ω)`` (:func:`log_sigma_estimate`).

    The reference ``log σ̂_ref`` is the mean estimate over images at the scale closest to ``reference_scale`` (in
    log), shifted by that scale's log so that ``ŝ`` is relative to scale 1.
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
