"""One measurement of the ``"scale"`` fusion's calibration (:mod:`seunet_monai.fusion.scale`), and the profile made of
many.

- :func:`measure_heads`: one (image, scale) pass: image and label rescaled with :mod:`~seunet_monai.layers.rescale`,
  the heads predicted on the scale sweep's path (:func:`~seunet_monai.inferers.predict_heads` in
  :func:`calibration_inferer`'s windows), each head's confusion counts and the image's
  :func:`~seunet_monai.fusion.scale.head_signature`;
- :func:`profile_from_measurements`: the calibration's rows from the measurements of N images at P scales.

:func:`~seunet_monai.evaluation.calibration.calibrate_scale_fusion` plans and runs these passes on the validation
images within its budgets; the out-of-sample validation (:mod:`seunet_monai.evaluation.fusion_validation`) and the
fusion cache (:mod:`seunet_monai.evaluation.fusion_cache_build`) use them on stored measurements, so a calibration
made of stored measurements is the calibration's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.inferers import SlidingWindowInferer

from seunet_monai.fusion.heads import argmax
from seunet_monai.fusion.scale import head_signature
from seunet_monai.inferers import MIN_WINDOW, WHOLE_IMAGE_PIXELS, predict_heads, sweep_window
from seunet_monai.layers.rescale import rescale_image, rescale_label
from seunet_monai.metrics import confusion_counts, dataset_iou

__all__ = ["calibration_inferer", "measure_heads", "profile_from_measurements"]


def calibration_inferer(
    shape: Sequence[int], roi_size: int | Sequence[int] | None = None, overlap: float = 0.25, sw_batch_size: int = 4
) -> SlidingWindowInferer | None:
    """The inferer of one rescaled image of spatial ``shape``: ``roi_size`` windows when given; else the whole image
    up to the sweep's budget (:data:`~seunet_monai.inferers.WHOLE_IMAGE_PIXELS`; ``None``: whole), larger ones in the
    sweep's windows (:func:`~seunet_monai.inferers.sweep_window`)."""
    if roi_size is not None:
        roi = (int(roi_size),) * len(shape) if isinstance(roi_size, int) else tuple(int(r) for r in roi_size)
    else:
        roi = sweep_window(shape, WHOLE_IMAGE_PIXELS, (MIN_WINDOW,) * len(shape), MIN_WINDOW, sw_batch_size)
        if roi is None:
            return None
    return SlidingWindowInferer(
        roi_size=roi,
        sw_batch_size=sw_batch_size,
        overlap=overlap,
        mode="gaussian",
        device=torch.device("cpu"),
        progress=False,
    )


def measure_heads(
    network: torch.nn.Module,
    image: torch.Tensor,
    label: torch.Tensor,
    scale: float,
    num_classes: int,
    ignore_index: int | None = None,
    roi_size: int | Sequence[int] | None = None,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One (image, scale) pass of the calibration: rescale image and label, predict the heads, count and sign.

    Args:
        network: a multi-head network in eval mode, in :func:`~seunet_monai.evaluation.heads.output_heads_mode`.
        image: ``(C_in, *spatial)``; label: ``(1, *spatial)`` class indices.
        scale: the rescaling factor.
        num_classes: ``C``.
        ignore_index: label value left out of the counts (the signature is label-free and uses every pixel).
        roi_size, overlap, sw_batch_size: the windows (:func:`calibration_inferer`).
        device: where the network runs.

    Returns:
        ``(probs (Ω, C, *spatial) float32, label (*spatial) int64, signature (3Ω,) float64, confusion (Ω, C, 4)
        float64)`` on the CPU: the rescaled image's per-head probabilities and label, its
        :func:`~seunet_monai.fusion.scale.head_signature`, and each head's ``[TP, FP, TN, FN]`` per class
        (:func:`~seunet_monai.metrics.confusion_counts`).
    """
    img_s = rescale_image(image, scale)
    lab_s = rescale_label(label, scale).unsqueeze(0)  # (1, 1, *spatial)
    inferer = calibration_inferer(img_s.shape[1:], roi_size, overlap, sw_batch_size)
    probs = predict_heads(network, img_s, inferer, torch.device(device)).cpu()  # (1, Ω, C, *spatial)
    confusion = torch.stack(
        [
            confusion_counts(argmax(probs[:, k], 1, keepdim=True), lab_s, num_classes, ignore_index).sum(0)
            for k in range(probs.shape[1])
        ]
    )
    return probs[0], lab_s[0, 0], head_signature(probs)[0].cpu(), confusion


def profile_from_measurements(
    confusion: torch.Tensor, signature: torch.Tensor, ignore_index: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The calibration's rows from the measurements (:func:`measure_heads`) of N images at P scales.

    Args:
        confusion: ``(N, P, Ω, C, 4)`` each image's per-head counts at each scale.
        signature: ``(N, P, 3Ω)`` each image's signature at each scale.
        ignore_index: label value left out of the IoU's mean over classes (see :mod:`seunet_monai.metrics`).

    Returns:
        ``(iou (P, Ω), signature (P, 3Ω))`` float64: each head's dataset-wide IoU of the counts summed over the images
        (:func:`~seunet_monai.metrics.dataset_iou`), and per component the mean signature over the images where it is
        finite (NaN where it is nowhere).
    """
    sig = signature.double()
    mean_signature = sig.nan_to_num(nan=0.0).sum(0) / torch.isfinite(sig).double().sum(0)  # 0/0: NaN
    return dataset_iou(confusion.double().sum(0), ignore_index), mean_signature
