"""Specification of ``seunet_monai.handlers``: resumable checkpoint and multi-head TensorBoard scalars."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Engine, Events

from seunet_monai.handlers import MultiHeadStatsHandler, ResumableCheckpoint
from seunet_monai.losses import MultiHeadLoss


def _setup(epochs: int = 2):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=epochs * 3)

    def step(engine, batch):
        opt.zero_grad()
        loss = net(batch).pow(2).mean()
        loss.backward()
        opt.step()
        sched.step()
        return loss.item()

    engine = Engine(step)
    data = [torch.randn(4, 3) for _ in range(3)]
    return net, opt, sched, engine, data


def test_saves_each_epoch_atomically_and_resumes_to_the_same_final_epoch(tmp_path):
    net, opt, sched, engine, data = _setup()
    handler = ResumableCheckpoint(tmp_path, {"network": net, "optimizer": opt, "scheduler": sched})
    handler.attach(engine)
    engine.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate())
    engine.run(data, max_epochs=2)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["trainer"]["iteration"] == 3 and sorted(ckpt) == ["network", "optimizer", "scheduler", "trainer"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
    saved = {k: v.clone() for k, v in net.state_dict().items()}

    net2, opt2, sched2, engine2, data2 = _setup()
    iterations = []
    engine2.add_event_handler(Events.ITERATION_STARTED, lambda e: iterations.append(e.state.iteration))
    ResumableCheckpoint(tmp_path, {"network": net2, "optimizer": opt2, "scheduler": sched2}, resume=True).attach(engine2)
    loaded = {}  # registered after the checkpoint handler: sees the restored weights
    engine2.add_event_handler(Events.STARTED, lambda e: loaded.update({k: v.clone() for k, v in net2.state_dict().items()}))
    engine2.run(data2, max_epochs=2)
    assert engine2.state.epoch == 2 and engine2.state.iteration == 6
    assert iterations == [4, 5, 6]  # continued, not restarted
    for k in saved:  # the weights started from the checkpoint
        torch.testing.assert_close(loaded[k], saved[k])
    assert sched2.last_epoch == 6


def test_resume_without_checkpoint_starts_fresh_with_a_warning(tmp_path, caplog):
    net, opt, sched, engine, data = _setup(1)
    ResumableCheckpoint(tmp_path, {"network": net}, resume=True).attach(engine)
    with caplog.at_level(logging.WARNING):
        engine.run(data, max_epochs=1)
    assert "does not exist" in caplog.text
    assert (tmp_path / "last.pt").is_file()


def test_resume_with_another_architecture_names_the_file(tmp_path):
    net, opt, sched, engine, data = _setup(1)
    ResumableCheckpoint(tmp_path, {"network": net}).attach(engine)
    engine.run(data, max_epochs=1)
    other = Engine(lambda e, b: 0.0)
    ResumableCheckpoint(tmp_path, {"network": torch.nn.Linear(5, 2)}, resume=True).attach(other)
    with pytest.raises(ValueError, match="last.pt"):
        other.run(data, max_epochs=2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="save_dict"):
        ResumableCheckpoint("x", {})
    with pytest.raises(ValueError, match="interval"):
        MultiHeadStatsHandler(log_dir="x", interval=0)
    with pytest.raises(ValueError, match="log_dir"):
        MultiHeadStatsHandler()


class _Net(torch.nn.Module):
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
    # writes event files when attached
    engine = Engine(lambda e, b: 0.0)
    handler.attach(engine)
    engine.run([0, 1], max_epochs=1)
    assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())
