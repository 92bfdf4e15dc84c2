"""Ignite handlers the bundle needs that MONAI does not ship.

- :class:`MultiHeadStatsHandler`: TensorBoard scalars of a multi-head model: each head's loss, the loss
  weights ω_k (eq. 9), σ of every Gaussian-derivative layer and scale group, and the learning rate.
- :class:`ResumableCheckpoint`: writes ``ckpt_dir/last.pt`` atomically after every epoch and, when asked,
  restores it at start so that training continues to the same final epoch.
- :class:`ScaleFusionCalibration`: at the end of training, calibrates the ``"scale"`` fusion of the best
  checkpoint (``model.pt``) on the validation split and writes it back (:mod:`seunet_monai.scale_fusion`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint

from seunet_monai.bundle_utils import is_main_process

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["MultiHeadStatsHandler", "ResumableCheckpoint", "ScaleFusionCalibration"]


def _unwrap(module: Any) -> Any:
    """The wrapped module of ``DistributedDataParallel`` / ``DataParallel``, else ``module``."""
    inner = getattr(module, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else module


class MultiHeadStatsHandler:
    """Log a multi-head model's internals to TensorBoard every ``interval`` iterations.

    Tags (``k`` is 1-based):

    - ``loss/head{k}``: head k's loss of the last iteration (``loss.last_head_losses``),
    - ``loss_weight/omega{k}``: ω_k (``loss.weights()``),
    - ``sigma/{layer}/group{k}``: σ of group k of every layer in ``network.sigmas()`` (skipped for networks
      without σ, e.g. a plain UNet),
    - ``lr`` (and ``lr/group{i}`` for further parameter groups): the optimizer's learning rate.

    Only the main process (rank 0) writes. The writer is created at ``attach``, so a disabled handler or a
    non-zero rank creates no event file.

    Args:
        loss: a loss with ``weights()`` and ``last_head_losses`` (e.g. :class:`seunet_monai.losses.MultiHeadLoss`,
            also wrapped in ``DistributedDataParallel``); ``None`` skips the loss scalars.
        network: the network (``DistributedDataParallel`` is unwrapped); ``None`` skips σ.
        optimizer: its learning rate is logged; ``None`` skips it.
        log_dir: TensorBoard folder (ignored when ``summary_writer`` is given).
        summary_writer: an existing ``SummaryWriter`` to share.
        interval: log every this many iterations (and at the end of every epoch).
    """

    def __init__(
        self,
        loss: Any = None,
        network: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        log_dir: str | os.PathLike | None = None,
        summary_writer: SummaryWriter | None = None,
        interval: int = 1,
    ) -> None:
        if int(interval) < 1:
            raise ValueError(f"MultiHeadStatsHandler: interval must be >= 1, got {interval}.")
        if log_dir is None and summary_writer is None:
            raise ValueError("MultiHeadStatsHandler: give log_dir or summary_writer.")
        self.loss = loss
        self.network = network
        self.optimizer = optimizer
        self.log_dir = log_dir
        self.writer = summary_writer
        self._own_writer = summary_writer is None
        self.interval = int(interval)

    def attach(self, engine: Engine) -> None:
        """Register on ``engine``'s iteration and epoch events (main process only)."""
        if not is_main_process():
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.log_dir))
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self.log_iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.log_epoch)
        if self._own_writer:
            engine.add_event_handler(Events.COMPLETED, lambda _: self.writer.flush())

    def scalars(self) -> dict[str, float]:
        """The current values, ``{tag: value}``."""
        out: dict[str, float] = {}
        loss = _unwrap(self.loss) if self.loss is not None else None
        if loss is not None:
            if hasattr(loss, "last_head_losses"):
                for k, v in enumerate(torch.as_tensor(loss.last_head_losses).flatten().tolist()):
                    out[f"loss/head{k + 1}"] = float(v)
            if hasattr(loss, "weights"):
                with torch.no_grad():
                    for k, v in enumerate(loss.weights().flatten().tolist()):
                        out[f"loss_weight/omega{k + 1}"] = float(v)
        net = _unwrap(self.network) if self.network is not None else None
        if net is not None and hasattr(net, "sigmas"):
            with torch.no_grad():
                for layer, sig in net.sigmas().items():
                    for k, v in enumerate(torch.as_tensor(sig).flatten().tolist()):
                        out[f"sigma/{layer}/group{k + 1}"] = float(v)
        if self.optimizer is not None:
            for i, group in enumerate(self.optimizer.param_groups):
                out["lr" if i == 0 else f"lr/group{i}"] = float(group["lr"])
        return out

    def log_iteration(self, engine: Engine) -> None:
        """Write the loss scalars and learning rate at the current iteration."""
        step = engine.state.iteration
        for tag, value in self.scalars().items():
            if not tag.startswith("sigma/"):
                self.writer.add_scalar(tag, value, step)

    def log_epoch(self, engine: Engine) -> None:
        """Write σ of every layer and group (they change slowly) at the epoch's last iteration."""
        step = engine.state.iteration
        for tag, value in self.scalars().items():
            if tag.startswith("sigma/"):
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()


