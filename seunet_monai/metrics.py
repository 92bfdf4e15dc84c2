"""Segmentation scores of the paper's evaluation (sec. 4.2).

Segmentation scores
    The headline score is the IoU from a confusion matrix accumulated over the **whole test split**
    (the paper, sec. 4.2; ``bundle/docs/README.md``, Evaluation): binary tasks (2 classes) report the IoU of class 1 (the nucleus class), multi-class
    tasks the mean IoU over classes. Per-image averages (MONAI's default ``MeanIoU`` / ``DiceMetric``
    behaviour) give other numbers and are reported only as secondary columns.

    Conventions (shared by :class:`ConfusionIoU` and :class:`SegmentationScores`):

    - Predictions and labels may be class indices ``(B, 1, *spatial)`` or one-hot / class scores
      ``(B, C, *spatial)`` (argmax is taken over ``C``).
    - ``ignore_index``: label pixels with this value are excluded from every count (they are zeroed in both
      one-hot maps, so they add no true positive, false positive or false negative). When the value is a
      valid class index (``0 <= ignore_index < num_classes``) that class is also left out of the mean over
      classes.
    - A class absent from both prediction and label over the whole split has no IoU (``0/0``): it is left
      out of the mean over classes (``nan`` if no class is left; for binary tasks ``nan`` when the split
      holds no foreground and none is predicted).
    - Per image (secondary columns), MONAI's ``ignore_empty=True`` convention: a class absent from an
      image's label gives ``nan`` for that image and class and is left out of the averages.

    MONAI pieces used: ``ConfusionMatrixMetric`` with ``reduction="sum_batch"`` and
    ``compute_confusion_matrix_metric("threat score", ...)`` (TP / (TP + FP + FN) of the summed counts, i.e. the
    dataset-wide IoU per class). Written here: the per-image counts (:func:`confusion_counts`, one ``bincount``
    per image, equal to MONAI's ``get_confusion_matrix`` on :func:`masked_onehot` maps, which is several times
    slower on the CPU at the sweep's sizes), the per-image IoU and Dice from those counts (MONAI's
    ``compute_iou`` / ``compute_dice`` with ``ignore_empty=True`` give the same), and the reduction of
    per-class IoU to the paper's single number (class 1 for binary, mean over present classes otherwise).

The equivariance error (eq. 10, 12) is :mod:`seunet_monai.networks.equivariance` and
:mod:`seunet_monai.evaluation.equivariance`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import ConfusionMatrixMetric, compute_confusion_matrix_metric
from monai.utils import convert_to_tensor
from scipy.stats import pearsonr, spearmanr

from seunet_monai.fusion.heads import argmax

__all__ = [
    "ConfusionIoU",
    "SegmentationScores",
    "as_class_indices",
    "confusion_counts",
    "dataset_iou",
    "masked_onehot",
    "reduce_class_scores",
    "scale_correlation",
]


def as_class_indices(x: torch.Tensor, name: str = "input") -> torch.Tensor:
    """Class-index map ``(B, *spatial)`` (int64) from indices ``(B, 1, *spatial)`` or scores ``(B, C, *spatial)``.

    Args:
        x: ``(B, 1, *spatial)`` class indices, or ``(B, C, *spatial)`` one-hot maps / class scores (argmax).
        name: name used in error messages.
    """
    x = convert_to_tensor(x, track_meta=False)
    if x.ndim < 3:
        raise ValueError(f"{name}: expected (B, 1, *spatial) indices or (B, C, *spatial) scores, got {tuple(x.shape)}.")
    if x.shape[1] == 1:
        return x[:, 0].round().long() if x.is_floating_point() else x[:, 0].long()
    return argmax(x, dim=1)


def _checked_indices(
    pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class indices of ``pred`` and ``label`` ``(B, *spatial)`` and the mask of counted pixels, checked."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    p = as_class_indices(pred, "pred")
    y = as_class_indices(label, "label")
    if p.shape != y.shape:
        raise ValueError(
            f"pred and label must have the same batch and spatial shape, got {tuple(p.shape)} and {tuple(y.shape)}."
        )
    valid = torch.ones_like(y, dtype=torch.bool) if ignore_index is None else y != ignore_index
    yv = y[valid]
    if yv.numel() and (int(yv.min()) < 0 or int(yv.max()) >= num_classes):
        raise ValueError(
            f"label values must lie in [0, {num_classes}) (num_classes={num_classes}) or equal ignore_index="
            f"{ignore_index}; found values in [{int(yv.min())}, {int(yv.max())}]."
        )
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f"pred values must lie in [0, {num_classes}), found [{int(p.min())}, {int(p.max())}].")
    return p, y, valid


def masked_onehot(
    pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot maps ``(B, C, *spatial)`` of prediction and label with ignored pixels zeroed in both.

    Args:
        pred: prediction, indices ``(B, 1, *spatial)`` or scores ``(B, C, *spatial)``.
        label: label, indices ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
        num_classes: number of classes ``C``.
        ignore_index: label value excluded from all counts (or ``None``).

    Raises:
        ValueError: for mismatched spatial shapes or label / prediction values outside ``[0, C)``
            (other than ``ignore_index``).
    """
    p, y, valid = _checked_indices(pred, label, num_classes, ignore_index)
    classes = torch.arange(num_classes, device=y.device).view(1, -1, *([1] * (y.ndim - 1)))
    mask = valid.unsqueeze(1)
    p_oh = ((p.unsqueeze(1) == classes) & mask).float()
    y_oh = ((y.unsqueeze(1) == classes) & mask).float()
    return p_oh, y_oh


