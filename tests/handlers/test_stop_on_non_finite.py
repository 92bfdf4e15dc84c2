"""Specification of ``seunet_monai.handlers.stop_on_non_finite``."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from seunet_monai.handlers import ResumableCheckpoint


def test_stop_on_non_finite_loss_names_epoch_and_iteration_before_any_checkpoint(tmp_path):
    """Item 11 of issue 12: the first NaN loss stops training before last.pt of that epoch is written."""
    from seunet_monai.errors import TrainingDivergedError
    from seunet_monai.handlers import StopOnNonFinite

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=1e12)
    losses = iter([1.0, 2.0, 3.0, 4.0, float("nan"), 1.0])
    engine = Engine(lambda e, b: {"loss": torch.tensor(next(losses))})
    StopOnNonFinite(network=net, optimizer=opt).attach(engine)  # first, as in train.json
    ResumableCheckpoint(tmp_path, {"model": net}).attach(engine)
    with pytest.raises(TrainingDivergedError, match=r"epoch 3, iteration 5 \(1 of the epoch\): the loss is nan"):
        engine.run([0, 0], max_epochs=3)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["trainer"]["iteration"] == 4  # end of epoch 2

    # NaN weights after a finite last loss are caught at the end of the epoch, before the checkpoint
    def step(engine, batch):
        with torch.no_grad():
            net.bias[0] = float("inf")  # e.g. the optimizer step after the last finite loss
        return {"loss": torch.tensor(1.0)}

    net = torch.nn.Linear(3, 2)
    engine = Engine(step)
    StopOnNonFinite(network=net).attach(engine)
    ResumableCheckpoint(tmp_path / "w", {"model": net}).attach(engine)
    with pytest.raises(TrainingDivergedError, match="epoch 1.*'bias' of the network"):
        engine.run([0], max_epochs=1)
    assert not (tmp_path / "w" / "last.pt").exists()