class ResumableCheckpoint:
    """Save a resumable training checkpoint after every epoch; optionally resume from it at start.

    Written by hand because MONAI's ``CheckpointSaver`` names interval checkpoints by their epoch
    (``checkpoint_epoch=N.pt``), so there is no stable ``last.pt`` to resume from, and ``CheckpointLoader``
    fails when the file is absent (a fresh run with ``resume`` on) and names neither the file nor the key on
    an architecture mismatch. The restore step follows ``CheckpointLoader`` (Ignite's
    ``Checkpoint.load_objects`` at ``STARTED``, keeping the configured ``max_epochs``).

    Args:
        ckpt_dir: folder of the checkpoint.
        save_dict: the objects to save and restore, e.g. ``{"network": net, "optimizer": opt,
            "scheduler": sched, "loss": loss}``; each needs ``state_dict`` / ``load_state_dict``. Wrapped
            (DDP) networks are saved unwrapped.
        engine_key: the engine this handler is attached to is added to ``save_dict`` under this key (its
            epoch and iteration counters), so that configs need not reference the trainer from inside its
            own handler list (a circular reference); ``None`` leaves it out.
        resume: restore ``ckpt_dir/filename`` at ``STARTED`` when it exists (a warning when it does not).
        filename: checkpoint name.
        save_interval: save every this many epochs (and after the last one).

    Only the main process writes; every process restores.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        save_dict: Mapping[str, Any],
        resume: bool = False,
        filename: str = "last.pt",
        save_interval: int = 1,
        engine_key: str | None = "trainer",
    ) -> None:
        if not save_dict:
            raise ValueError("ResumableCheckpoint: save_dict must name at least one object.")
        if int(save_interval) < 1:
            raise ValueError(f"ResumableCheckpoint: save_interval must be >= 1, got {save_interval}.")
        self.ckpt_dir = Path(ckpt_dir)
        self.save_dict = dict(save_dict)
        self.resume = bool(resume)
        self.filename = str(filename)
        self.save_interval = int(save_interval)
        self.engine_key = engine_key
        self.logger = logging.getLogger(__name__)

    @property
    def path(self) -> Path:
        """The checkpoint file, ``ckpt_dir / filename``."""
        return self.ckpt_dir / self.filename

    def attach(self, engine: Engine) -> None:
        """Restore at ``STARTED`` (when ``resume``), save at every ``save_interval``-th ``EPOCH_COMPLETED``."""
        if self.engine_key is not None:
            self.save_dict[self.engine_key] = engine
        if self.resume:
            engine.add_event_handler(Events.STARTED, self.load)
        elif self.path.is_file() and is_main_process():
            self.logger.warning(
                f"{self.path} exists from an earlier run and will be replaced at the end of epoch 1 "
                "(pass --resume true to continue it instead)."
            )
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._maybe_save)

    def state(self) -> dict[str, Any]:
        """The state dicts to save."""
        return {k: _unwrap(v).state_dict() for k, v in self.save_dict.items()}

    def _maybe_save(self, engine: Engine) -> None:
        if engine.state.epoch % self.save_interval == 0 or engine.state.epoch == engine.state.max_epochs:
            self.save(engine)

    def save(self, engine: Engine | None = None) -> None:
        """Write the checkpoint atomically (temporary file in the same folder, then ``os.replace``)."""
        if not is_main_process():
            return
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.filename}.", suffix=".tmp", dir=self.ckpt_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(self.state(), f)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        if engine is not None:
            self.logger.info(f"saved resumable checkpoint {self.path} (epoch {engine.state.epoch}).")

    def load(self, engine: Engine) -> None:
        """Restore every object of ``save_dict`` from the checkpoint, keeping ``engine``'s ``max_epochs``.

        Raises:
            ValueError: when the file cannot be read, lacks an object of ``save_dict``, does not fit the
                network, or has already passed the configured number of epochs.
        """
        if not self.path.is_file():
            self.logger.warning(f"resume requested but {self.path} does not exist: training from scratch.")
            return
        try:
            checkpoint = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure becomes a message naming the file
            raise ValueError(f"cannot read checkpoint {str(self.path)!r}: {e}") from e
        missing = [k for k in self.save_dict if k not in checkpoint]
        if missing:
            raise ValueError(f"checkpoint {str(self.path)!r} lacks the entries {missing} (has {sorted(checkpoint)}).")
        prior_max_epochs = engine.state.max_epochs
        to_load = {k: _unwrap(v) for k, v in self.save_dict.items()}
        try:
            Checkpoint.load_objects(to_load=to_load, checkpoint=checkpoint, strict=True)
        except (RuntimeError, KeyError, ValueError) as e:
            raise ValueError(
                f"checkpoint {str(self.path)!r} does not fit the configured training (key 'network_def' or the "
                f"optimizer/scheduler settings differ): {str(e).splitlines()[0]}"
            ) from e
        if prior_max_epochs is not None and engine.state.epoch > prior_max_epochs:
            raise ValueError(
                f"checkpoint {str(self.path)!r} is at epoch {engine.state.epoch}, beyond the configured "
                f"{prior_max_epochs} epochs (key 'epochs')."
            )
        engine.state.max_epochs = prior_max_epochs
        self.logger.info(
            f"resumed from {self.path}: epoch {engine.state.epoch}, iteration {engine.state.iteration}; "
            f"training continues to epoch {prior_max_epochs}."
        )


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
        net = _unwrap(self.network)
        if not all(n in dict(net.named_buffers(recurse=False)) for n in BUFFER_NAMES):
            self.logger.info(f"scale-fusion calibration skipped: {type(net).__name__} has no fusion_* buffers.")
            return None
        if not self.checkpoint.is_file():
            self.logger.warning(f"scale-fusion calibration skipped: {self.checkpoint} does not exist (no validation ran?).")
            return None
        from seunet_monai.evaluation.calibration import calibrate_checkpoint

        return calibrate_checkpoint(copy.deepcopy(net), self.checkpoint, self.data, self.scales,
                                    max_images=self.max_images, report=self.report, **self.kwargs)
