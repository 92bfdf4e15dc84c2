"""Measuring the equivariance error of a network on an image (eq. 10, 12) across test scales.

For an image ``f`` and a scale ``s``, the reference is ``S_s Φ(f)``: the last-layer features of ``f``
resampled to the size of the rescaled image (:func:`~seunet_monai.layers.rescale.resize_features`,
the same anti-aliased bilinear rule as for images); the test is ``Φ(S_s f)``: the features of the rescaled
image. Both come from one whole-image forward pass (no sliding window), so use small crops. Features are
``net.features(x)`` for multi-head networks and, for plain networks, the input of their last convolution
(:func:`~seunet_monai.evaluation.heads.network_features`). Zero padding and borders are included as they are.

The errors of eq. 12 between a network's groups and the matching of groups across a scale change are
:mod:`seunet_monai.networks.equivariance` (a multi-head network measures itself with
:meth:`~seunet_monai.networks.base.MultiHeadNetwork.check_equivariance`); here: eq. 10 (:func:`equivariance_error`,
:func:`matched_error`), the partners of eq. 10 (:func:`scale_partners`, :func:`group_partners`), the measurement on
any network, plain ones included (:func:`equivariance_matrices`), and the scale sweep's tables
(:func:`equivariance_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from seunet_monai.evaluation.heads import network_features
from seunet_monai.layers.rescale import rescale_image, resize_features
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.networks.equivariance import equivariance_matrix, matched_groups

__all__ = [
    "EQUIVARIANCE_COLUMNS",
    "EQUIVARIANCE_MATRIX_COLUMNS",
    "centre_crop",
    "equivariance_error",
    "equivariance_matrices",
    "equivariance_rows",
    "group_partners",
    "matched_error",
    "scale_partners",
]

#: columns of ``equivariance.csv`` (eq. 10 per scale)
EQUIVARIANCE_COLUMNS = (
    "model",
    "scale",
    "equivariance_error",
    "num_images",
    "matched_groups",
    "pair_errors",
    "groups_without_partner",
)
#: columns of ``equivariance_matrix.csv`` (eq. 12, long format)
EQUIVARIANCE_MATRIX_COLUMNS = ("model", "scale", "group", "group_rescaled", "sigma_ratio", "error", "matched")


def centre_crop(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """Centre crop ``(C, *spatial)`` to at most ``size`` per spatial axis (``None``: unchanged)."""
    if size is None:
        return image
    sl = [slice(None)]
    for n in image.shape[1:]:
        c = min(n, int(size))
        start = (n - c) // 2
        sl.append(slice(start, start + c))
    return image[tuple(sl)]


def equivariance_matrices(
    network: torch.nn.Module,
    image: torch.Tensor,
    scales: Sequence[float],
    crop: int | None = None,
    device: str | torch.device | None = None,
    axes: Sequence[int] | None = None,
) -> dict[float, torch.Tensor]:
    """The Ω×Ω matrix of eq. 12 for one image at every scale.

    Args:
        network: multi-head network with ``features(x)`` or a plain network (one group); used as it is
            (put it in eval mode first).
        image: ``(C, *spatial)``.
        scales: scale changes ``s``.
        crop: centre-crop side at scale 1 (``None``: whole image).
        device: where the network runs (default: CPU or where its parameters are).
        axes: spatial axes rescaled (``None``: all; ``(2,)``: the axial axis of a volume only), see
            :func:`~seunet_monai.layers.rescale.scaled_size`.

    Returns:
        scale -> ``(Ω, Ω)`` float64 errors ``[k, k']`` (group k on the original, rescaled; group k' on the
        rescaled image), on the CPU.
    """
    if device is None:
        p = next(network.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    patch = centre_crop(image, crop).float()
    x = patch.unsqueeze(0).to(device)
    out = {}
    if isinstance(network, MultiHeadNetwork):  # it measures itself; its features are computed once here
        with torch.no_grad():
            reference = network.features(x)
        for s in scales:
            x_scaled = rescale_image(patch, s, axes).unsqueeze(0).to(device)
            out[float(s)] = network.check_equivariance(s, x, x_scaled, reference=reference)[0]
        return out
    ref_feats = network_features(network, x).float().cpu()
    for s in scales:
        feats = network_features(network, rescale_image(patch, s, axes).unsqueeze(0).to(device)).float().cpu()
        out[float(s)] = equivariance_matrix(resize_features(ref_feats, feats.shape[3:]), feats)[0]
    return out


def matched_error(matrix: torch.Tensor, matches: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Eq. 10 for one image: the mean over groups ``k`` of ``matrix[k, matches[k]]``.

    Args:
        matrix: ``(Ω, Ω)`` errors of eq. 12.
        matches: ``(Ω,)`` matched group of each group.
        mask: optional ``(Ω,)`` bool, the groups to average over (those with a partner,
            :func:`~seunet_monai.evaluation.equivariance.scale_partners`); ``nan`` when it selects none.
    """
    k = torch.arange(matrix.shape[0])
    errors = matrix[k, torch.as_tensor(matches, dtype=torch.long)]
    if mask is not None:
        errors = errors[torch.as_tensor(mask, dtype=torch.bool)]
    return float(errors.mean()) if errors.numel() else float("nan")


