"""Instance metrics of the evaluator (``run evaluating``): PQ, SQ, RQ, AJI, F1, object Dice and count ratio per
fusion strategy, beside the IoU metrics in ``metrics.json``.

:class:`FusionInstanceMetrics` is one Ignite ``Metric`` for all strategies (the instances of each strategy are
computed once per image): it reads the decollated engine output (``pred``: per-head probabilities
``(Ω, C, H, W)``) and the decollated batch (``instance_key``: annotated instance labels ``(1, H, W)``), fuses,
post-processes (:class:`seunet_monai.evaluation.instance_scoring.InstanceScoring`) and, at the end, writes flat
keys into ``engine.state.metrics``: ``{prefix}_{column}`` for ``fusion`` (``test_pq``, ``test_aji``, ...) and
``{prefix}_{column}_{strategy}`` for every strategy of ``strategies`` (``test_pq_pens``, ``test_aji_head1``; ``head:k`` becomes
``headk``), ``column`` in :data:`~seunet_monai.evaluation.instance_scoring.INSTANCE_COLUMNS`. Items without
``instance_key`` are skipped, with one log line; with none the values are ``nan``. Single process: under
``torch.distributed`` each process reports its own items.

With ``separation`` (``"boundary"`` or ``"centre"``) and per-head separation maps ``(Ω, A, H, W)`` under
``separation_key`` in the output (:class:`seunet_monai.transforms.separation.SplitSeparationd` puts them there), the
maps are fused with each strategy's head weights (:func:`seunet_monai.fusion.auxiliary.fuse_auxiliary`) and guide
the instances (:class:`~seunet_monai.transforms.instances.NucleusInstances`); an output without them gives the
instances of the class mask alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from ignite.engine import Engine
from ignite.metrics import Metric

from seunet_monai.evaluation.instance_scoring import InstanceScoring
from seunet_monai.fusion.auxiliary import fuse_auxiliary
from seunet_monai.fusion.strategies import fuse

__all__ = ["FusionInstanceMetrics"]

logger = logging.getLogger(__name__)


class FusionInstanceMetrics(Metric):
    """Dataset-wide instance metrics of several fusion strategies (module docstring).

    Args:
        strategies: fusion strategies of :func:`seunet_monai.fusion.strategies.fuse` (``"pens"``, ``"head:1"``, ...).
        fusion: the strategy whose keys carry no suffix (added to ``strategies`` when missing).
        pixel_size_um: µm per pixel of the test images (> 0).
        prefix: key prefix (``"test"``).
        pred_key: key of the per-head probabilities ``(Ω, C, H, W)`` in the output.
        instance_key: key of the instance labels ``(1, H, W)`` in the batch.
        profile: the ``"scale"`` fusion's calibration (typically the network).
        nucleus_class: channel of the nucleus class.
        separation: ``None``, ``"boundary"`` or ``"centre"``: what the maps under ``separation_key`` are.
        separation_key: key of the per-head separation maps ``(Ω, A, H, W)`` in the output.
    """

    def __init__(
        self,
        strategies: Sequence[str],
        fusion: str,
        pixel_size_um: float,
        prefix: str = "test",
        pred_key: str = "pred",
        instance_key: str = "instance",
        profile: Any = None,
        nucleus_class: int = 1,
        separation: str | None = None,
        separation_key: str = "separation",
    ) -> None:
        self.listed = list(dict.fromkeys(strategies))
        self.strategies = list(dict.fromkeys([*strategies, fusion]))
        self.fusion = fusion
        self.prefix = prefix
        self.pred_key = pred_key
        self.instance_key = instance_key
        self.profile = profile
        self.pixel_size_um = pixel_size_um
        self.nucleus_class = int(nucleus_class)
        self.separation = separation
        self.separation_key = separation_key
        InstanceScoring(pixel_size_um, self.nucleus_class, separation=separation)  # checks the arguments now
        super().__init__(output_transform=lambda x: x)

    def reset(self) -> None:
        self.scoring = InstanceScoring(self.pixel_size_um, self.nucleus_class, separation=self.separation)
        self.skipped = 0

    def update(self, output: tuple[Any, Any]) -> None:
        """Add one item: ``(output item with pred_key, batch item with instance_key)``."""
        out, item = output
        if self.instance_key not in item:
            if not self.skipped:
                logger.info(
                    "instance metrics: a test item has no %r key (instance labels); such items are skipped",
                    self.instance_key,
                )
            self.skipped += 1
            return
        probs = torch.as_tensor(out[self.pred_key]).float()
        maps = None
        if self.separation is not None and self.separation_key in out:
            maps = torch.as_tensor(out[self.separation_key]).float()
        for st in self.strategies:
            fused = fuse(probs[None], st, profile=self.profile)[0]
            sep = None if maps is None else fuse_auxiliary(probs[None], maps[None], st, profile=self.profile)[0]
            self.scoring.update(st, fused, torch.as_tensor(item[self.instance_key]), separation=sep)

    def iteration_completed(self, engine: Engine) -> None:
        """Pairs the decollated output with the decollated batch (the labels are not in the output)."""
        outputs, batch = engine.state.output, engine.state.batch
        if isinstance(outputs, dict):
            outputs, batch = [outputs], [batch]
        for out, item in zip(outputs, batch):
            self.update((out, item))

    def compute(self) -> dict[str, float]:
        result = {}
        for st in self.strategies:
            cols = self.scoring.columns(st)
            if st == self.fusion:
                result.update({f"{self.prefix}_{k}": v for k, v in cols.items()})
            if st in self.listed:
                result.update({f"{self.prefix}_{k}_{st.replace(':', '')}": v for k, v in cols.items()})
        if self.skipped:
            logger.info("instance metrics: %d test item(s) without %r skipped", self.skipped, self.instance_key)
        return result

    def completed(self, engine: Engine, name: str) -> None:
        """Writes the flat keys of :meth:`compute` (not one dict under ``name``)."""
        engine.state.metrics.update(self.compute())
