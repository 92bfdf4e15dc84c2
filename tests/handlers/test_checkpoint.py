"""Specification of ``seunet_monai.handlers.checkpoint``: the resumable last.pt, random states, the best-model saver."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Engine, Events

from seunet_monai.handlers import ResumableCheckpoint


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
    handler = ResumableCheckpoint(tmp_path, {"model": net, "optimizer": opt, "scheduler": sched})
    handler.attach(engine)
    engine.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate())
    engine.run(data, max_epochs=2)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["trainer"]["iteration"] == 3 and sorted(ckpt) == ["model", "optimizer", "scheduler", "trainer"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
    saved = {k: v.clone() for k, v in net.state_dict().items()}

    net2, opt2, sched2, engine2, data2 = _setup()
    iterations = []
    engine2.add_event_handler(Events.ITERATION_STARTED, lambda e: iterations.append(e.state.iteration))
    ResumableCheckpoint(tmp_path, {"model": net2, "optimizer": opt2, "scheduler": sched2}, resume=True).attach(engine2)
    loaded = {}  # registered after the checkpoint handler: sees the restored weights
    engine2.add_event_handler(
        Events.STARTED, lambda e: loaded.update({k: v.clone() for k, v in net2.state_dict().items()})
    )
    engine2.run(data2, max_epochs=2)
    assert engine2.state.epoch == 2 and engine2.state.iteration == 6
    assert iterations == [4, 5, 6]  # continued, not restarted
    for k in saved:  # the weights started from the checkpoint
        torch.testing.assert_close(loaded[k], saved[k])
    assert sched2.last_epoch == 6


def test_resume_without_checkpoint_starts_fresh_with_a_warning(tmp_path, caplog):
    net, opt, sched, engine, data = _setup(1)
    ResumableCheckpoint(tmp_path, {"model": net}, resume=True).attach(engine)
    with caplog.at_level(logging.WARNING):
        engine.run(data, max_epochs=1)
    assert "does not exist" in caplog.text
    assert (tmp_path / "last.pt").is_file()


def test_resume_with_another_architecture_names_the_file(tmp_path):
    net, opt, sched, engine, data = _setup(1)
    ResumableCheckpoint(tmp_path, {"model": net}).attach(engine)
    engine.run(data, max_epochs=1)
    other = Engine(lambda e, b: 0.0)
    ResumableCheckpoint(tmp_path, {"model": torch.nn.Linear(5, 2)}, resume=True).attach(other)
    with pytest.raises(ValueError, match="last.pt"):
        other.run(data, max_epochs=2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="save_dict"):
        ResumableCheckpoint("x", {})


# ------------------------------------------------------------------------------------------- issue 12
def _evaluator(metrics):
    """An engine standing for the validator: epoch k reports ``val_iou = metrics[k - 1]``."""
    values = iter(metrics)

    def step(engine, batch):
        return None

    ev = Engine(step)
    ev.state.best_metric, ev.state.best_metric_epoch = -1, -1
    ev.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(val_iou=next(values)))
    return ev


def _run_epoch(ev, epoch):
    """One validation as MONAI's ``Evaluator.run(global_epoch)`` does it: the evaluator's epoch is the trainer's."""
    ev.state.max_epochs, ev.state.epoch, ev.state.iteration = epoch, epoch - 1, 0
    ev.run([0])


def _validate(saver, metrics, net, tmp_path):
    """Run the validator for len(metrics) epochs; returns the mtime/content of model.pt after each epoch."""
    ev = _evaluator(metrics)
    saver.attach(ev)
    seen = []
    ev.add_event_handler(
        Events.EPOCH_COMPLETED,
        lambda e: seen.append((tmp_path / "model.pt").read_bytes() if (tmp_path / "model.pt").exists() else None),
    )
    ev.state.key_metric_name = "val_iou"
    for epoch, _ in enumerate(metrics, 1):
        with torch.no_grad():
            net.weight.fill_(float(epoch))
        _run_epoch(ev, epoch)
    return ev, seen


def test_best_model_saver_ignores_nan_and_keeps_the_best_across_a_resume(tmp_path):
    from seunet_monai.handlers import BestModelSaver

    net = torch.nn.Linear(3, 2)
    saver = BestModelSaver(str(tmp_path), {"model": net}, key_metric_name="val_iou")
    # item 8: a NaN validation metric never counts as best (MONAI's saver would save the first value)
    ev, seen = _validate(saver, [float("nan"), 0.5, 0.7], net, tmp_path)
    assert seen[0] is None and seen[1] is not None and seen[2] != seen[1]
    state = saver.state_dict()
    assert state["best_metric"] == pytest.approx(0.7) and state["best_metric_epoch"] == 3
    best3 = torch.load(tmp_path / "model.pt", weights_only=True)["weight"]
    assert torch.all(best3 == 3.0)

    # item 4: a resumed run (new saver, new evaluator) restores the best score; a worse epoch keeps model.pt
    resumed = BestModelSaver(str(tmp_path), {"model": net}, key_metric_name="val_iou")
    ev2 = _evaluator([0.6, 0.8])
    resumed.attach(ev2)
    resumed.load_state_dict(state)
    assert ev2.state.best_metric == pytest.approx(0.7) and ev2.state.best_metric_epoch == 3
    ev2.state.key_metric_name = "val_iou"
    with torch.no_grad():
        net.weight.fill_(4.0)
    _run_epoch(ev2, 4)
    assert torch.all(torch.load(tmp_path / "model.pt", weights_only=True)["weight"] == 3.0)  # 0.6 < 0.7
    with torch.no_grad():
        net.weight.fill_(5.0)
    _run_epoch(ev2, 5)
    assert torch.all(torch.load(tmp_path / "model.pt", weights_only=True)["weight"] == 5.0)  # 0.8 > 0.7


