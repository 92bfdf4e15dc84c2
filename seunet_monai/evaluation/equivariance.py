"""Measuring the equivariance error of a network on an image (eq. 10, 12) across test scales.

For an image ``f`` and a scale ``s``, the reference is ``S_s Φ(f)``: the last-layer features of ``f``
resampled to the size of the rescaled image (:func:`~seunet_monai.evaluation.rescale.resize_features`,
the same anti-aliased bilinear rule as for images); the test is ``Φ(S_s f)``: the features of the rescaled
image. Both come from one whole-image forward pass (no sliding window), so use small crops. Features are
``net.features(x)`` for multi-head networks and, for plain networks, the input of their last convolution
(:func:`~seunet_monai.evaluation.heads.network_features`). Zero padding and borders are included as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from seunet_monai.evaluation.heads import network_features
from seunet_monai.evaluation.rescale import rescale_image, resize_features
from seunet_monai.metrics import equivariance_matrix

__all__ = ["centre_crop", "equivariance_matrices", "matched_error"]


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
            :func:`~seunet_monai.evaluation.rescale.scaled_size`.

    Returns:
        scale -> ``(Ω, Ω)`` float64 errors ``[k, k']`` (group k on the original, rescaled; group k' on the
        rescaled image), on the CPU.
    """
    if device is None:
        p = next(network.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    patch = centre_crop(image, crop).float()
    ref_feats = network_features(network, patch.unsqueeze(0).to(device)).float().cpu()
    out = {}
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
            :func:`~seunet_monai.metrics.scale_partners`); ``nan`` when it selects none.
    """
    k = torch.arange(matrix.shape[0])
    errors = matrix[k, torch.as_tensor(matches, dtype=torch.long)]
    if mask is not None:
        errors = errors[torch.as_tensor(mask, dtype=torch.bool)]
    return float(errors.mean()) if errors.numel() else float("nan")
