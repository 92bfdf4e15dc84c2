"""Small pieces that connect a multi-head network to MONAI's engines: an inferer returning every head's
probabilities, Ignite output transforms that fuse them, the dataset-wide IoU used for validation, and
helpers for TensorBoard images.

The validator runs :class:`HeadsInferer`, so each decollated item's ``"pred"`` holds per-head class
probabilities ``(Ω, C, *spatial)``; each metric fuses them with its own strategy
(:func:`seunet_monai.fusion.fuse`), which is how one validation pass scores mean, PDist and PEns.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import torch
from monai.handlers import IgniteMetricHandler
from monai.inferers import Inferer, SimpleInferer
from monai.transforms import MapTransform

from seunet_monai.fusion import PAPER_STRATEGIES, fuse
from seunet_monai.metrics import ConfusionIoU

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
    "prediction_display",
]


def _unwrap(network: torch.nn.Module) -> torch.nn.Module:
    return network.module if hasattr(network, "module") and isinstance(network.module, torch.nn.Module) else network


def loss_from_output(output: Any) -> torch.Tensor:
    """The ``loss`` of a trainer's output, decollated (list of dicts) or not (dict)."""
    return output[0]["loss"] if isinstance(output, (list, tuple)) else output["loss"]


def head_probabilities(network: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-head class probabilities ``(B, Ω, C, *spatial)`` of ``network`` on ``x`` ``(B, C_in, *spatial)``.

    Uses ``network.forward_heads`` (SEUNet and other multi-head networks, any mode); a plain network
    (e.g. MONAI's ``BasicUNet``) is treated as one head: ``softmax(network(x), 1).unsqueeze(1)``.
    """
    net = _unwrap(network)
    if hasattr(net, "forward_heads"):
        return torch.softmax(net.forward_heads(x), dim=2)
    return torch.softmax(network(x), dim=1).unsqueeze(1)


class HeadsInferer(Inferer):
    """Run another inferer (default :class:`monai.inferers.SimpleInferer`) on per-head probabilities.

    The heads are flattened into channels ``(B, Ω * C, *spatial)`` while the wrapped inferer runs, so
    :class:`monai.inferers.SlidingWindowInferer` stitches them like any channel-first output, and reshaped
    to ``(B, Ω, C, *spatial)`` afterwards. An input no larger than the sliding window's ``roi_size`` in every
    dimension goes to the network whole (the network pads internally), instead of being padded up to the
    window as ``SlidingWindowInferer`` would do.

    Args:
        inferer: the inferer doing the actual work (windowing, padding, ...).
    """

    def __init__(self, inferer: Inferer | None = None) -> None:
        super().__init__()
        self.inferer = inferer if inferer is not None else SimpleInferer()

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        shape: list[tuple[int, int]] = []

        def flat(x: torch.Tensor) -> torch.Tensor:
            p = head_probabilities(network, x)  # type: ignore[arg-type]
            shape.append((p.shape[1], p.shape[2]))
            return p.flatten(1, 2)

        roi = getattr(self.inferer, "roi_size", None)
        small = roi is not None and all(int(r) <= 0 or n <= int(r) for n, r in zip(inputs.shape[2:], roi))
        out = flat(inputs) if small else self.inferer(inputs, flat, *args, **kwargs)
        heads, classes = shape[0]
        return out.reshape(out.shape[0], heads, classes, *out.shape[2:])


def fused_output_transform(
    strategy: str = "pens", pred_key: str = "pred", label_key: str = "label", profile: Any = None
) -> Callable[[Any], tuple[torch.Tensor, torch.Tensor]]:
    """An Ignite ``output_transform`` giving ``(fused probabilities (B, C, *spatial), labels (B, 1, *spatial))``.

    Accepts MONAI's decollated engine output (a list of dicts, ``pred`` per item ``(Ω, C, *spatial)``) or a
    batched dict (``pred`` ``(B, Ω, C, *spatial)``). Labels ``(B, *spatial)`` get a channel dim.

    Args:
        strategy: fusion strategy of :func:`seunet_monai.fusion.fuse` (``"mean"``, ``"pdist"``, ``"pens"``,
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


def dataset_iou(
    num_classes: int,
    output_transform: Callable[[Any], Any] = lambda x: x,
    ignore_index: int | None = None,
) -> IgniteMetricHandler:
    """Dataset-wide IoU (METHOD.md sec. 7) as an Ignite metric: :class:`seunet_monai.metrics.ConfusionIoU`
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
    return fused.argmax(0, keepdim=True).float() / max(classes - 1, 1)


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


def output_stem(image_path: str | os.PathLike) -> str:
    """The base name of an input image without its extension(s) (``a.ome.tif`` -> ``a.ome``; ``a.png`` -> ``a``)."""
    return Path(str(image_path)).stem


class SaveLabelMaskd(MapTransform):
    """Write a prediction of one decollated item as ``output_dir/<image base name>.png`` (class ids, uint8),
    and optionally its class probabilities as ``<base name>_prob.tif`` (float32, ``(C, H, W)``).

    Written here rather than with MONAI's ``SaveImaged`` so that files are written atomically (temporary
    name in the same folder, then ``os.replace``), keep exactly the input's base name, and keep the
    ``(H, W)`` orientation of the input as loaded (``PILReader(reverse_indexing=False)``).

    Args:
        keys: key of the class probabilities / scores ``(C, H, W)`` (argmax over ``C`` gives the mask).
        output_dir: folder of the outputs (created).
        image_key: key whose ``meta["filename_or_obj"]`` names the input file.
        save_probabilities: also write the probabilities.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: str | Sequence[str],
        output_dir: str | os.PathLike,
        image_key: str = "image",
        save_probabilities: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(output_dir)
        self.image_key = image_key
        self.save_probabilities = bool(save_probabilities)
        self.logger = logging.getLogger(__name__)

    def _source(self, d: Mapping[Hashable, Any]) -> str:
        img = d.get(self.image_key)
        meta = getattr(img, "meta", None) or d.get(f"{self.image_key}_meta_dict") or {}
        name = meta.get("filename_or_obj")
        if not name:
            raise ValueError(f"SaveLabelMaskd: no filename_or_obj in the metadata of key {self.image_key!r}.")
        return str(name)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from seunet_monai.data.io import atomic_save_png, ordinary_file_mode

        d = dict(data)
        stem = output_stem(self._source(d))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for key in self.key_iterator(d):
            probs = torch.as_tensor(d[key]).detach().float().cpu()
            if probs.ndim != 3:
                raise ValueError(f"SaveLabelMaskd: {key!r} must be (C, H, W) class scores, got {tuple(probs.shape)}.")
            mask = probs.argmax(0).numpy().astype(np.uint8)
            atomic_save_png(self.output_dir / f"{stem}.png", mask)
            if self.save_probabilities:
                import tifffile

                target = self.output_dir / f"{stem}_prob.tif"
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=self.output_dir)
                os.fchmod(fd, ordinary_file_mode())  # not mkstemp's 0600
                os.close(fd)
                try:
                    tifffile.imwrite(tmp, probs.numpy().astype(np.float32))
                    os.replace(tmp, target)
                finally:
                    if os.path.exists(tmp):
                        os.remove(tmp)
            self.logger.info(f"wrote {self.output_dir / (stem + '.png')}")
        return d
