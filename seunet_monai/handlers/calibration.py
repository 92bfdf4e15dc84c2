"""Calibration of the ``"scale"`` fusion of the best model when training completes."""

from __future__ import annotations

import copy
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from seunet_monai.errors import ConfigValueError, set_interrupt_note
from seunet_monai.evaluation.calibration import DEFAULT_MAX_PIXELS, calibrate_checkpoint
from seunet_monai.fusion.scale import BUFFER_NAMES
from seunet_monai.runtime.distributed import is_main_process, unwrap
from seunet_monai.runtime.status import read_status, write_status

__all__ = ["DEFAULT_TIME_FRACTION", "ScaleFusionCalibration"]

#: default time budget of the calibration, as a fraction of the training it follows
DEFAULT_TIME_FRACTION = 0.2


class ScaleFusionCalibration:
    """Calibrate the ``"scale"`` fusion of the saved model when training completes.

    At ``COMPLETED`` the checkpoint (``ckpt_dir/model.pt``, the best validation epoch written by MONAI's
    ``CheckpointSaver``) is loaded into a copy of the network (the trainer's network, holding the last epoch's
    weights, is left alone), calibrated on ``data`` with
    :func:`seunet_monai.evaluation.calibration.calibrate_checkpoint` and written back atomically, with the
    original kept as ``model_uncalibrated.pt``. A network without the calibration buffers (e.g. a plain UNet)
    or a missing checkpoint is skipped with a log line. Only the main process runs it.

    The cost is bounded (whole images, the scales 0.5 .. 2, ``max_pixels``) and by default at most
    ``time_fraction`` of the training time (the epoch times of ``status``, else the trainer's run time); the plan
    and its expected time are logged first, then one line per scale. While it runs, ``status`` (the run's
    ``training_status.json``) says ``"calibrating"`` with its progress: attach this handler *before*
    :class:`~seunet_monai.handlers.RunStatus`, which writes ``"finished"`` afterwards. A Ctrl-C during the
    calibration keeps ``model.pt`` as training left it and says how to calibrate it later (``run calibrating``).

    Args:
        network: the trained network (``DistributedDataParallel`` is unwrapped).
        checkpoint: the checkpoint file to calibrate.
        data: the validation split (items with ``image`` and ``label``).
        scales: profile scales to calibrate (default those in 0.5 .. 2; ``"all"``: every profile scale).
        max_images: use at most this many (whole) validation images (default all that fit the budgets).
        max_pixels: pixel budget (``Σ`` over images and scales of the rescaled pixels; ``None``: none).
        time_fraction: time budget as a fraction of the training time (``None``: none).
        status: the run's status file (``None``: not written).
        config_dir: the folder of ``train.json`` and ``evaluate.json``, for the ``run calibrating`` command the
            Ctrl-C message gives.
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
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        time_fraction: float | None = DEFAULT_TIME_FRACTION,
        status: str | os.PathLike | None = None,
        config_dir: str | os.PathLike | None = None,
        report: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> None:
        if time_fraction is not None and not (
            isinstance(time_fraction, (int, float)) and math.isfinite(time_fraction) and time_fraction > 0
        ):
            raise ConfigValueError(
                "calibration#time_fraction must be a number > 0 (0.2: at most 20% of the training time) or null "
                f"(None on the command line) for no time budget, got {time_fraction!r}."
            )
        self.network = network
        self.checkpoint = Path(checkpoint)
        self.data = data
        self.scales = scales
        self.max_images = max_images
        self.max_pixels = max_pixels
        self.time_fraction = time_fraction
        self.status = None if status is None else Path(status)
        self.config_dir = Path(config_dir) if config_dir is not None else Path("bundle") / "configs"
        self.report = report
        self.kwargs = kwargs
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        """Run :meth:`__call__` at ``Events.COMPLETED``."""
        engine.add_event_handler(Events.COMPLETED, self)

    def training_seconds(self, engine: Engine | None) -> float | None:
        """The training's duration: the sum of the epoch times in ``status`` (earlier attempts of a resumed run
        included), else the trainer's run time in this process."""
        earlier = read_status(self.status) if self.status is not None else None
        times = (earlier or {}).get("epoch_times_s") or {}
        total = sum(float(v) for v in times.values() if isinstance(v, (int, float)))
        if total > 0:
            return total
        took = None if engine is None else engine.state.times.get(Events.COMPLETED.name)
        return float(took) if took else None

    def _progress(self, base: dict[str, Any]) -> Any:
        def write(progress: dict[str, Any]) -> None:
            if self.status is not None:
                write_status(self.status, "calibrating", **{**base, "calibration": progress})

        return write

    def __call__(self, engine: Engine | None = None) -> dict[str, Any] | None:
        """Calibrate and write back; returns the calibration result, or ``None`` when skipped."""
        if not is_main_process():
            return None
        net = unwrap(self.network)
        if not all(n in dict(net.named_buffers(recurse=False)) for n in BUFFER_NAMES):
            self.logger.info(f"scale-fusion calibration skipped: {type(net).__name__} has no fusion_* buffers.")
            return None
        if not self.checkpoint.is_file():
            self.logger.warning(
                f"scale-fusion calibration skipped: {self.checkpoint} does not exist (no validation ran?).")
            return None
        budget, note = None, None
        training = self.training_seconds(engine)
        if self.time_fraction is not None and training:
            budget = self.time_fraction * training
            note = f"{self.time_fraction:.0%} of the training's {training:.0f} s"
        base = {k: v for k, v in (read_status(self.status) or {}).items() if k not in ("state", "updated_utc")} \
            if self.status is not None else {}
        self._progress(base)({"scales_done": 0})
        configs = f"['{self.config_dir / 'train.json'}','{self.config_dir / 'evaluate.json'}']"
        set_interrupt_note(
            f"training finished; the scale-fusion calibration was stopped, {self.checkpoint} is kept as training "
            "wrote it (uncalibrated: fusion 'scale' falls back to 'pens'). Calibrate it later with `python -m "
            f"monai.bundle run calibrating --config_file \"{configs}\" --ckpt_dir {self.checkpoint.parent}` and "
            "the training's --dataset_dir and network_def overrides."
        )
        result = calibrate_checkpoint(
            copy.deepcopy(net), self.checkpoint, self.data, self.scales, max_images=self.max_images,
            max_pixels=self.max_pixels, max_seconds=budget, budget_note=note, report=self.report,
            on_progress=self._progress(base), **self.kwargs,
        )
        set_interrupt_note(f"training finished; {self.checkpoint} is written and calibrated.")
        return result
