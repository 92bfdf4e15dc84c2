"""Ignite handlers and handler helpers of the bundle, by job.

- :mod:`.checkpoint`: :class:`ResumableCheckpoint` (``last.pt``), :class:`RandomStates`, :class:`BestModelSaver`
  (``model.pt``);
- :mod:`.stats`: :class:`MultiHeadStatsHandler` (per-head losses, ω, σ, learning rate in TensorBoard);
- :mod:`.stop_on_non_finite`: :class:`StopOnNonFinite`;
- :mod:`.calibration`: :class:`ScaleFusionCalibration` (calibrates the ``"scale"`` fusion of ``model.pt`` when
  training completes);
- :mod:`.metrics`: :func:`dataset_iou`, :func:`fusion_iou_metrics` (dataset-wide IoU metric handlers);
- :mod:`.instance_metrics`: :class:`FusionInstanceMetrics` (PQ, AJI, F1, ... per fusion strategy);
- :mod:`.metrics_saver`: :func:`save_metrics` (``metrics.json``);
- :mod:`.status`: :class:`RunStatus` (``training_status.json``: progress and results of a run, for tools);
- :mod:`.output_transforms`: the ``output_transform`` / ``batch_transform`` callables of the handlers above.
"""

from .calibration import ScaleFusionCalibration
from .checkpoint import BestModelSaver, RandomStates, ResumableCheckpoint
from .instance_metrics import FusionInstanceMetrics
from .metrics import dataset_iou, fusion_iou_metrics
from .metrics_saver import save_metrics
from .output_transforms import (
    display_batch_transform,
    display_output_transform,
    fused_output_transform,
    label_display,
    loss_from_output,
    prediction_display,
)
from .stats import MultiHeadStatsHandler
from .status import RunStatus
from .stop_on_non_finite import StopOnNonFinite

__all__ = [
    "BestModelSaver",
    "FusionInstanceMetrics",
    "MultiHeadStatsHandler",
    "RandomStates",
    "ResumableCheckpoint",
    "RunStatus",
    "ScaleFusionCalibration",
    "StopOnNonFinite",
    "dataset_iou",
    "display_batch_transform",
    "display_output_transform",
    "fused_output_transform",
    "fusion_iou_metrics",
    "label_display",
    "loss_from_output",
    "prediction_display",
    "save_metrics",
]
