"""Instance metrics of fused class probabilities, as the evaluation reports them (``run evaluating``'s
``metrics.json`` and the scale sweep's tables).

:class:`InstanceScoring` keeps one :class:`~seunet_monai.evaluation.instances.InstanceMetrics` per key (a fusion
strategy, or a ``(scale, strategy)`` pair): each update turns fused class probabilities ``(C, H, W)`` into nucleus
instances with :class:`~seunet_monai.transforms.instances.NucleusInstances` (its defaults) at the given pixel
size and scores them against the annotated instance labels; with ``separation`` (``"boundary"`` or ``"centre"``)
the network's fused separation map, when an update gives one, goes to its ``boundary`` / ``centre`` argument.
:func:`instance_columns` names the dataset-wide
scores as the tables do (:data:`INSTANCE_COLUMNS`; the object Dice is ``dice_obj``, since ``dice`` is the
class-mask Dice there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from seunet_monai.evaluation.instances import InstanceMetrics
from seunet_monai.transforms.instances import NucleusInstances
from seunet_monai.transforms.separation import check_separation_mode

__all__ = ["INSTANCE_COLUMNS", "InstanceScoring", "instance_columns"]

#: instance columns of the sweep tables and suffixes of the ``metrics.json`` keys (``test_pq``, ...)
INSTANCE_COLUMNS = ("pq", "sq", "rq", "aji", "f1", "dice_obj", "count_ratio")


def instance_columns(scores: Mapping[str, Any] | None) -> dict[str, float]:
    """The :data:`INSTANCE_COLUMNS` of :meth:`InstanceMetrics.aggregate` scores (``dice`` -> ``dice_obj``);
    all ``nan`` for ``None`` (not measured)."""
    if scores is None:
        return {k: math.nan for k in INSTANCE_COLUMNS}
    return {k: float(scores["dice" if k == "dice_obj" else k]) for k in INSTANCE_COLUMNS}


class InstanceScoring:
    """Dataset-wide instance metrics per key of fused probabilities (module docstring).

    Args:
        pixel_size_um: µm per pixel of the images at scale 1 (> 0); at scale ``s`` the pixel size is
            ``pixel_size_um / s``.
        nucleus_class: channel of the nucleus class.
        match_iou: IoU above which a pair matches (0.5).
        postprocessing: more arguments of :class:`NucleusInstances` (e.g. ``min_nucleus_area_um2``).
        separation: ``None`` (the instances of the class mask alone), ``"boundary"`` or ``"centre"``: what the
            ``separation`` map of :meth:`update` is (:mod:`seunet_monai.transforms.separation`).

    Attributes:
        metrics: ``{key: InstanceMetrics}`` of the keys updated so far.
        seconds: time spent in instances and metrics, summed.
    """

    def __init__(
        self,
        pixel_size_um: float,
        nucleus_class: int = 1,
        match_iou: float = 0.5,
        postprocessing: Mapping[str, Any] | None = None,
        separation: str | None = None,
    ) -> None:
        if not (isinstance(pixel_size_um, (int, float)) and math.isfinite(pixel_size_um) and pixel_size_um > 0):
            raise ValueError(
                f"pixel_size_um must be a positive number (µm per pixel at scale 1), got {pixel_size_um!r}."
            )
        self.pixel_size_um = float(pixel_size_um)
        self.match_iou = float(match_iou)
        self.separation = check_separation_mode(separation)
        self.transform = NucleusInstances(nucleus_class=nucleus_class, dtype=np.int64, **dict(postprocessing or {}))
        self.metrics: dict[Hashable, InstanceMetrics] = {}
        self.seconds = 0.0

    def update(
        self, key: Hashable, fused: Any, instances: Any, scale: float = 1.0, separation: Any = None
    ) -> dict[str, float]:
        """Add one image under ``key``; returns its own scores.

        Args:
            key: the accumulator (e.g. ``"pens"`` or ``(0.5, "pens")``).
            fused: fused class probabilities ``(C, H, W)`` (tensor or array).
            instances: annotated instance labels ``(1, H, W)`` or ``(H, W)`` at the same size.
            scale: the image's scale relative to ``pixel_size_um``.
            separation: the fused separation map ``(1, H, W)`` of the image (used with the ``separation`` mode
                given at construction; ignored without one).
        """
        t0 = time.perf_counter()
        probs = fused.detach().float().cpu().numpy() if isinstance(fused, torch.Tensor) else np.asarray(fused)
        extra = {}
        if self.separation is not None and separation is not None:
            extra[self.separation] = (
                separation.detach().float().cpu().numpy()
                if isinstance(separation, torch.Tensor)
                else np.asarray(separation)
            )
        pred = self.transform(probs, pixel_size_um=self.pixel_size_um / float(scale), **extra)
        if key not in self.metrics:
            self.metrics[key] = InstanceMetrics(self.match_iou)
        scores = self.metrics[key].update(pred, instances)
        self.seconds += time.perf_counter() - t0
        return scores

    def columns(self, key: Hashable) -> dict[str, float]:
        """:func:`instance_columns` of ``key``'s dataset-wide scores (``nan`` when never updated)."""
        m = self.metrics.get(key)
        return instance_columns(m.aggregate() if m is not None and m.per_image else None)

    def settings(self, keys: Sequence[str] = ("min_nucleus_area_um2", "max_hole_area_um2", "marker_h_um")) -> dict:
        """The post-processing parameters, for the record."""
        return {
            "pixel_size_um": self.pixel_size_um,
            "match_iou": self.match_iou,
            "separation": self.separation,
            **{k: getattr(self.transform, k) for k in keys},
        }
