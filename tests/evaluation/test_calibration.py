"""Specification of ``seunet_monai.evaluation.calibration``: the buffers are the profile of each image's
measurement at each scale; its cost bounds: the default scales, whole images from tiles, the pixel and time budgets,
the plan logged before the work and one line per scale."""

from __future__ import annotations

import logging

import pytest
import torch

from seunet_monai.evaluation.calibration import calibrate_scale_fusion, calibration_rows
from seunet_monai.evaluation.calibration_measure import measure_heads, profile_from_measurements
from seunet_monai.evaluation.heads import output_heads_mode
from seunet_monai.fusion.scale import ScaleProfile
from seunet_monai.networks import SEUNet
from tests.scale_heads import ScaleBandHeads, disk_items


def _net() -> SEUNet:
    torch.manual_seed(0)
    return SEUNet(2, 3, 2, num_scales=2, channels=(2, 4, 8, 16, 32), fusion="scale").eval()


def _image(size: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    label = (torch.rand(1, size, size, generator=g) > 0.6).long()
    return torch.rand(3, size, size, generator=g) * 0.2 + label.float() * 0.6, label


def _tiles(source: str, image: torch.Tensor, label: torch.Tensor, tile: int, stride: int) -> list[dict]:
    """Overlapping tiles named as the preparation scripts name them."""
    starts = list(range(0, image.shape[1] - tile + 1, stride))
    return [
        {
            "image": image[:, r : r + tile, c : c + tile],
            "label": label[:, r : r + tile, c : c + tile],
            "name": f"{source}_r{r}_c{c}",
            "source": source,
        }
        for r in starts
        for c in starts
    ]


def test_default_scales_are_those_from_one_half_to_two() -> None:
    profile = [2 ** (k / 4) for k in range(-8, 9)]
    rows = calibration_rows(profile)
    assert [round(profile[r], 4) for r in rows] == [0.5, 0.5946, 0.7071, 0.8409, 1.0, 1.1892, 1.4142, 1.6818, 2.0]
    assert calibration_rows(profile, "all") == list(range(17))
    assert calibration_rows(profile, [1.0, 2.0]) == [8, 12]
    with pytest.raises(ValueError, match="'all'"):
        calibration_rows(profile, "some")
    net = _net()
    result = calibrate_scale_fusion(net, [dict(zip(("image", "label"), _image(24)))])
    assert len(result["scales"]) == 9
    assert ScaleProfile.from_module(net).scales.tolist() == pytest.approx(result["scales"])


def test_each_pixel_is_predicted_once_per_scale_and_the_plan_is_logged(caplog) -> None:
    a = _image(48, 1)
    net = _net()
    seen: list[tuple[int, ...]] = []
    heads = net.forward_heads
    net.forward_heads = lambda x: seen.append(tuple(x.shape[2:])) or heads(x)
    progress: list[dict] = []
    with caplog.at_level(logging.INFO, logger="seunet_monai.evaluation.calibration"):
        result = calibrate_scale_fusion(
            net, _tiles("a", *a, tile=24, stride=12), [0.5, 1.0, 2.0], on_progress=progress.append
        )
    assert sorted(seen) == [(24, 24), (48, 48), (96, 96)]  # the whole image once per scale, not 9 tiles
    assert result["num_images"] == 1 and result["tiles"] == 9 and result["pixels"] == 24**2 + 48**2 + 96**2
    lines = [r.getMessage() for r in caplog.records]
    plan = next(i for i, line in enumerate(lines) if "expected about" in line)
    assert "1 whole validation image(s) (put together from 9 tiles) x 3 scales" in lines[plan]
    per_scale = [line for line in lines[plan:] if " done in " in line]
    assert [line.split(" done")[0] for line in per_scale] == [
        "scale calibration: scale 1/3 (0.5)",
        "scale calibration: scale 2/3 (1)",
        "scale calibration: scale 3/3 (2)",
    ]
    assert all("s left" in line for line in per_scale)
    assert [p["scales_done"] for p in progress] == [0, 1, 2, 3] and progress[-1]["eta_s"] == 0


def test_pixel_and_time_budgets_bound_the_images(caplog) -> None:
    items = [dict(zip(("image", "label"), _image(32, seed))) for seed in range(4)]
    per_image = 16**2 + 32**2 + 64**2
    result = calibrate_scale_fusion(_net(), items, [0.5, 1.0, 2.0], max_pixels=2 * per_image + 1)
    assert result["num_images"] == 2 and result["left_out"] and result["pixels"] == 2 * per_image
    with caplog.at_level(logging.INFO, logger="seunet_monai.evaluation.calibration"):
        result = calibrate_scale_fusion(_net(), items, [0.5, 1.0, 2.0], max_seconds=1e-3, budget_note="a test")
    assert result["num_images"] == 1 and result["budget_s"] == pytest.approx(1e-3)  # at least one image
    assert any("time budget 0.0 s = a test" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)
    thinned = calibrate_scale_fusion(_net(), items, max_seconds=1e-3)  # one image at 9 scales is too much
    assert thinned["num_images"] == 1 and thinned["scales"] == pytest.approx([0.5, 1.0, 2.0])
    assert calibrate_scale_fusion(_net(), items, [1.0], max_images=3, max_pixels=None)["num_images"] == 3
    for bad in ({"max_pixels": 0}, {"max_seconds": -1.0}):
        with pytest.raises(ValueError, match="max_pixels|time budget"):
            calibrate_scale_fusion(_net(), items, [1.0], **bad)


def test_the_buffers_are_the_profile_of_each_images_measurement_at_each_scale() -> None:
    net, scales = ScaleBandHeads(radii=(3.0, 6.0, 12.0)), [0.5, 1.0, 2.0]
    items = disk_items(1.0, 2, size=48) + disk_items(0.7, 1, size=48, seed=1)
    calibrate_scale_fusion(net, items, scales)
    with output_heads_mode(net):
        measured = [[measure_heads(net, it["image"], it["label"], s, 2) for s in scales] for it in items]
    probs, label, signature, confusion = measured[0][2]
    assert probs.shape == (3, 2, 96, 96) and label.shape == (96, 96) and signature.shape == (9,)
    assert confusion.shape == (3, 2, 4) and confusion[..., [0, 3]].sum(-1)[:, 1].tolist() == [float(label.sum())] * 3
    iou, sig = profile_from_measurements(
        torch.stack([torch.stack([m[3] for m in row]) for row in measured]),  # (N, P, Ω, C, 4)
        torch.stack([torch.stack([m[2] for m in row]) for row in measured]),  # (N, P, 3Ω)
    )
    rows = calibration_rows(net.fusion_scales.tolist(), scales)
    assert torch.equal(net.fusion_iou[rows], iou.float())
    torch.testing.assert_close(net.fusion_signature[rows], sig.float(), rtol=0, atol=0, equal_nan=True)
    assert [int(q.argmax()) for q in iou] == [0, 1, 2]  # the head tuned to each scale
