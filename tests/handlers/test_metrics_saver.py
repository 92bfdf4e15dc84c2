"""Specification of ``seunet_monai.handlers.metrics_saver``: metrics.json, and how it compares with MetricsSaver."""

from __future__ import annotations

import json

import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import MetricsSaver

from seunet_monai.handlers import save_metrics


def test_metrics_json_holds_the_values_monai_metrics_saver_writes_and_the_run_information(tmp_path):
    engine = Engine(lambda e, b: None)
    engine.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(test_iou=0.123456789, test_iou_pens=torch.tensor(0.5))
    )
    MetricsSaver(save_dir=str(tmp_path / "monai"), metrics="*").attach(engine)
    engine.run([0], max_epochs=1)
    out = save_metrics(engine, tmp_path / "eval" / "metrics.json", checkpoint=tmp_path / "model.pt", split="test")
    ours = json.loads(out.read_text())
    monai = dict(line.split(",", 1) for line in (tmp_path / "monai" / "metrics.csv").read_text().splitlines())
    assert float(monai["test_iou"]) == pytest.approx(ours["metrics"]["test_iou"])  # where both write a number
    assert monai["test_iou_pens"] == "tensor(0.5000)" and ours["metrics"]["test_iou_pens"] == 0.5  # a tensor: not
    assert ours["split"] == "test" and ours["checkpoint"].endswith("model.pt")
    assert sorted(p.name for p in out.parent.iterdir()) == ["metrics.json"]  # written atomically, nothing left over
