"""Dataset-wide IoU metric handlers of the validator and the evaluator.

Ours rather than Ignite's ``ConfusionMatrix`` + ``IoU`` / ``mIoU``: Ignite's IoU of a class absent from both
prediction and label is 0 (its denominator gets an epsilon), which pulls the multi-class mean down, where the
paper's dataset-wide IoU leaves absent classes out (``nan``, then ``nanmean``); the two agree whenever every class
is present (``tests/handlers/test_metrics.py`` checks that). MONAI's ``IgniteMetricHandler`` wraps ours and gathers
the counts across processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monai.handlers import IgniteMetricHandler

from seunet_monai.fusion.heads import PAPER_STRATEGIES
from seunet_monai.handlers.output_transforms import fused_output_transform
from seunet_monai.metrics import ConfusionIoU

__all__ = ["dataset_iou", "fusion_iou_metrics"]


def dataset_iou(
    num_classes: int,
    output_transform: Callable[[Any], Any] = lambda x: x,
    ignore_index: int | None = None,
) -> IgniteMetricHandler:
    """Dataset-wide IoU (the paper, sec. 4.2; see :mod:`seunet_monai.metrics`) as an Ignite metric:
    :class:`seunet_monai.metrics.ConfusionIoU`
    (one confusion matrix over the whole split; binary: IoU of class 1, multi-class: mean IoU over present
    classes; ``ignore_index`` excluded) wrapped in :class:`monai.handlers.IgniteMetricHandler`, which also
    gathers the counts across processes under ``torch.distributed``.

    Args:
        num_classes: number of classes ``C`` (>= 2).
        output_transform: maps the engine output to ``(scores (B, C, *spatial), labels (B, 1, *spatial))``.
        ignore_index: label value excluded from the counts (e.g. 255), or ``None``.
    """
    return IgniteMetricHandler(
        metric_fn=ConfusionIoU(num_classes=int(num_classes), ignore_index=ignore_index),
        output_transform=output_transform,
        save_details=False,
    )


def fusion_iou_metrics(
    num_classes: int,
    strategies: Sequence[str] = PAPER_STRATEGIES,
    prefix: str = "val_iou",
    pred_key: str = "pred",
    label_key: str = "label",
    ignore_index: int | None = None,
    profile: Any = None,
) -> dict[str, IgniteMetricHandler]:
    """``{f"{prefix}_{strategy}": dataset_iou(...)}`` for each fusion strategy (``head:k`` becomes ``headk``).

    Args:
        num_classes: number of classes.
        strategies: fusion strategies to score (default the paper's three: during training the ``"scale"``
            fusion is not calibrated yet and would only repeat PEns).
        prefix: metric name prefix.
        pred_key: key of the per-head probabilities in the engine output.
        label_key: key of the labels.
        ignore_index: label value excluded from the counts, or ``None``.
        profile: the ``"scale"`` fusion's calibration (typically the network), see :func:`fused_output_transform`.
    """
    return {
        f"{prefix}_{s.replace(':', '')}": dataset_iou(
            num_classes, fused_output_transform(s, pred_key, label_key, profile), ignore_index
        )
        for s in strategies
    }
