"""TensorBoard scalars of a multi-head model that MONAI's ``TensorBoardStatsHandler`` does not know about."""

from __future__ import annotations

import os
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch.utils.tensorboard import SummaryWriter

from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.distributed import is_main_process, unwrap

__all__ = ["MultiHeadStatsHandler"]


class MultiHeadStatsHandler:
    """Log a multi-head model's internals to TensorBoard every ``interval`` iterations.

    Tags (``k`` is 1-based):

    - ``loss/head{k}``: head k's loss of the last iteration (``loss.last_head_losses``),
    - ``loss_aux/head{k}``: its weighted part from the extra maps, for a loss with ``aux_channels``
      (``loss.last_aux_losses``),
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
            self.writer = SummaryWriter(log_dir=str(self.log_dir))
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.interval), self.log_iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.log_epoch)
        if self._own_writer:
            engine.add_event_handler(Events.COMPLETED, lambda _: self.writer.flush())

    def scalars(self) -> dict[str, float]:
        """The current values, ``{tag: value}``."""
        out: dict[str, float] = {}
        loss = unwrap(self.loss) if self.loss is not None else None
        if loss is not None:
            if hasattr(loss, "last_head_losses"):
                for k, v in enumerate(torch.as_tensor(loss.last_head_losses).flatten().tolist()):
                    out[f"loss/head{k + 1}"] = float(v)
            if getattr(loss, "aux_channels", 0) and hasattr(loss, "last_aux_losses"):
                for k, v in enumerate(torch.as_tensor(loss.last_aux_losses).flatten().tolist()):
                    out[f"loss_aux/head{k + 1}"] = float(v)
            if hasattr(loss, "weights"):
                with torch.no_grad():
                    for k, v in enumerate(loss.weights().flatten().tolist()):
                        out[f"loss_weight/omega{k + 1}"] = float(v)
        net = unwrap(self.network) if self.network is not None else None
        if isinstance(net, MultiHeadNetwork):
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