def test_random_states_round_trip_through_a_weights_only_checkpoint(tmp_path):
    import random

    import numpy as np
    from monai.transforms import Compose, RandFlipd, RandSpatialCropd

    from seunet_monai.handlers import RandomStates

    def pipeline():
        t = Compose([RandSpatialCropd("x", roi_size=(2, 2), random_size=False), RandFlipd("x", prob=0.5)])
        t.set_random_state(seed=3)
        return t

    def draws(t):
        x = {"x": torch.arange(16.0).reshape(1, 4, 4)}
        return [t(dict(x))["x"].tolist() for _ in range(4)], torch.rand(3).tolist(), np.random.rand(), random.random()

    t = pipeline()
    draws(t)  # advance every generator
    torch.save({"rng": RandomStates(t).state_dict()}, tmp_path / "c.pt")
    expected = draws(t)
    fresh = pipeline()
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    RandomStates(fresh).load_state_dict(torch.load(tmp_path / "c.pt", weights_only=True)["rng"])
    assert draws(fresh) == expected
    with pytest.raises(ValueError, match="random transforms"):
        RandomStates(Compose([RandFlipd("x", prob=0.5)])).load_state_dict(
            torch.load(tmp_path / "c.pt", weights_only=True)["rng"]
        )


def test_resume_recognises_a_model_file(tmp_path):
    from seunet_monai.errors import CheckpointError

    net, opt, sched, engine, data = _setup()
    torch.save(net.state_dict(), tmp_path / "last.pt")  # model.pt copied over last.pt
    ResumableCheckpoint(tmp_path, {"model": net, "optimizer": opt}, resume=True).attach(engine)
    with pytest.raises(CheckpointError, match="last.pt.*is a model file"):
        engine.run(data, max_epochs=1)


def test_checkpoint_file_permissions(tmp_path):
    """Item 12 of issue 12: last.pt is 0666 less the umask, not mkstemp's 0600."""
    import os
    import stat

    net, opt, sched, engine, data = _setup()
    old = os.umask(0o022)
    try:
        ResumableCheckpoint(tmp_path, {"model": net}).save()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "last.pt").stat().st_mode) == 0o644


def test_a_last_pt_of_an_older_version_with_the_network_under_network_resumes(tmp_path):
    net, opt, sched, engine, data = _setup()
    ResumableCheckpoint(tmp_path, {"model": net, "optimizer": opt}).attach(engine)
    engine.run(data, max_epochs=1)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    ckpt["network"] = ckpt.pop("model")  # the layout before the key was unified with model.pt
    torch.save(ckpt, tmp_path / "last.pt")
    net2, opt2, _, engine2, _ = _setup()
    ResumableCheckpoint(tmp_path, {"model": net2, "optimizer": opt2}, resume=True).attach(engine2)
    engine2.run(data, max_epochs=2)
    assert engine2.state.epoch == 2 and not torch.equal(net2.weight, _setup()[0].weight)


# ------------------------------------------------------------------------------------------- issue 25
def test_resume_with_more_epochs_than_the_schedule_is_refused_clearly(tmp_path):
    """`--resume true --epochs 6` on a finished 4-epoch run: the one-cycle schedule cannot be stretched."""
    from seunet_monai.errors import CheckpointError

    net, opt, sched, engine, data = _setup(2)
    ResumableCheckpoint(tmp_path, {"model": net, "optimizer": opt, "scheduler": sched}).attach(engine)
    engine.run(data, max_epochs=2)
    net, opt, sched, engine, data = _setup(3)
    ResumableCheckpoint(tmp_path, {"model": net, "optimizer": opt, "scheduler": sched}, resume="true").attach(engine)
    with pytest.raises(CheckpointError, match=r"lasts 6 iterations \(about 2 epochs\).*configures 9 \(3 epochs"):
        engine.run(data, max_epochs=3)


def test_a_full_disk_is_one_line_naming_the_file_and_the_old_one_stays(tmp_path, monkeypatch):
    import errno

    from seunet_monai.errors import CheckpointError
    from seunet_monai.handlers import checkpoint

    net, opt, sched, engine, data = _setup(2)
    ResumableCheckpoint(tmp_path, {"model": net}).attach(engine)
    engine.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate())
    engine.run(data, max_epochs=2)
    before = (tmp_path / "last.pt").read_bytes()

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "atomic_torch_save", full)
    net, opt, sched, engine, data = _setup(2)
    ResumableCheckpoint(tmp_path, {"model": net}).attach(engine)
    with pytest.raises(CheckpointError) as info:
        engine.run(data, max_epochs=2)
    assert str(tmp_path / "last.pt") in str(info.value) and "No space left" in str(info.value)
    assert "previous last.pt is intact" in str(info.value) and "\n" not in str(info.value)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_the_interrupt_note_says_what_is_kept_and_how_to_resume(tmp_path):
    from seunet_monai.errors import interrupt_note

    net, opt, sched, engine, data = _setup(2)
    ResumableCheckpoint(tmp_path, {"model": net}).attach(engine)
    notes = []
    engine.add_event_handler(Events.ITERATION_COMPLETED, lambda e: notes.append(interrupt_note()))
    engine.run(data, max_epochs=2)
    assert "nothing to resume" in notes[0]
    assert notes[-1] == (
        f"{tmp_path / 'last.pt'} keeps epoch 1 of 2 (and model.pt the best epoch so far); continue "
        "with the same command and --resume true."
    )
