"""Instance metrics in the scale sweep and in the evaluator's metric: columns, defaults, skipping, errors."""

from __future__ import annotations

import csv
import json
import logging
import math
from types import SimpleNamespace

import pytest
import torch

from seunet_monai.evaluation.instance_scoring import INSTANCE_COLUMNS
from seunet_monai.evaluation.sweep import ScaleSweep, run_scale_sweep
from seunet_monai.handlers import FusionInstanceMetrics
from seunet_monai.transforms.separation import SeparationTarget, SplitSeparationd

from .conftest import ToyHeads

SCALES = [0.5, 1.0, 2.0, 4.0]
OPTS = dict(model_name="toy", roi_size=16, overlap=0.25, sw_batch_size=2, equivariance_images=0, num_examples=0,
            tensorboard=False)


def disk_items(n: int = 2, size: int = 48, radius: float = 5.0) -> list[dict[str, torch.Tensor]]:
    """Separated disks (radius 5 px: 4.9 µm² at 0.25 µm/px, kept at scale 0.5); channel 0 = 1 inside, so
    :class:`ToyHeads` predicts them exactly at scale 1; ``instance`` numbers the disks."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    items = []
    for k in range(n):
        inst = torch.zeros(1, size, size, dtype=torch.long)
        for i, (cy, cx) in enumerate([(10, 10), (10, 34), (34, 12), (33, 36)][: 3 + k % 2]):
            inst[0][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 7 * (i + 1)  # ids need not be contiguous
        img = torch.cat([(inst > 0).float(), torch.zeros(2, size, size)])
        items.append({"image": img, "label": (inst > 0).long(), "instance": inst})
    return items


def _rows(path):
    with open(path, newline="") as fh:
        return {(r["strategy"], float(r["scale"])): r for r in csv.DictReader(fh)}


def test_sweep_instance_columns_defaults(tmp_path, toy_heads) -> None:
    run_scale_sweep(toy_heads, disk_items(), tmp_path, scales=SCALES, pixel_size_um=0.25, **OPTS)
    rows = _rows(tmp_path / "eval" / "scale_sweep.csv")
    assert set(INSTANCE_COLUMNS) <= set(next(iter(rows.values())))
    for (st, s), r in rows.items():
        measured = not st.startswith("head") and 0.5 <= s <= 2  # the defaults: fusions, scales in [0.5, 2]
        assert math.isnan(float(r["pq"])) != measured, (st, s)
    for st in ("mean", "pdist", "pens"):
        r = rows[(st, 1.0)]
        for k in INSTANCE_COLUMNS:
            assert float(r[k]) == pytest.approx(1.0), (st, k)  # exact prediction at scale 1, 7 disks
    meta = json.loads((tmp_path / "eval" / "scale_sweep.json").read_text())
    inst = meta["instance_metrics"]
    assert inst["images"] == 2 and inst["scales"] == [0.5, 1.0, 2.0] and inst["strategies"] == ["mean", "pdist", "pens"]
    assert inst["pixel_size_um"] == 0.25 and inst["seconds"] >= 0
    pens = next(s for s in meta["summary"] if s["strategy"] == "pens")
    assert 0 < pens["pq_mean"] <= 1 and "aji_mean" in pens
    md = (tmp_path / "eval" / "scale_sweep.md").read_text()
    assert "instance PQ per strategy" in md and "| dice_obj |" in md


def test_sweep_instance_options(tmp_path, toy_heads) -> None:
    run_scale_sweep(toy_heads, disk_items(1), tmp_path, scales=SCALES, pixel_size_um=0.25, instance_scales=[4.0],
                    instance_strategies="all", **OPTS)
    rows = _rows(tmp_path / "eval" / "scale_sweep.csv")
    measured = {k for k, r in rows.items() if not math.isnan(float(r["aji"]))}
    assert measured == {(st, 4.0) for st in ("head1", "head2", "mean", "pdist", "pens")}
    assert float(rows[("head1", 4.0)]["count_ratio"]) == pytest.approx(1.0)  # µm sizes follow the scale


def test_sweep_items_without_instances_skip_with_one_line(tmp_path, toy_heads, caplog) -> None:
    items = [{k: v for k, v in it.items() if k != "instance"} for it in disk_items()]
    with caplog.at_level(logging.INFO, logger="seunet_monai.evaluation.sweep"):
        run_scale_sweep(toy_heads, items, tmp_path, scales=[1.0], **OPTS)  # no pixel size needed
    lines = [r.getMessage() for r in caplog.records if "instance metrics skipped" in r.getMessage()]
    assert len(lines) == 1 and "'instance'" in lines[0]
    rows = _rows(tmp_path / "eval" / "scale_sweep.csv")
    assert all(math.isnan(float(r["pq"])) for r in rows.values())


def test_sweep_instance_errors(tmp_path, toy_heads) -> None:
    with pytest.raises(ValueError, match="pixel_size_um"):
        run_scale_sweep(toy_heads, disk_items(1), tmp_path, scales=[1.0], **OPTS)
    assert ScaleSweep([0.25 * 2 ** 0.5, 1.0], instance_scales=[0.25 * 2 ** 0.5 + 1e-12]).instance_scales == [0.25 * 2 ** 0.5]
    with pytest.raises(ValueError, match="instance_scales"):
        ScaleSweep([1.0, 2.0], instance_scales=[3.0])
    with pytest.raises(ValueError, match="instance_strategies"):
        run_scale_sweep(toy_heads, disk_items(1), tmp_path / "b", scales=[1.0], pixel_size_um=0.25,
                        instance_strategies=["nope"], **OPTS)
    # instance_metrics=False: no pixel size needed, nothing measured
    run_scale_sweep(toy_heads, disk_items(1), tmp_path / "c", scales=[1.0], instance_metrics=False, **OPTS)


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


class ToyHeadsWithMap(ToyHeads):
    """:class:`ToyHeads` with a separation map per head: its logit is ``t_k * (x_1 - 0.5)`` (image channel 1)."""

    aux_channels = 1

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        extra = (x[:, 1:2] - 0.5).unsqueeze(1) * self.t.view(1, -1, 1, 1, 1)
        return torch.cat([super().forward_heads(x), extra], dim=2)


def square_pairs(mode: str) -> list[dict[str, torch.Tensor]]:
    """Two pairs of touching 16 px squares (16 µm² each at 0.25 µm/px): one object each for the class mask's
    distance, whose ridge runs along the pair; image channel 1 holds their separation target."""
    inst = torch.zeros(1, 40, 80, dtype=torch.long)
    inst[0, 4:20, 4:20], inst[0, 4:20, 20:36] = 1, 2
    inst[0, 22:38, 42:58], inst[0, 22:38, 58:74] = 3, 4
    target = torch.as_tensor(SeparationTarget(mode)(inst.numpy()))
    img = torch.cat([(inst > 0).float(), target, torch.zeros(1, 40, 80)])
    return [{"image": img, "label": (inst > 0).long(), "instance": inst}]


@pytest.mark.parametrize("mode", ["boundary", "centre"])
def test_the_sweep_separates_touching_nuclei_with_the_network_s_map(tmp_path, mode) -> None:
    torch.manual_seed(0)
    net, items = ToyHeadsWithMap(), square_pairs(mode)
    run_scale_sweep(net, items, tmp_path / "plain", scales=[1.0], pixel_size_um=0.25, **OPTS)
    run_scale_sweep(net, items, tmp_path / "sep", scales=[1.0], pixel_size_um=0.25, separation=mode, **OPTS)
    plain = _rows(tmp_path / "plain" / "eval" / "scale_sweep.csv")
    sep = _rows(tmp_path / "sep" / "eval" / "scale_sweep.csv")
    for st in ("mean", "pdist", "pens"):
        assert float(plain[(st, 1.0)]["count_ratio"]) == pytest.approx(0.5)  # each pair is one object
        assert float(sep[(st, 1.0)]["count_ratio"]) == pytest.approx(1.0) and float(sep[(st, 1.0)]["pq"]) > 0.8
        assert sep[(st, 1.0)]["iou"] == plain[(st, 1.0)]["iou"]  # the class mask is the same
    meta = json.loads((tmp_path / "sep" / "eval" / "scale_sweep.json").read_text())
    assert meta["instance_metrics"]["separation"] == mode
    assert meta["num_classes"] == 2


def test_a_separation_asked_of_a_network_without_maps_is_the_class_mask_alone(tmp_path, toy_heads, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="seunet_monai.evaluation.sweep"):
        run_scale_sweep(toy_heads, square_pairs("boundary"), tmp_path, scales=[1.0], pixel_size_um=0.25,
                        separation="boundary", **OPTS)
    assert any("predicts no separation map" in r.getMessage() for r in caplog.records)
    assert float(_rows(tmp_path / "eval" / "scale_sweep.csv")[("pens", 1.0)]["count_ratio"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="separation must be one of"):
        ScaleSweep([1.0], separation="contour")


def test_fusion_instance_metrics_use_the_split_separation_maps() -> None:
    net, items = ToyHeadsWithMap(), square_pairs("boundary")
    with torch.no_grad():
        pred = net.eval().head_outputs(net.forward_heads(items[0]["image"][None]))[0]  # (Ω, C + A, H, W)
    out = SplitSeparationd(keys="pred", num_classes=2)({"pred": pred})
    engine = SimpleNamespace(state=SimpleNamespace(output=[out], batch=items, metrics={}))
    for separation, count in ((None, 0.5), ("boundary", 1.0)):
        metric = FusionInstanceMetrics(["pens", "pdist"], fusion="pens", pixel_size_um=0.25, separation=separation)
        metric.reset()
        metric.iteration_completed(engine)
        m = metric.compute()
        assert m["test_count_ratio"] == pytest.approx(count) and m["test_count_ratio_pdist"] == pytest.approx(count)
