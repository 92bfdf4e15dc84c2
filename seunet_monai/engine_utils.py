"""Deprecated: the pieces of this module moved to modules named by MONAI component type.

- inferer: :mod:`seunet_monai.inferers` (``HeadsInferer``, ``head_probabilities``);
- output transforms and TensorBoard display helpers: :mod:`seunet_monai.handlers.output_transforms`;
- dataset-wide IoU metric handlers: :mod:`seunet_monai.handlers.metrics`;
- mask saving: :mod:`seunet_monai.transforms.post` (``SaveLabelMaskd``).

Kept so that older configs and imports (``seunet_monai.engine_utils.X``) keep working.
"""

from __future__ import annotations

from seunet_monai.handlers.metrics import dataset_iou, fusion_iou_metrics
from seunet_monai.handlers.output_transforms import (
    display_batch_transform,
    display_output_transform,
    fused_output_transform,
    label_display,
    loss_from_output,
    prediction_display,
)
from seunet_monai.inferers import HeadsInferer, head_probabilities
from seunet_monai.networks.utils import unwrap as _unwrap  # noqa: F401 - old private name
from seunet_monai.transforms.post import SaveLabelMaskd, output_stem

__all__ = [
    "HeadsInferer",
    "SaveLabelMaskd",
    "dataset_iou",
    "display_batch_transform",
    "display_output_transform",
    "fused_output_transform",
    "fusion_iou_metrics",
    "head_probabilities",
    "label_display",
    "loss_from_output",
    "output_stem",
    "prediction_display",
]
