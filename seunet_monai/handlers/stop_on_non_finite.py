"""Stop training at the first NaN or infinite loss, weight or buffer, with an error (not a silent success)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from ignite.engine import Engine, Events

from seunet_monai.errors import TrainingDivergedError
from seunet_monai.handlers.output_transforms import loss_from_output
from seunet_monai.runtime.distributed import unwrap

__all__ = ["StopOnNonFinite"]


class StopOnNonFinite:
    """Stop training with :class:`~seunet_monai.errors.TrainingDivergedError` at the first NaN or infinite loss
    (every iteration) or weight or buffer (end of every epoch, before validation), naming the epoch and
    iteration.

    Written by hand because Ignite's ``TerminateOnNan`` ends the run as if it had succeeded (the command exits
    0) and checks the loss only. Attach it first in the trainer's handler list: it then runs before any other
    handler of the same event, so no checkpoint with NaN weights is written (``last.pt`` and ``model.pt``
    keep the last good epoch).

    Args:
        output_transform: the loss from the trainer's output (default ``output["loss"]``).
        network: its parameters are checked at the end of every epoch; ``None`` skips that.
        optimizer: its learning rate is quoted in the message; ``None`` leaves it out.
    """

    def __init__(
        self,
        output_transform: Callable[[Any], Any] | None = None,
        network: torch.nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.output_transform = output_transform or loss_from_output
        self.network = network
        self.optimizer = optimizer

    def attach(self, engine: Engine) -> None:
        """Check the loss after every iteration and the weights after every epoch."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.check_loss)
        if self.network is not None:
            engine.add_event_handler(Events.STARTED, self._note_non_finite)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self.check_weights)

    def _tensors(self) -> Any:
        net = unwrap(self.network)
        yield from net.named_parameters()
        yield from ((n, b) for n, b in net.named_buffers() if b.is_floating_point())

    def _note_non_finite(self, engine: Engine) -> None:
        # buffers that are NaN by design before a calibration (SEUNet's fusion_* buffers) are not checked
        self._exempt = {n for n, t in self._tensors() if not torch.isfinite(t.detach()).all()}

    def _fail(self, engine: Engine, what: str) -> TrainingDivergedError:
        lr = f" at learning rate {self.optimizer.param_groups[0]['lr']:.3g}" if self.optimizer is not None else ""
        length = engine.state.epoch_length or 0
        in_epoch = (engine.state.iteration - 1) % length + 1 if length else engine.state.iteration
        return TrainingDivergedError(
            f"training diverged at epoch {engine.state.epoch}, iteration {engine.state.iteration} ({in_epoch} of "
            f"the epoch): {what}{lr}. Stopped before writing a checkpoint of this epoch; lower --learning_rate."
        )

    def check_loss(self, engine: Engine) -> None:
        """Raise when the iteration's loss is not finite."""
        loss = torch.as_tensor(self.output_transform(engine.state.output)).detach()
        if not torch.isfinite(loss).all():
            raise self._fail(engine, f"the loss is {loss.flatten()[0].item()}")

    def check_weights(self, engine: Engine) -> None:
        """Raise when a parameter or buffer (e.g. BatchNorm's running variance) of the network, finite at the
        start, is not finite any more."""
        exempt = getattr(self, "_exempt", set())
        for name, tensor in self._tensors():
            if name not in exempt and not torch.isfinite(tensor.detach()).all():
                raise self._fail(engine, f"{name!r} of the network holds NaN or infinite values")
