"""Specification of ``seunet_monai.handlers.stats``: the multi-head TensorBoard scalars."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine

from seunet_monai.handlers import MultiHeadStatsHandler
from seunet_monai.losses import MultiHeadLoss
from seunet_monai.networks.base import MultiHeadNetwork


def test_bad_arguments():
    with pytest.raises(ValueError, match="interval"):
        MultiHeadStatsHandler(log_dir="x", interval=0)
    with pytest.raises(ValueError, match="log_dir"):
        MultiHeadStatsHandler()


class _Net(MultiHeadNetwork):
    def __init__(self):
        super().__init__()
        self.s = torch.nn.Parameter(torch.tensor([1.0, 2.0]))

    def sigmas(self):
        return {"enc1.conv1": self.s.detach(), "enc1.conv2": 2 * self.s.detach()}


def test_stats_handler_scalars_and_ddp_unwrapping(tmp_path):
    loss = MultiHeadLoss(2)
    loss(torch.randn(1, 2, 2, 4, 4), torch.zeros(1, 4, 4))
    net = _Net()
    wrapper = torch.nn.Module()
    wrapper.module = net  # what DistributedDataParallel looks like to the handler
    opt = torch.optim.Adam(list(net.parameters()) + list(loss.parameters()), lr=0.01)
    handler = MultiHeadStatsHandler(loss=loss, network=wrapper, optimizer=opt, log_dir=tmp_path)
    values = handler.scalars()
    assert values["loss/head1"] == pytest.approx(float(loss.last_head_losses[0]))
    assert values["loss_weight/omega1"] == pytest.approx(0.5) and values["loss_weight/omega2"] == pytest.approx(0.5)
    assert values["sigma/enc1.conv2/group2"] == pytest.approx(4.0)
    assert values["lr"] == pytest.approx(0.01)
    assert not any(k.startswith("loss_aux") for k in values)
    # writes event files when attached
    engine = Engine(lambda e, b: 0.0)
    handler.attach(engine)
    engine.run([0, 1], max_epochs=1)
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())


def test_the_extra_maps_part_of_each_head_loss_is_logged(tmp_path):
    loss = MultiHeadLoss(2, aux_channels=1)
    loss(torch.randn(1, 2, 3, 4, 4), torch.cat([torch.zeros(1, 1, 4, 4), torch.rand(1, 1, 4, 4)], 1))
    values = MultiHeadStatsHandler(loss=loss, log_dir=tmp_path).scalars()
    assert values["loss_aux/head2"] == pytest.approx(float(loss.last_aux_losses[1]))
    assert values["loss/head2"] > values["loss_aux/head2"] > 0