def confusion_counts(
    pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore_index: int | None = None
) -> torch.Tensor:
    """Per-image, per-class ``[TP, FP, TN, FN]`` counts ``(B, C, 4)`` (float64), in the layout of MONAI's
    ``get_confusion_matrix`` on the :func:`masked_onehot` maps, with the same checks and results.

    Counted with one ``bincount`` of ``label · C + pred`` over the batch instead of one-hot maps; exact.

    Args:
        pred: prediction, indices ``(B, 1, *spatial)`` or scores ``(B, C, *spatial)``.
        label: label, indices ``(B, 1, *spatial)`` or one-hot ``(B, C, *spatial)``.
        num_classes: number of classes ``C``.
        ignore_index: label value excluded from all counts (or ``None``).
    """
    p, y, valid = _checked_indices(pred, label, num_classes, ignore_index)
    c = int(num_classes)
    b = p.shape[0]
    pair = (y.clamp(0, c - 1) * c + p).reshape(b, -1)  # ignored pixels are dropped below
    offsets = (torch.arange(b, device=p.device) * c * c).unsqueeze(1)
    pair = (pair + offsets)[valid.reshape(b, -1)]
    joint = torch.bincount(pair, minlength=b * c * c).reshape(b, c, c).double().cpu()  # [image, label, pred]
    tp = joint.diagonal(dim1=1, dim2=2)
    fp = joint.sum(1) - tp
    fn = joint.sum(2) - tp
    tn = float(p[0].numel()) - tp - fp - fn  # ignored pixels count as TN, as in MONAI
    return torch.stack([tp, fp, tn, fn], dim=-1)


