"""What a scale sweep (:class:`~seunet_monai.evaluation.sweep.ScaleSweep`) does with one test image at one scale once
its per-head probabilities are predicted: the running scores of every fusion strategy, the calibrated scale
estimate, the instance metrics and the example thumbnails, all added to a
:class:`~seunet_monai.evaluation.sweep_results.SweepState`.

- :func:`score_image`: one image at one scale: dataset-wide IoU plus per-image IoU and Dice per strategy
  (:class:`seunet_monai.metrics.SegmentationScores`), the calibrated scale estimate
  (:func:`seunet_monai.fusion.scale.scale_head_weights`), the instance metrics and an example thumbnail.
- :func:`instance_labels`: an item's annotated instance labels, checked, or ``None`` where not measured.

Instance metrics: for the items that carry annotated instance labels (``instance_key``, e.g. MoNuSeg's
``test/instances/NAME.png``; rescaled with nearest neighbour like the class labels), at the ``instance_scales``
and for the ``instance_strategies``, the fused probabilities become nucleus instances
(:class:`~seunet_monai.transforms.instances.NucleusInstances` at ``pixel_size_um / s`` µm per pixel) scored
dataset-wide (:class:`~seunet_monai.evaluation.instance_scoring.InstanceScoring`): columns ``pq, sq, rq, aji, f1,
dice_obj, count_ratio`` of the tables, ``nan`` where not measured. Items without instance labels are skipped with
one log line. With ``separation`` (``"boundary"`` or ``"centre"``) and a network that predicts a separation map
(``aux_channels``), the per-head maps are fused with each strategy's head weights
(:func:`seunet_monai.fusion.auxiliary.fuse_auxiliary`) and guide the instances. The post-processing costs time
per megapixel of the rescaled image and strategy (``bundle/docs/README.md``), hence the sweep's defaults: the
scales in ``[0.5, 2]`` and the fusions without the single heads.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import torch
from monai.utils import convert_to_tensor

from seunet_monai.evaluation.instance_scoring import InstanceScoring
from seunet_monai.evaluation.sweep_results import SweepState
from seunet_monai.fusion.auxiliary import fuse_auxiliary
from seunet_monai.fusion.heads import argmax, winning_head
from seunet_monai.fusion.scale import apply_head_weights, scale_head_weights
from seunet_monai.fusion.strategies import fuse
from seunet_monai.metrics import SegmentationScores

__all__ = ["instance_labels", "score_image"]

logger = logging.getLogger(__name__)


def _thumb(x: torch.Tensor, spatial_dims: int, max_size: int = 192) -> np.ndarray:
    """A small 2D view for plots: the middle slice of 3D data, subsampled to at most ``max_size`` px."""
    if spatial_dims == 3:
        x = x.select(-3, x.shape[-3] // 2)
    step = max(1, int(math.ceil(max(x.shape[-2:]) / max_size)))
    return x[..., ::step, ::step].cpu().numpy()


def score_image(
    sweep: Any,
    run: SweepState,
    index: int,
    j: int,
    img_s: torch.Tensor,
    label_s: torch.Tensor,
    probs: torch.Tensor,
    per_image: dict[str, np.ndarray],
    instance_s: torch.Tensor | None = None,
    separation_s: torch.Tensor | None = None,
) -> None:
    """Add one image at scale ``run.scales[j]`` to ``run``: scores of every strategy, the calibrated scale estimate
    (into ``per_image["estimate"][j]``), and an example thumbnail when asked for; the instance metrics when
    ``instance_s`` is given, guided by the per-head separation maps ``separation_s`` when given.

    Args:
        sweep: the :class:`~seunet_monai.evaluation.sweep.ScaleSweep` (``ignore_index``: label value excluded from
            all scores; the first ``num_examples`` images are drawn at ``run.example_at``).
        run: the sweep's state (its scores are created at the first image, from the number of classes).
        index: the image's index among the test items.
        j: the scale's index in ``run.scales``.
        img_s: the rescaled image ``(C, *spatial)``.
        label_s: the rescaled class labels ``(1, 1, *spatial)``.
        probs: per-head probabilities ``(1, Ω, C, *spatial)``.
        per_image: this image's records over the scales (``"estimate"``: one value per scale).
        instance_s: instance labels ``(1, *spatial)`` at this scale, or ``None`` (not measured).
        separation_s: per-head separation maps ``(1, Ω, A, *spatial)``, or ``None``.

    Raises:
        ValueError: for labels that do not fit the prediction, naming the item and scale.
    """
    s, name = run.scales[j], run.names[index]
    if run.num_classes is None:
        run.num_classes = int(probs.shape[2])
        run.scores = {
            (s2, st): SegmentationScores(run.num_classes, sweep.ignore_index)
            for s2 in run.scales
            for st in run.strategies
        }
    label_s = label_s.to(probs.device)
    weights = estimate = None
    if run.profile is not None:  # one signature per image and scale: the "scale" row and the estimate share it
        weights, estimate = scale_head_weights(probs, run.profile)
    for st in run.strategies:
        fused = apply_head_weights(probs, weights) if st == "scale" else fuse(probs, st, profile=run.profile)
        pred = argmax(fused, dim=1, keepdim=True)
        try:
            run.scores[(s, st)].update(pred, label_s)
            if instance_s is not None and st in run.instance_strategies:
                sep = None
                if separation_s is not None:
                    sep = (
                        apply_head_weights(separation_s, weights)
                        if st == "scale"
                        else fuse_auxiliary(probs, separation_s, st, profile=run.profile)
                    )[0]
                run.instances.update((s, st), fused[0], instance_s, scale=s, separation=sep)
        except ValueError as e:
            raise ValueError(f"test item {index} ({name}) at scale {s:g}: {e}") from e
    if estimate is not None:
        per_image["estimate"][j] = float(estimate[0])
    if index < sweep.num_examples and s in run.example_at:
        run.examples.append(
            {
                "name": name,
                "scale": s,
                "strategy": "pens",
                "num_heads": run.omega,
                "image": _thumb(img_s, run.spatial_dims),
                "label": _thumb(label_s[0, 0], run.spatial_dims),
                "pred": _thumb(argmax(fuse(probs, "pens"), 1)[0], run.spatial_dims),
                "winner": _thumb(winning_head(probs)[0], run.spatial_dims),
            }
        )


def instance_labels(sweep: Any, run: SweepState, item: Any, index: int, shape: tuple[int, ...]) -> torch.Tensor | None:
    """The item's instance labels ``(1, *spatial)`` int64, or ``None`` (not measured, or not annotated: counted in
    ``run.instance_skipped``, logged once). Creates ``run.instances`` at the first annotated item.

    Args:
        sweep: the :class:`~seunet_monai.evaluation.sweep.ScaleSweep` (its ``instance_metrics``, ``instance_key``,
            ``pixel_size_um`` and ``separation``, used when the network predicts separation maps).
        run: the sweep's state.
        item: the test item (a dict).
        index: the item's index among the test items.
        shape: the item's spatial shape.

    Raises:
        ValueError: for an annotated item without ``pixel_size_um``, or instance labels of the wrong shape.
    """
    if not sweep.instance_metrics or not run.instance_strategies or not run.instance_scales:
        return None
    if sweep.instance_key not in item or run.spatial_dims != 2:
        if not run.instance_skipped:
            why = "2D images only" if run.spatial_dims != 2 else f"no {sweep.instance_key!r} key (instance labels)"
            logger.info("scale sweep: instance metrics skipped for test items with %s", why)
        run.instance_skipped += 1
        return None
    if sweep.pixel_size_um is None:
        raise ValueError(
            "pixel_size_um: the test items have instance labels but the pixel size is not set; "
            "give pixel_size_um (µm per pixel at scale 1, MoNuSeg 0.25) or instance_metrics=False."
        )
    inst = convert_to_tensor(item[sweep.instance_key], track_meta=False)
    inst = inst.unsqueeze(0) if inst.ndim == len(shape) else inst
    if tuple(inst.shape) != (1, *shape):
        raise ValueError(
            f"test item {index}: instance labels {tuple(inst.shape)} must be (1, *spatial) = {(1, *shape)}."
        )
    if run.instances is None:
        run.instances = InstanceScoring(sweep.pixel_size_um, separation=sweep.separation if run.aux_channels else None)
    run.instance_images += 1
    return inst.round().long() if inst.is_floating_point() else inst.long()