def scale_partners(
    sigmas: torch.Tensor | Sequence[float], scale: float, tolerance: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matched groups (:func:`matched_groups`) and which of them are real partners for eq. 10 at ``scale``.

    Group ``k`` has a partner when its matched group ``k'`` has ``σ_k' / σ_k`` within ``tolerance`` (relative) of
    ``s``: ``|σ_k' / (σ_k s) − 1| <= tolerance``. Groups without one (e.g. the largest σ when the image is
    enlarged) have no group that sees the rescaled image as they saw the original; averaging their error into
    eq. 10 would measure the σ layout, not the equivariance.

    Args:
        sigmas: σ of the Ω groups of one layer ``(Ω,)`` (positive).
        scale: the scale change ``s`` (> 0).
        tolerance: relative tolerance on the σ ratio (0.1: within 10%).

    Returns:
        ``(matches (Ω,) int64, has_partner (Ω,) bool)``.
    """
    if not tolerance >= 0:
        raise ValueError(f"scale_partners: tolerance must be >= 0, got {tolerance}.")
    matches = matched_groups(sigmas, scale)
    sig = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
    ratio = sig[matches] / sig
    return matches, (ratio / scale - 1.0).abs() <= tolerance + 1e-12


def equivariance_error(
    reference: torch.Tensor, test: torch.Tensor, matches: torch.Tensor | None = None
) -> torch.Tensor:
    """Relative equivariance error of eq. 10, per sample.

    ``Δ = mean_k ||S_s Φ_k(f) − Φ_{m(k)}(S_s f)||² / ||S_s Φ_k(f)||²`` with ``m`` the matched groups
    (:func:`matched_groups`); averaging the result over images gives eq. 10's ``(1/N) Σ_i``. With one
    group (a plain network) this is the error of the feature map against itself across scales.

    Args:
        reference: ``S_s Φ(f)`` ``(B, Ω, F, *spatial)``.
        test: ``Φ(S_s f)`` ``(B, Ω, F, *spatial)``.
        matches: ``(Ω,)`` group of the rescaled image matched to each group; default the identity.

    Returns:
        ``(B,)`` float64.
    """
    e = equivariance_matrix(reference, test)
    omega = e.shape[1]
    if matches is None:
        matches = torch.arange(min(omega, e.shape[2]))
    matches = torch.as_tensor(matches, dtype=torch.long).flatten()
    if matches.numel() != omega or int(matches.max()) >= e.shape[2] or int(matches.min()) < 0:
        raise ValueError(
            f"equivariance_error: matches must hold {omega} indices in [0, {e.shape[2]}), got {matches.tolist()}."
        )
    return e[:, torch.arange(omega), matches].mean(dim=1)


def group_partners(
    log_sigmas: torch.Tensor, sigma_source: str, scale: float, omega: int, tolerance: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matched groups and partner mask at one scale (:func:`scale_partners` of the σ ``exp(log_sigmas)``); without σ
    (``sigma_source == "head index"``: plain networks) every group is its own partner."""
    if sigma_source == "head index":
        return torch.arange(omega), torch.ones(omega, dtype=torch.bool)
    return scale_partners(log_sigmas.exp(), scale, tolerance)


def equivariance_rows(
    model_name: str,
    scales: Sequence[float],
    eq_sum: dict[float, torch.Tensor],
    eq_delta: dict[float, list[float]],
    eq_images: int,
    partners: dict[float, tuple[torch.Tensor, torch.Tensor]],
    omega: int,
    sigmas: torch.Tensor | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[float, np.ndarray]]:
    """Rows of ``equivariance.csv`` (eq. 10 per scale, every partner pair with its error, the groups without
    one), of ``equivariance_matrix.csv`` (eq. 12, long format; ``sigma_ratio`` ``σ_k'/σ_k``, ``nan`` without σ) and
    the mean matrices per scale."""
    eq_rows, eq_matrix_rows, eq_matrices = [], [], {}
    if not eq_images:
        return eq_rows, eq_matrix_rows, eq_matrices
    for s in scales:
        mat = (eq_sum[s] / eq_images).numpy()
        eq_matrices[s] = mat
        matches, has = partners[s]
        pairs = [(k, int(matches[k])) for k in range(omega) if bool(has[k])]
        values = [v for v in eq_delta[s] if not math.isnan(v)]
        eq_rows.append(
            {
                "model": model_name,
                "scale": s,
                "equivariance_error": float(np.mean(values)) if values else float("nan"),
                "num_images": eq_images,
                "matched_groups": " ".join(f"{k + 1}>{m + 1}" for k, m in pairs),
                "pair_errors": " ".join(f"{k + 1}>{m + 1}={mat[k, m]:.6g}" for k, m in pairs),
                "groups_without_partner": " ".join(str(k + 1) for k in range(omega) if not bool(has[k])),
            }
        )
        for k in range(omega):
            for kp in range(omega):
                eq_matrix_rows.append(
                    {
                        "model": model_name,
                        "scale": s,
                        "group": k + 1,
                        "group_rescaled": kp + 1,
                        "sigma_ratio": float(sigmas[kp] / sigmas[k]) if sigmas is not None else float("nan"),
                        "error": float(mat[k, kp]),
                        "matched": bool(has[k]) and int(matches[k]) == kp,
                    }
                )
    return eq_rows, eq_matrix_rows, eq_matrices
