"""Specification of ``seunet_monai.handlers.status``: a run's progress and results in one JSON file."""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine, Events

from seunet_monai.handlers import RunStatus
from seunet_monai.runtime.status import read_status


def _validator(values):
    values = iter(values)
    ev = Engine(lambda e, b: None)
    ev.state.best_metric, ev.state.best_metric_epoch = -1, -1

    def metrics(e):
        e.state.metrics["val_iou"] = next(values)
        if e.state.metrics["val_iou"] > e.state.best_metric:
            e.state.best_metric, e.state.best_metric_epoch = e.state.metrics["val_iou"], e.state.epoch

    ev.add_event_handler(Events.EPOCH_COMPLETED, metrics)
    return ev


def _trainer(validator, fail_at=None):
    def step(engine, batch):
        if fail_at is not None and engine.state.iteration == fail_at:
            raise RuntimeError("boom\nsecond line")
        return {"loss": torch.tensor(1.0)}

    trainer = Engine(step)

    def validate(engine):  # as MONAI's ValidationHandler: evaluator.run(global_epoch)
        state = validator.state
        state.max_epochs, state.epoch, state.iteration = engine.state.epoch, engine.state.epoch - 1, 0
        validator.run([0])

    trainer.add_event_handler(Events.EPOCH_COMPLETED, validate)
    return trainer


def test_run_status_follows_epochs_validation_and_the_end(tmp_path):
    path = tmp_path / "training_status.json"
    seen = []
    validator = _validator([0.5, 0.25, 0.75])
    trainer = _trainer(validator)
    RunStatus(path, validator=validator).attach(trainer)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append(read_status(path)))
    trainer.run([0, 0], max_epochs=3)
    assert [s["epoch"] for s in seen] == [1, 2, 3] and all(s["state"] == "running" for s in seen)
    assert seen[1]["metrics"] == {"val_iou": 0.25} and seen[1]["metrics_epoch"] == 2
    final = read_status(path)
    assert final["state"] == "finished" and final["max_epochs"] == 3 and final["iteration"] == 6
    assert sorted(final["epoch_times_s"]) == ["1", "2", "3"]
    assert final["best_metric"] == 0.75 and final["best_metric_epoch"] == 3


def test_run_status_records_a_failure_and_lets_the_error_through(tmp_path):
    path = tmp_path / "s.json"
    trainer = _trainer(_validator([0.5]), fail_at=3)
    RunStatus(path).attach(trainer)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.run([0, 0], max_epochs=2)
    status = read_status(path)
    assert status["state"] == "failed" and status["error"] == "RuntimeError: boom" and status["epoch"] == 2
