"""Calibration of the ``"scale"`` fusion of the best model when training completes."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from seunet_monai.distributed import is_main_process
from seunet_monai.networks.utils import unwrap

__all__ = ["ScaleFusionCalibration"]


class ScaleFusionCalibration:
    """Calibrate the ``"scale"`` fusion of the saved model when training completes.

    At ``COMPLETED`` the checkpoint (``ckpt_dir/model.pt``, the best validation epoch written by MONAI's
    ``CheckpointSaver``) is loaded into a copy of the network (the trainer's network, holding the last epoch's
    weights, is left alone), calibrated on ``data`` with
    :func:`seunet_monai.evaluation.calibration.calibrate_checkpoint` and written back atomically, with the
    original kept as ``model_uncalibrated.pt``. A network without the calibration buffers (e.g. a plain UNet)
    or a missing checkpoint is skipped with a log line. Only the main process runs it.

    Args:
        network: the trained network (``DistributedDataParallel`` is unwrapped).
        checkpoint: the checkpoint file to calibrate.
        data: the validation split (items with ``image`` and ``label``).
        scales: profile scales to calibrate (default all of the network's ``fusion_scales``).
        max_images: use at most this many validation images (default all).
        report: optional JSON file for the calibration table.
        kwargs: further arguments of ``calibrate_scale_fusion`` (``ignore_index``, ``roi_size``, ``device``, ...).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        checkpoint: str | os.PathLike,
        data: Any,
        scales: Any = None,
        max_images: int | None = None,
        report: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> None:
        self.network = network
        self.checkpoint = Path(checkpoint)
        self.data = data
        self.scales = scales
        self.max_images = max_images
        self.report = report
        self.kwargs = kwargs
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        """Run :meth:`__call__` at ``Events.COMPLETED``."""
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine | None = None) -> dict[str, Any] | None:
        """Calibrate and write back; returns the calibration result, or ``None`` when skipped."""
        import copy

        from seunet_monai.scale_fusion import BUFFER_NAMES

        if not is_main_process():
            return None
        net = unwrap(self.network)
        if not all(n in dict(net.named_buffers(recurse=False)) for n in BUFFER_NAMES):
            self.logger.info(f"scale-fusion calibration skipped: {type(net).__name__} has no fusion_* buffers.")
            return None
        if not self.checkpoint.is_file():
            self.logger.warning(f"scale-fusion calibration skipped: {self.checkpoint} does not exist (no validation ran?).")
            return None
        from seunet_monai.evaluation.calibration import calibrate_checkpoint

        return calibrate_checkpoint(copy.deepcopy(net), self.checkpoint, self.data, self.scales,
                                    max_images=self.max_images, report=self.report, **self.kwargs)
