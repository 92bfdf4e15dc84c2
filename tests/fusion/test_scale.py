"""Specification of the scale-adaptive fusion (``fuse(probs, "scale")``), its calibration and its storage."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

import seunet_monai.fusion.scale as scale_fusion
from seunet_monai.evaluation.calibration import calibrate_scale_fusion
from seunet_monai.fusion.scale import (
    ScaleProfile,
    estimate_log_scale,
    estimate_log_scale_from_signature,
    estimate_scale,
    head_signature,
    iou_head_weights,
    scale_head_weights,
)
from seunet_monai.fusion.strategies import FUSION_STRATEGIES, fuse
from seunet_monai.networks import SEUNet
from seunet_monai.transforms.post import Fuse, Fused
from tests.fusion_cache_items import random_items
from tests.scale_heads import ScaleBandHeads, disk_items, label_image_items

SCALES_05_2 = [2 ** (k / 4) for k in range(-4, 5)]  # 0.5 .. 2, a subset of the 17 profile scales


def test_scale_is_a_fusion_strategy() -> None:
    assert "scale" in FUSION_STRATEGIES and {"mean", "pdist", "pens"} <= set(FUSION_STRATEGIES)


@pytest.fixture(scope="module")
def disk_heads() -> ScaleBandHeads:
    """Heads tuned to disks of radius 3, 6 and 12 px, calibrated on disks of radius 6 (scale 1) resampled."""
    net = ScaleBandHeads(radii=(3.0, 6.0, 12.0))
    calibrate_scale_fusion(net, disk_items(1.0, 2), SCALES_05_2)
    return net


@pytest.mark.parametrize("scale, head", [(0.5, 0), (1.0, 1), (2.0, 2)])
def test_picks_the_head_that_is_right_at_the_input_scale(disk_heads: ScaleBandHeads, scale: float, head: int) -> None:
    # disks drawn at radius 6·s: only head `head` (band around 3, 6, 12 px) segments them
    for item in disk_items(scale, 2, seed=1):
        probs = disk_heads.heads(item["image"][None])
        weights, _ = scale_head_weights(probs, disk_heads)
        assert int(weights.argmax()) == head and float(weights[0, head]) > 0.99
        fused = fuse(probs, "scale", profile=disk_heads)
        assert torch.equal(fused.argmax(1), probs[:, head].argmax(1))


def test_calibration_fills_only_the_requested_rows(disk_heads: ScaleBandHeads) -> None:
    rows = [
        i
        for i, s in enumerate(disk_heads.fusion_scales.tolist())
        if any(math.isclose(s, t, rel_tol=1e-4) for t in SCALES_05_2)
    ]
    assert len(rows) == len(SCALES_05_2)
    calibrated = torch.isfinite(disk_heads.fusion_iou).all(1)
    assert calibrated.nonzero().flatten().tolist() == rows
    sig = disk_heads.fusion_signature[rows]
    assert torch.isfinite(sig[:, :3]).all()  # margins always; object radii where a head found objects
    assert torch.isfinite(sig[:, 3:]).any()
    assert torch.isnan(disk_heads.fusion_signature[~calibrated]).all()
    # the measured profile: head 1 best at 0.5, head 2 at 1, head 3 at 2
    iou = disk_heads.fusion_iou
    assert [int(iou[rows[i]].argmax()) for i in (0, 4, 8)] == [0, 1, 2]


def test_scale_estimate_is_monotone_on_synthetic_data_generated_at_three_scales() -> None:
    # heads tuned to the nucleus radii of the synthetic generator; calibrated on its validation split at
    # scale 1 (resampled), then shown test sets *generated* at 0.5, 1 and 2
    net = ScaleBandHeads()
    calibrate_scale_fusion(net, label_image_items(1.0, 8, "validation"), SCALES_05_2)
    means = []
    for scale in (0.5, 1.0, 2.0):
        est = [float(estimate_scale(net.heads(it["image"][None]), net)) for it in label_image_items(scale, 8, "test")]
        means.append(float(np.exp(np.mean(np.log(est)))))
    assert means[0] < means[1] < means[2], means
    assert means[0] < 0.75 and means[2] > 1.25, means


def test_estimate_works_on_any_window_batch(disk_heads: ScaleBandHeads) -> None:
    image = torch.cat([disk_items(0.5, 1)[0]["image"][:, :48, :48], disk_items(2.0, 1)[0]["image"][:, :48, :48]], 2)
    probs = disk_heads.heads(image[None])  # one image: left half small disks, right half large ones
    windows = torch.cat([probs[..., :48], probs[..., 48:]])  # (2, Ω, C, 48, 48): two regions
    est = estimate_scale(windows, disk_heads)
    assert est.shape == (2,) and float(est[0]) < 1.0 < float(est[1])


def test_temperature_weights_heads_by_expected_iou_gap() -> None:
    # one calibrated scale; head IoUs 0.60, 0.59, 0.50: with τ = 0.01 head 2 weighs e^-1 of head 1
    probs = torch.softmax(torch.randn(1, 3, 2, 8, 8), dim=2)
    prof = ScaleProfile.from_buffers([1.0], [[0.60, 0.59, 0.50]], head_signature(probs))
    w, s = scale_head_weights(probs, prof, temperature=0.01)
    assert float(w[0, 1] / w[0, 0]) == pytest.approx(math.exp(-1), rel=1e-6)
    assert float(w[0, 2] / w[0, 0]) == pytest.approx(math.exp(-10), rel=1e-6)
    assert float(s) == pytest.approx(1.0)
    hard, _ = scale_head_weights(probs, prof, temperature=0)
    assert hard.tolist() == [[1.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="temperature"):
        scale_head_weights(probs, prof, temperature=-1)


def test_uncalibrated_falls_back_to_pens_with_one_warning(monkeypatch, caplog) -> None:
    monkeypatch.setattr(scale_fusion, "_warned_uncalibrated", False)
    probs = torch.softmax(torch.randn(2, 3, 2, 5, 5), dim=2)
    with caplog.at_level(logging.WARNING, logger="seunet_monai.fusion.scale"):
        out = fuse(probs, "scale")
        net = ScaleBandHeads(radii=(3.0, 6.0, 12.0))  # buffers all NaN
        out_net = fuse(probs, "scale", profile=net)
    assert torch.equal(out, fuse(probs, "pens")) and torch.equal(out_net, fuse(probs, "pens"))
    assert sum("falling back to 'pens'" in r.getMessage() for r in caplog.records) == 1
    with pytest.raises(ValueError, match="not calibrated"):
        estimate_scale(probs, net)


def test_profile_for_other_number_of_heads_is_refused(disk_heads: ScaleBandHeads) -> None:
    with pytest.raises(ValueError, match="calibrated for 3 heads"):
        fuse(torch.softmax(torch.randn(1, 2, 2, 4, 4), 2), "scale", profile=disk_heads)


def _tiny_seunet(fusion: str = "scale") -> SEUNet:
    torch.manual_seed(0)
    return SEUNet(2, 3, 2, num_scales=2, channels=(2, 4, 8, 16, 32), fusion=fusion).eval()


def test_seunet_scale_fusion_uses_its_buffers_and_survives_a_state_dict_round_trip(tmp_path) -> None:
    net = _tiny_seunet()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        heads = torch.softmax(net.forward_heads(x), 2)
        assert torch.allclose(net(x), fuse(heads, "pens"))  # not calibrated yet: PEns
    calibrate_scale_fusion(net, random_items(), [0.5, 1.0, 2.0])
    path = tmp_path / "model.pt"
    torch.save(net.state_dict(), path)
    net2 = _tiny_seunet()
    net2.load_state_dict(torch.load(path, weights_only=True), strict=True)
    for name in ("fusion_scales", "fusion_iou", "fusion_signature"):
        assert torch.allclose(getattr(net2, name), getattr(net, name), equal_nan=True)
    prof = ScaleProfile.from_module(net2)
    assert prof is not None and prof.scales.tolist() == pytest.approx([0.5, 1.0, 2.0])
    with torch.no_grad():
        assert torch.allclose(net2(x), fuse(heads, "scale", profile=prof))


def test_calibration_refuses_scales_outside_the_profile_and_networks_without_buffers() -> None:
    with pytest.raises(ValueError, match="fusion_scales"):
        calibrate_scale_fusion(_tiny_seunet(), random_items(), [0.6])
    with pytest.raises(ValueError, match="fusion_"):
        calibrate_scale_fusion(torch.nn.Conv2d(3, 2, 1), random_items(), [1.0])


def test_fuse_transforms_read_the_profile_when_called(disk_heads: ScaleBandHeads) -> None:
    net = ScaleBandHeads(radii=(3.0, 6.0, 12.0))  # uncalibrated when the transforms are built
    t, td = Fuse("scale", profile=net), Fused("pred", strategy="scale", profile=net)
    net.load_state_dict(disk_heads.state_dict())  # like CheckpointLoader at the start of a run
    probs = disk_heads.heads(disk_items(2.0, 1, seed=1)[0]["image"][None])
    expected = probs[0, 2]
    assert torch.equal(t(probs[0]).argmax(0), expected.argmax(0))
    assert torch.equal(td({"pred": probs[0]})["pred"].argmax(0), expected.argmax(0))


def test_sweep_reports_the_scale_fusion_of_a_calibrated_network(disk_heads: ScaleBandHeads, tmp_path) -> None:
    from seunet_monai.evaluation.sweep import run_scale_sweep

    out = run_scale_sweep(
        disk_heads,
        disk_items(1.0, 2, seed=2),
        tmp_path,
        [0.5, 1.0, 2.0],
        equivariance_images=0,
        num_examples=0,
        tensorboard=False,
        roi_size=256,
    )
    rows = json.loads((tmp_path / "eval" / "scale_sweep.json").read_text())["rows"]
    iou = {(r["strategy"], r["scale"]): r["iou"] for r in rows}
    for s in (0.5, 1.0, 2.0):
        best_head = max(iou[(f"head{k}", s)] for k in (1, 2, 3))
        assert iou[("scale", s)] >= best_head - 0.005  # the goal: within 0.5 IoU points of the best head
    mean = {st: sum(iou[(st, s)] for s in (0.5, 1.0, 2.0)) / 3 for st in ("scale", "pens")}
    assert mean["scale"] > mean["pens"]
    assert out["scale_estimation"]["scale_fusion"]["calibrated"] is True
    assert "'scale' fusion's calibrated estimate" in (tmp_path / "eval" / "scale_sweep.md").read_text()


def _disks(radius: float, centres: list[tuple[int, int]], size: int = 96) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    mask = torch.zeros(size, size, dtype=torch.bool)
    for cy, cx in centres:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    return mask


def _one_head_probs(mask: torch.Tensor) -> torch.Tensor:
    fg = mask.float() * 0.8 + 0.1
    return torch.stack([1 - fg, fg])[None, None]  # (1, Ω=1, C=2, H, W)


def test_object_radius_follows_the_size_of_the_nuclei_not_their_number() -> None:
    few = head_signature(_one_head_probs(_disks(5, [(20, 20), (70, 60)])))[0, 1]
    many = head_signature(_one_head_probs(_disks(5, [(15, 15), (15, 50), (15, 80), (50, 20), (50, 60), (80, 40)])))[
        0, 1
    ]
    large = head_signature(_one_head_probs(_disks(10, [(25, 25), (70, 65)])))[0, 1]
    assert float(many - few) == pytest.approx(0.0, abs=0.02)  # density does not move it
    assert float(large - few) == pytest.approx(math.log(2), abs=0.1)  # size 2x: log 2


def test_window_without_objects_is_estimated_from_the_other_components(disk_heads: ScaleBandHeads) -> None:
    probs = torch.full((1, 3, 2, 32, 32), 0.5)
    probs[:, :, 0] = 0.9
    probs[:, :, 1] = 0.1  # all background: no object for any head
    sig = head_signature(probs)
    assert torch.isnan(sig[0, 3:]).all() and torch.isfinite(sig[0, :3]).all()
    est = estimate_scale(probs, disk_heads)
    assert torch.isfinite(est).all() and 0.5 <= float(est) <= 2.0


def test_consensus_agreement_is_the_iou_of_each_head_with_the_heads_mean() -> None:
    a, b = torch.zeros(16, 16, dtype=torch.bool), torch.zeros(16, 16, dtype=torch.bool)
    a[4:12, 4:12] = True  # heads 1 and 2: this square (64 px)
    b[4:12, 4:8] = True  # head 3: its left half (32 px)
    probs = torch.cat([_one_head_probs(a), _one_head_probs(a), _one_head_probs(b)], dim=1)  # (1, 3, 2, 16, 16)
    sig = head_signature(probs)
    assert sig.shape == (1, scale_fusion.signature_width(3)) == (1, 9)
    agreement = sig[0, 6:]  # the mean of the heads is the square: heads 1, 2 agree fully, head 3 on half of it
    assert agreement.tolist() == pytest.approx([1.0, 1.0, 0.5])
    empty = torch.zeros(16, 16, dtype=torch.bool)
    assert torch.isnan(head_signature(torch.cat([_one_head_probs(empty)] * 2, dim=1))[0, 4:]).all()


def test_checkpoint_calibrated_with_the_0_3_0_signature_loads_uncalibrated_with_a_warning(tmp_path, caplog) -> None:
    from seunet_monai.checkpoint import check_state_dict, load_network

    net = _tiny_seunet()
    calibrate_scale_fusion(net, random_items(), [1.0])
    state = net.state_dict()
    state["fusion_signature"] = state["fusion_signature"][:, : 2 * net.num_scales].clone()  # 0.3.0: (P, 2Ω)
    path = tmp_path / "model.pt"
    torch.save(state, path)
    torch.manual_seed(1)
    fresh = SEUNet(2, 3, 2, num_scales=2, channels=(2, 4, 8, 16, 32), fusion="scale").eval()  # other weights
    check_state_dict(fresh, path)  # the pre-flight check accepts it
    with caplog.at_level(logging.WARNING, logger="seunet_monai.fusion.scale"):
        load_network(fresh, path)
    assert "0.3.0 layout" in caplog.text and "run calibrating" in caplog.text
    loaded = fresh.state_dict()
    assert all(
        torch.allclose(loaded[k].double(), v.double(), equal_nan=True)  # the weights and the IoU loaded
        for k, v in state.items()
        if k != "fusion_signature"
    )
    assert fresh.fusion_signature.shape == net.fusion_signature.shape and torch.isnan(fresh.fusion_signature).all()
    assert ScaleProfile.from_module(fresh) is None  # uncalibrated: "scale" falls back to PEns
    with pytest.raises(ValueError, match="0.3.0 .*recalibrate"):
        ScaleProfile.from_buffers(state["fusion_scales"], state["fusion_iou"], state["fusion_signature"])


def test_consensus_agreement_counts_a_pixel_only_when_the_classes_match() -> None:
    # three classes: heads 1 and 2 call the square class 1, head 3 calls it class 2 (same pixels, other class)
    def head(cls: int) -> torch.Tensor:
        p = torch.full((3, 8, 8), 0.05)
        p[0] = 0.9
        p[:, 2:6, 2:6] = 0.05
        p[cls, 2:6, 2:6] = 0.9
        return p[None, None]  # (1, 1, 3, 8, 8)

    sig = head_signature(torch.cat([head(1), head(1), head(2)], dim=1))
    assert sig[0, 6:].tolist() == pytest.approx([1.0, 1.0, 0.0])  # the mean calls it class 1


def test_the_estimate_from_a_stored_signature_is_the_estimate_from_the_heads() -> None:
    torch.manual_seed(0)
    logits = torch.nn.functional.interpolate(torch.randn(4, 6, 6, 6) * 3, size=(24, 24), mode="nearest")
    probs = torch.softmax(logits.view(4, 3, 2, 24, 24), dim=2)  # (B, Ω, C, H, W)
    g = torch.Generator().manual_seed(1)
    signature = torch.rand(5, 9, generator=g, dtype=torch.float64)
    signature[1, 3] = float("nan")  # a head without objects at one calibrated scale
    profile = ScaleProfile.from_buffers([0.5, 0.71, 1.0, 1.41, 2.0], torch.rand(5, 3, generator=g), signature)
    t_hat = estimate_log_scale_from_signature(head_signature(probs), profile)
    assert torch.equal(t_hat, estimate_log_scale(probs, profile))
    assert torch.equal(t_hat.exp(), scale_head_weights(probs, profile)[1])
    with pytest.raises(ValueError, match=r"expected signatures \(B, 9\)"):
        estimate_log_scale_from_signature(head_signature(probs)[:, :6], profile)


def test_head_weights_are_a_softmax_of_the_expected_iou_gaps() -> None:
    q = torch.tensor([[0.60, 0.59, 0.50], [0.1, 0.3, 0.2]], dtype=torch.float64)
    w = iou_head_weights(q, 0.01)
    assert w.sum(1).tolist() == pytest.approx([1.0, 1.0])
    assert float(w[0, 1] / w[0, 0]) == pytest.approx(math.exp(-1)) and int(w[1].argmax()) == 1
    assert iou_head_weights(q, 0).tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match="temperature"):
        iou_head_weights(q, float("nan"))
