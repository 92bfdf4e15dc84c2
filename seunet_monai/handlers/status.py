"""The trainer's status file, ``training_status.json``: :class:`RunStatus`, an Ignite handler writing the epochs,
epoch times, the latest validation metrics, the best model so far, finished or failed (the file format:
:mod:`seunet_monai.runtime.status`).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from seunet_monai.errors import interrupt_note
from seunet_monai.runtime.distributed import is_main_process
from seunet_monai.runtime.status import read_status, write_status

__all__ = ["RunStatus"]

logger = logging.getLogger(__name__)


def _scalar(v: Any) -> Any:
    if torch.is_tensor(v) and v.numel() == 1:
        v = v.item()
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None  # JSON has no NaN
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


class RunStatus:
    """Write the trainer's progress to ``path`` (e.g. ``output_dir/training_status.json``) at every epoch.

    Fields: ``state``; ``epoch`` (last completed), ``max_epochs``, ``start_epoch`` (where this process started:
    > 0 after a resume), ``iteration``; ``epoch_times_s`` (``{epoch: seconds}``, kept from earlier attempts of
    the same run); ``metrics`` (the validator's metrics of the last validation) and ``metrics_epoch``;
    ``best_metric`` / ``best_metric_epoch`` (the validator's); ``error`` (first line, when failed).

    Attach it after the ``ValidationHandler`` and the :class:`~seunet_monai.handlers.ResumableCheckpoint` in the
    trainer's handler list, so that an epoch's entry holds its validation and a resumed run's first entry its
    restored epoch. Only the main process writes.

    Args:
        path: the status file.
        validator: the evaluator whose metrics are reported (``None``: none).
    """

    def __init__(self, path: str | os.PathLike, validator: Engine | None = None) -> None:
        self.path = Path(path)
        self.validator = validator
        self.fields: dict[str, Any] = {}
        self._t_epoch = 0.0

    def attach(self, engine: Engine) -> None:
        """Register on ``STARTED``, ``EPOCH_STARTED``, ``EPOCH_COMPLETED``, ``COMPLETED`` and ``EXCEPTION_RAISED``."""
        if not is_main_process():
            return
        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)
        engine.add_event_handler(Events.EXCEPTION_RAISED, self.failed)

    def _write(self, state: str, engine: Engine) -> None:
        self.fields.update(
            epoch=int(engine.state.epoch), max_epochs=engine.state.max_epochs, iteration=int(engine.state.iteration)
        )
        if self.validator is not None:
            v = self.validator.state
            best = getattr(v, "best_metric", None)
            if best is not None and getattr(v, "best_metric_epoch", -1) not in (None, -1):
                self.fields.update(best_metric=_scalar(best), best_metric_epoch=int(v.best_metric_epoch))
        write_status(self.path, state, **self.fields)

    def started(self, engine: Engine) -> None:
        """A (resumed) run starts: keeps the epoch times of an earlier attempt of the same run."""
        earlier = read_status(self.path) or {}
        times = {k: v for k, v in (earlier.get("epoch_times_s") or {}).items() if int(k) <= engine.state.epoch}
        self.fields = {"start_epoch": int(engine.state.epoch), "epoch_times_s": times}
        if engine.state.epoch and earlier.get("metrics") is not None:
            self.fields.update(metrics=earlier["metrics"], metrics_epoch=earlier.get("metrics_epoch"))
        self._write("running", engine)

    def _epoch_started(self, engine: Engine) -> None:
        self._t_epoch = time.perf_counter()

    def epoch_completed(self, engine: Engine) -> None:
        """Record the epoch's time and, when it ran, its validation."""
        epoch = int(engine.state.epoch)
        self.fields.setdefault("epoch_times_s", {})[str(epoch)] = round(time.perf_counter() - self._t_epoch, 3)
        v = self.validator.state if self.validator is not None else None
        if v is not None and v.metrics and int(v.epoch) == epoch:  # MONAI's evaluator runs "epoch" global_epoch
            self.fields["metrics"] = {k: _scalar(x) for k, x in v.metrics.items()}
            self.fields["metrics_epoch"] = epoch
        self._write("running", engine)

    def completed(self, engine: Engine) -> None:
        """The run finished."""
        self._write("finished", engine)

    def failed(self, engine: Engine, e: BaseException) -> None:
        """The run failed (or was interrupted: Ctrl-C): write the error's first line (for an interruption, what
        was kept and how to go on: :func:`seunet_monai.errors.interrupt_note`), then let the exception go on."""
        interrupted = isinstance(e, KeyboardInterrupt)
        if interrupted:
            self.fields["error"] = f"interrupted: {interrupt_note()}"
        else:
            self.fields["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        try:
            self._write("interrupted" if interrupted else "failed", engine)
        except Exception:  # noqa: BLE001 - the original error matters more than the status file
            logger.exception("could not write %s", self.path)
        raise e
