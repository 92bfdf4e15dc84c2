"""Ignite ``output_transform`` / ``batch_transform`` callables of the bundle's handlers and metrics: the
trainer's loss, fused probabilities and labels for the IoU metrics, and label maps for TensorBoard images.

The validator runs :class:`seunet_monai.inferers.HeadsInferer`, so each decollated item's ``"pred"`` holds per-head
class probabilities ``(Ω, C, *spatial)``; each metric fuses them with its own strategy
(:func:`seunet_monai.fusion.strategies.fuse`), which is how one validation pass scores mean, PDist and PEns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from seunet_monai.fusion.heads import argmax
from seunet_monai.fusion.strategies import fuse

__all__ = [
    "display_batch_transform",
    "display_output_transform",
    "fused_output_transform",
    "label_display",
    "loss_from_output",
    "prediction_display",
]


def loss_from_output(output: Any) -> torch.Tensor:
    """The ``loss`` of a trainer's output, decollated (list of dicts) or not (dict).

    Not ``monai.handlers.from_engine(["loss"], first=True)``: for a batched dict (the trainer runs with
    ``decollate: false``) that returns a one-element tuple ``(loss,)``, which ``StatsHandler`` does not log.
    """
    return output[0]["loss"] if isinstance(output, (list, tuple)) else output["loss"]


def fused_output_transform(
    strategy: str = "pens", pred_key: str = "pred", label_key: str = "label", profile: Any = None
) -> Callable[[Any], tuple[torch.Tensor, torch.Tensor]]:
    """An Ignite ``output_transform`` giving ``(fused probabilities (B, C, *spatial), labels (B, 1, *spatial))``.

    Accepts MONAI's decollated engine output (a list of dicts, ``pred`` per item ``(Ω, C, *spatial)``) or a
    batched dict (``pred`` ``(B, Ω, C, *spatial)``). Labels ``(B, *spatial)`` get a channel dim.

    Args:
        strategy: fusion strategy of :func:`seunet_monai.fusion.strategies.fuse` (``"mean"``, ``"pdist"``, ``"pens"``,
            ``"scale"``, ``"head:k"``).
        pred_key: key of the per-head probabilities.
        label_key: key of the integer labels.
        profile: the ``"scale"`` fusion's calibration, typically the network (its buffers are read at each call).
    """

    def _transform(output: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(output, (list, tuple)):
            pred = torch.stack([torch.as_tensor(o[pred_key]) for o in output])
            label = torch.stack([torch.as_tensor(o[label_key]) for o in output])
        else:
            pred, label = torch.as_tensor(output[pred_key]), torch.as_tensor(output[label_key])
        pred = pred.as_tensor() if hasattr(pred, "as_tensor") else pred
        label = label.as_tensor() if hasattr(label, "as_tensor") else label
        if label.ndim == pred.ndim - 2:  # (B, *spatial) next to (B, Ω, C, *spatial)
            label = label.unsqueeze(1)
        return fuse(pred.float(), strategy, profile=profile), label.long()

    return _transform


def label_display(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Map a label map ``(1, *spatial)`` to ``[0, 1]`` for TensorBoard (class / (C - 1); ignore values -> 0)."""
    lab = torch.as_tensor(label).float()
    lab = torch.where((lab >= 0) & (lab < num_classes), lab, torch.zeros_like(lab))
    return lab / max(int(num_classes) - 1, 1)


def prediction_display(pred: torch.Tensor, strategy: str = "pens", profile: Any = None) -> torch.Tensor:
    """Fused label map of one item's per-head probabilities ``(Ω, C, *spatial)``, as ``(1, *spatial)`` in
    ``[0, 1]`` for TensorBoard (``profile``: the ``"scale"`` fusion's calibration)."""
    p = torch.as_tensor(pred).float()
    fused = fuse(p[None], strategy, profile=profile)[0] if p.ndim >= 4 else p
    classes = fused.shape[0]
    return argmax(fused, 0, keepdim=True).float() / max(classes - 1, 1)


def display_batch_transform(num_classes: int, image_key: str = "image", label_key: str = "label") -> Callable:
    """``batch_transform`` for ``TensorBoardImageHandler``: ``([images], [labels in [0, 1]])`` of a decollated
    batch (list of dicts) or a batched dict."""

    def _transform(batch: Any) -> tuple[list, list]:
        items = batch if isinstance(batch, (list, tuple)) else [dict(zip(batch, v)) for v in zip(*batch.values())]
        images = [torch.as_tensor(b[image_key]).float().clamp(0, 1) for b in items]
        labels = [label_display(b[label_key], num_classes) if label_key in b else None for b in items]
        return images, labels

    return _transform


def display_output_transform(strategy: str = "pens", pred_key: str = "pred", profile: Any = None) -> Callable:
    """``output_transform`` for ``TensorBoardImageHandler``: ``[fused label maps in [0, 1]]`` of a decollated
    output whose ``pred`` holds per-head probabilities ``(Ω, C, *spatial)`` (``profile``: see :func:`fuse`)."""

    def _transform(output: Any) -> list:
        items = output if isinstance(output, (list, tuple)) else [{pred_key: p} for p in output[pred_key]]
        return [prediction_display(o[pred_key], strategy, profile) for o in items]

    return _transform