def reduce_class_scores(per_class: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Reduce per-class scores ``(..., C)`` to the paper's single number ``(...)``.

    Binary (``C == 2``): the score of class 1. Multi-class: the mean over classes, leaving out ``nan``
    (absent) classes and the class ``ignore_index`` when it is a valid class. ``nan`` when nothing is left.
    """
    num_classes = per_class.shape[-1]
    if num_classes == 2:
        return per_class[..., 1]
    keep = [c for c in range(num_classes) if c != ignore_index]
    vals = per_class[..., keep]
    return torch.nanmean(vals, dim=-1)


def dataset_iou(confusion: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """The paper's IoU of confusion counts summed over a split: ``[TP, FP, TN, FN]`` per class ``(..., C, 4)`` ->
    ``(...)``, i.e. TP / (TP + FP + FN) per class (MONAI's ``"threat score"``) reduced by
    :func:`reduce_class_scores`."""
    return reduce_class_scores(compute_confusion_matrix_metric("threat score", confusion), ignore_index)


class ConfusionIoU(ConfusionMatrixMetric):
    """Dataset-wide IoU (the paper, sec. 4.2; ``bundle/docs/README.md``, Evaluation) as a MONAI ``CumulativeIterationMetric``.

    Each call adds per-image TP/FP/TN/FN counts (:func:`confusion_counts`);
    :meth:`aggregate` sums them over everything seen since :meth:`reset` (``reduction="sum_batch"``) and
    returns one scalar: the IoU of class 1 for binary tasks, the mean IoU over present classes otherwise.
    Use it as ``key_metric`` in an Ignite evaluator through ``monai.handlers.IgniteMetricHandler``::

        "key_metric": {"val_iou": {"_target_": "IgniteMetricHandler",
            "metric_fn": {"_target_": "seunet_monai.metrics.ConfusionIoU", "num_classes": 2},
            "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}}

    Args:
        num_classes: number of classes ``C`` (>= 2).
        ignore_index: label value excluded from the counts (see module docstring).

    Inputs ``y_pred`` / ``y``: class indices ``(B, 1, *spatial)`` or class scores / one-hot
    ``(B, C, *spatial)`` (argmax over ``C``), or lists of decollated items without the batch dimension.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        super().__init__(
            include_background=True, metric_name="threat score", compute_sample=False, reduction="sum_batch"
        )
        if int(num_classes) < 2:
            raise ValueError(f"ConfusionIoU: num_classes must be >= 2, got {num_classes}.")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index  # handled by masked_onehot, not passed to MONAI's per-channel rule

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return confusion_counts(y_pred, y, self.num_classes, self.ignore_index)

    def per_class(self) -> torch.Tensor:
        """Dataset-wide IoU of every class ``(C,)`` (``nan`` for classes absent from prediction and label)."""
        return super().aggregate()[0]  # type: ignore[return-value]

    def aggregate(self, *args, **kwargs) -> torch.Tensor:  # type: ignore[override]
        """Dataset-wide IoU: scalar tensor (class 1 for binary, mean over present classes otherwise)."""
        return reduce_class_scores(self.per_class(), self.ignore_index)


class SegmentationScores:
    """Accumulates, over a split, the dataset-wide IoU and the per-image mean IoU and Dice.

    Memory: the confusion counts ``(C, 4)`` plus two floats per image; predictions are not kept.

    Args:
        num_classes: number of classes ``C`` (>= 2).
        ignore_index: label value excluded from the counts (see module docstring).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if int(num_classes) < 2:
            raise ValueError(f"SegmentationScores: num_classes must be >= 2, got {num_classes}.")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self.confusion = torch.zeros(self.num_classes, 4, dtype=torch.float64)
        self.image_iou: list[float] = []
        self.image_dice: list[float] = []

    def update(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred: class indices ``(B, 1, *spatial)`` or class scores ``(B, C, *spatial)``.
            label: class indices ``(B, 1, *spatial)``.
        """
        cm = confusion_counts(pred, label, self.num_classes, self.ignore_index)  # (B, C, 4)
        self.confusion += cm.sum(0)
        tp, fp, fn = cm[..., 0], cm[..., 1], cm[..., 3]
        empty = (tp + fn) == 0  # no label pixel of the class: nan, as MONAI's ignore_empty=True
        nan = torch.tensor(float("nan"), dtype=cm.dtype)
        iou = torch.where(empty, nan, tp / (tp + fp + fn).clamp_min(1))  # (B, C)
        dice = torch.where(empty, nan, 2 * tp / (2 * tp + fp + fn).clamp_min(1))  # (B, C)
        self.image_iou.extend(reduce_class_scores(iou, self.ignore_index).tolist())
        self.image_dice.extend(reduce_class_scores(dice, self.ignore_index).tolist())

    def per_class_iou(self) -> torch.Tensor:
        """Dataset-wide IoU per class ``(C,)``: TP / (TP + FP + FN) of the summed counts (``nan`` if 0/0)."""
        return compute_confusion_matrix_metric("threat score", self.confusion)

    def compute(self) -> dict[str, float]:
        """Scores so far: ``iou`` (dataset-wide), ``iou_per_image``, ``dice`` (per-image means), ``num_images``."""
        return {
            "iou": float(dataset_iou(self.confusion, self.ignore_index)),
            "iou_per_image": _nanmean(self.image_iou),
            "dice": _nanmean(self.image_dice),
            "num_images": len(self.image_iou),
        }


def _nanmean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(sum(vals) / len(vals)) if vals else float("nan")


def scale_correlation(estimates: np.ndarray, scales: Sequence[float]) -> dict[str, float]:
    """How well scale estimates ``ŝ`` ``(N, S)`` of N images at S scales follow the true scales: the Spearman and
    Pearson correlation of ``log ŝ`` with ``log s`` over all (image, scale) pairs.

    Returns:
        ``{"spearman", "pearson", "num_pairs"}``; ``nan`` correlations when the estimates are constant (e.g. one
        head) or fewer than 3 finite pairs exist.
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
