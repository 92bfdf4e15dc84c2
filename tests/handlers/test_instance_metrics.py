"""Specification of ``seunet_monai.handlers.instance_metrics``: the evaluator's instance metrics (PQ, AJI, ...) per
fusion strategy, their keys, items without instance labels skipped with one log line, and the fused separation map
splitting touching nuclei when asked for."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch

from seunet_monai.evaluation.instance_scoring import INSTANCE_COLUMNS
from seunet_monai.handlers import FusionInstanceMetrics
from seunet_monai.transforms.separation import SplitSeparationd
from tests.instance_items import disk_items, square_pairs


def test_fusion_instance_metrics_keys_and_skip(caplog) -> None:
    items = disk_items(2)
    metric = FusionInstanceMetrics(["mean", "head:1"], fusion="pens", pixel_size_um=0.25)
    outputs, batch = [], []
    for it in items:
        x = it["image"][:1] - 0.5
        logits = torch.stack([torch.cat([torch.zeros_like(x), t * x]) for t in (2.0, 8.0)])  # (Ω, C, H, W)
        outputs.append({"pred": logits.softmax(1)})
        batch.append(it)
    batch[1] = {k: v for k, v in batch[1].items() if k != "instance"}
    engine = SimpleNamespace(state=SimpleNamespace(output=outputs, batch=batch, metrics={}))
    with caplog.at_level(logging.INFO, logger="seunet_monai.handlers.instance_metrics"):
        metric.iteration_completed(engine)
        metric.completed(engine, "test_instances")
    m = engine.state.metrics
    assert "test_instances" not in m
    assert set(m) == {f"test_{k}{sfx}" for k in INSTANCE_COLUMNS for sfx in ("", "_mean", "_head1")}
    metric2 = FusionInstanceMetrics(["pens", "mean"], fusion="pens", pixel_size_um=0.25)
    metric2.iteration_completed(engine)
    assert metric2.compute()["test_pq"] == metric2.compute()["test_pq_pens"]  # as test_iou and test_iou_pens
    assert m["test_pq"] == pytest.approx(1.0) and m["test_count_ratio_head1"] == pytest.approx(1.0)
    assert sum("no 'instance' key" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(ValueError, match="pixel_size_um"):
        FusionInstanceMetrics(["pens"], fusion="pens", pixel_size_um=0)


def test_fusion_instance_metrics_use_the_split_separation_maps() -> None:
    items = square_pairs("boundary")
    x = items[0]["image"]
    z = torch.stack([t * (x[:2] - 0.5) for t in (2.0, 8.0)])  # (Ω, 2, H, W): the class-1 logit, the map's logit
    classes = torch.cat([torch.zeros_like(z[:, :1]), z[:, :1]], dim=1).softmax(1)
    pred = torch.cat([classes, z[:, 1:].sigmoid()], dim=1)  # (Ω, C + A, H, W), as HeadsInferer(aux=True) gives
    out = SplitSeparationd(keys="pred", num_classes=2)({"pred": pred})
    engine = SimpleNamespace(state=SimpleNamespace(output=[out], batch=items, metrics={}))
    for separation, count in ((None, 0.5), ("boundary", 1.0)):
        metric = FusionInstanceMetrics(["pens", "pdist"], fusion="pens", pixel_size_um=0.25, separation=separation)
        metric.reset()
        metric.iteration_completed(engine)
        m = metric.compute()
        assert m["test_count_ratio"] == pytest.approx(count) and m["test_count_ratio_pdist"] == pytest.approx(count)
