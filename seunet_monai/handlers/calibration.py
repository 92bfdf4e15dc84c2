"""The end-of-training trigger of the ``"scale"`` fusion's calibration."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events

from seunet_monai.errors import set_interrupt_note
from seunet_monai.evaluation.checkpoint_calibration import CheckpointCalibration
from seunet_monai.runtime.distributed import is_main_process, unwrap
from seunet_monai.runtime.status import read_status, write_status

__all__ = ["ScaleFusionCalibration"]


class ScaleFusionCalibration:
    """Calibrate the ``"scale"`` fusion of the saved model when training completes.

    At ``COMPLETED`` it calls ``calibration`` (the bundle's ``calibration`` component, the same one ``run
    calibrating`` calls), which calibrates ``ckpt_dir/model.pt`` (the best validation epoch written by MONAI's
    ``CheckpointSaver``) and writes it back with the original kept as ``model_uncalibrated.pt``. This trigger adds
    what belongs to the training: the time budget (``calibration.time_fraction`` of the training's time: the
    epoch times of ``status``, else the trainer's run time), the status and the Ctrl-C note. A network without the
    calibration buffers (e.g. a plain UNet) or a missing checkpoint is skipped with a log line. Only the main process
    runs it.

    While it runs, ``status`` (the run's ``training_status.json``) says ``"calibrating"`` with its progress: attach
    this handler *before* :class:`~seunet_monai.handlers.RunStatus`, which writes ``"finished"`` afterwards. A
    Ctrl-C during the calibration keeps ``model.pt`` as training left it and says how to calibrate it later (``run
    calibrating``).

    Args:
        calibration: the calibration to run.
        status: the run's status file (``None``: not written).
        config_dir: the folder of ``train.json`` and ``calibrate.json``, for the ``run calibrating`` command the
            Ctrl-C message gives.
    """

    def __init__(
        self,
        calibration: CheckpointCalibration,
        status: str | os.PathLike | None = None,
        config_dir: str | os.PathLike | None = None,
    ) -> None:
        self.calibration = calibration
        self.status = None if status is None else Path(status)
        self.config_dir = Path(config_dir) if config_dir is not None else Path("bundle") / "configs"
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
        checkpoint = self.calibration.checkpoint
        if not self.calibration.can_calibrate():
            name = type(unwrap(self.calibration.network)).__name__
            self.logger.info(f"scale-fusion calibration skipped: {name} has no fusion_* buffers.")
            return None
        if not checkpoint.is_file():
            self.logger.warning(f"scale-fusion calibration skipped: {checkpoint} does not exist (no validation ran?).")
            return None
        base = (
            {k: v for k, v in (read_status(self.status) or {}).items() if k not in ("state", "updated_utc")}
            if self.status is not None
            else {}
        )
        self._progress(base)({"scales_done": 0})
        configs = f"['{self.config_dir / 'train.json'}','{self.config_dir / 'calibrate.json'}']"
        set_interrupt_note(
            f"training finished; the scale-fusion calibration was stopped, {checkpoint} is kept as training "
            "wrote it (uncalibrated: fusion 'scale' falls back to 'pens'). Calibrate it later with `python -m "
            f'monai.bundle run calibrating --config_file "{configs}" --ckpt_dir {checkpoint.parent}` and '
            "the training's --dataset_dir and network_def overrides."
        )
        result = self.calibration(self.training_seconds(engine), on_progress=self._progress(base))
        set_interrupt_note(f"training finished; {checkpoint} is written and calibrated.")
        return result
