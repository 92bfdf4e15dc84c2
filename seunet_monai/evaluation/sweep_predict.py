"""The prediction step of a scale sweep (:class:`~seunet_monai.evaluation.sweep.ScaleSweep`): one test image rescaled
by one scale and its per-head probabilities predicted.

- :func:`predict_scale`: the image rescaled (:func:`~seunet_monai.layers.rescale.rescale_image`: anti-aliased when
  shrinking, bilinear when enlarging) and predicted whole when it fits the sweep's memory budget (``max_pixels``),
  else with MONAI's ``SlidingWindowInferer`` and windows of at least ``min_window`` px
  (:func:`~seunet_monai.inferers.sweep_window`), through the package's one inferer path
  (:func:`seunet_monai.inferers.predict_heads`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.inferers import SlidingWindowInferer

from seunet_monai.inferers import predict_heads, sweep_window
from seunet_monai.layers.rescale import rescale_image

__all__ = ["predict_scale"]


def predict_scale(
    sweep: Any, network: torch.nn.Module, image: torch.Tensor, scale: float, device: torch.device, roi: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...] | None]:
    """Rescale ``image`` ``(C, *spatial)`` by ``scale`` and predict it whole or by windows (:func:`sweep_window`).

    Args:
        sweep: the :class:`~seunet_monai.evaluation.sweep.ScaleSweep` (its ``scale_axes``, ``max_pixels``,
            ``min_window``, sliding-window settings, ``output_device`` and ``separation``: with one, the network's
            separation maps are predicted after the classes).
        network: the network in ``output_heads_mode``.
        image: the test image ``(C, *spatial)``.
        scale: the scale.
        device: where the network runs.
        roi: the smallest sliding window, one side per spatial axis.

    Returns:
        ``(rescaled image, per-head probabilities (1, Ω, C, *spatial) on output_device, window or None)``.
    """
    img_s = rescale_image(image, scale, sweep.scale_axes)
    window = sweep_window(img_s.shape[1:], sweep.max_pixels, roi, sweep.min_window, sweep.sw_batch_size)
    inferer = None
    if window is not None:
        inferer = SlidingWindowInferer(
            roi_size=window,
            sw_batch_size=sweep.sw_batch_size,
            overlap=sweep.overlap,
            mode=sweep.sw_mode,
            device=sweep.output_device,
            progress=False,
        )
    probs = predict_heads(network, img_s, inferer, device, aux=sweep.separation is not None)
    return img_s, probs.to(sweep.output_device), window
