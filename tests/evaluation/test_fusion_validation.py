"""Specification of ``seunet_monai.evaluation.fusion_validation``: a resumable per-image cache of the heads tied to
one checkpoint, and leave-one-image-out scores that never calibrate on the held-out image."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from seunet_monai.errors import CheckpointError, DataError
from seunet_monai.evaluation.fusion_validation import (
    CANDIDATE_RULES,
    FoldProfile,
    FusionCache,
    RuleInput,
    build_cache,
    cache_items,
    scale_rule,
    score_cache,
    write_report,
)
from seunet_monai.fusion.heads import fuse_heads
from seunet_monai.fusion.scale import (
    ScaleProfile,
    estimate_log_scale_from_signature,
    head_signature,
    scale_head_weights,
)
from seunet_monai.networks import SEUNet
from seunet_monai.networks.base import MultiHeadNetwork

SCALES = [0.5, 1.0, 2.0]


def _net(seed: int = 0) -> SEUNet:
    torch.manual_seed(seed)
    return SEUNet(2, 3, 2, num_scales=2, channels=(2, 4, 8, 16, 32)).eval()


def _checkpoint(path: Path, net: nn.Module) -> Path:
    torch.save(net.state_dict(), path)
    return path


def _blocks(size: int, seed: int, block: int = 8) -> torch.Tensor:
    """A random mask of ``block``-px squares ``(1, size, size)``."""
    g = torch.Generator().manual_seed(seed)
    low = (torch.rand(1, 1, size // block, size // block, generator=g) > 0.5).float()
    return nn.functional.interpolate(low, scale_factor=block, mode="nearest")[0].long()


def _image(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    label = _blocks(size, seed)
    g = torch.Generator().manual_seed(seed + 100)
    return torch.rand(3, size, size, generator=g) * 0.2 + label.float() * 0.6, label


def _tiles(source: str, image: torch.Tensor, label: torch.Tensor, tile: int = 16, stride: int = 8) -> list[dict]:
    starts = range(0, image.shape[1] - tile + 1, stride)
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


def _data() -> list[dict]:
    return _tiles("a", *_image(32, 1)) + _tiles("b", *_image(24, 2))


def _counting(net: SEUNet) -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = []
    heads = net.forward_heads
    net.forward_heads = lambda x: seen.append(tuple(x.shape[2:])) or heads(x)
    return seen


def test_items_are_the_whole_images_and_optionally_the_tiles_of_each() -> None:
    items = cache_items(_data(), with_tiles=True)
    wholes = [(it.name, it.tiles, tuple(it.image.shape)) for it in items if it.kind == "whole"]
    assert wholes == [("a", 9, (3, 32, 32)), ("b", 4, (3, 24, 24))]
    tiles = [it for it in items if it.kind == "tile"]
    assert len(tiles) == 13 and {it.image_name for it in tiles[:9]} == {"a"} and tiles[-1].name == "b_r8_c8"


def test_a_second_run_does_no_work_and_an_interrupted_cache_resumes(tmp_path, caplog) -> None:
    net = _net()
    ckpt = _checkpoint(tmp_path / "model.pt", net)
    out = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="seunet_monai.evaluation.fusion_validation"):
        first = build_cache(net, _data(), out, ckpt, SCALES)
    assert first["files_written"] == 6 and first["pixels_total"] == (32**2 + 24**2) * (0.25 + 1 + 4)
    lines = [r.getMessage() for r in caplog.records]
    assert "2 whole image(s) x 3 scales" in lines[0] and "to predict in 6 file(s), 0 file(s) cached" in lines[0]
    per_item = [line for line in lines if "] whole" in line]  # one line per item, with the time left
    assert [line.split(",")[0] for line in per_item] == ["fusion cache: [1/2] whole a", "fusion cache: [2/2] whole b"]
    assert all(line.endswith(" s left") for line in per_item)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["checkpoint"]["sha256"] and manifest["code"]["cache_format"] == 1
    assert [(it["name"], it["scales"]) for it in manifest["items"]] == [("a", SCALES), ("b", SCALES)]
    with FusionCache(out).path("whole", "a", 1.0).open("rb") as f:
        record = dict(np.load(f))
    assert record["probs"].dtype.name == "float16" and record["probs"].shape == (2, 1, 32, 32)
    assert record["signature"].shape == (6,) and record["confusion"].shape == (2, 2, 4)

    seen = _counting(net)
    again = build_cache(net, _data(), out, ckpt, SCALES)
    assert len(json.loads((out / "manifest.json").read_text())["runs"]) == 2
    assert again["files_written"] == 0 and again["pixels_todo"] == 0 and seen == []  # no network call
    FusionCache(out).path("whole", "b", 2.0).unlink()  # as if interrupted before the last file
    resumed = build_cache(net, _data(), out, ckpt, SCALES)
    assert resumed["files_written"] == 1 and seen == [(48, 48)]


def test_a_cache_of_another_checkpoint_is_refused_in_one_line(tmp_path) -> None:
    out = tmp_path / "cache"
    build_cache(_net(0), _data()[:9], out, _checkpoint(tmp_path / "a.pt", _net(0)), [1.0])
    with pytest.raises(CheckpointError, match="holds the outputs of checkpoint") as err:
        build_cache(_net(1), _data()[:9], out, _checkpoint(tmp_path / "b.pt", _net(1)), [1.0])
    assert "\n" not in str(err.value) and "another --out" in str(err.value)


def test_an_empty_cache_is_refused(tmp_path) -> None:
    with pytest.raises(DataError, match="is empty"):
        score_cache(tmp_path)


class ChannelHeads(MultiHeadNetwork):
    """Head k predicts nucleus where channel k of the image exceeds 0.5 (a network whose heads are known)."""

    def __init__(self) -> None:
        super().__init__()
        self.num_scales, self.out_channels = 2, 2

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        z = (x[:, :2] - 0.5) * 8
        return torch.stack([torch.zeros_like(z), z], dim=2)  # (B, Ω, 2, H, W)


def _opposed(name: str, size: int, seed: int, head: int) -> dict:
    """An image on which head ``head`` is right and the other head predicts the complement."""
    label = _blocks(size, seed)
    right = 0.2 + 0.6 * label.float()
    channels = [right, 1 - right] if head == 0 else [1 - right, right]
    return {"image": torch.cat([*channels, torch.full_like(right, 0.5)]), "label": label, "name": name}


def test_the_held_out_image_never_calibrates_its_own_fusion(tmp_path) -> None:
    # on the large image "a" head 1 is right, on the small "b" head 2: pooled, head 1 looks best everywhere
    data = [_opposed("a", 64, 3, head=0), _opposed("b", 16, 4, head=1)]
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    build_cache(ChannelHeads(), data, tmp_path / "cache", ckpt, [1.0, 2.0])
    rules = {"scale": CANDIDATE_RULES["scale"]}
    loio = score_cache(tmp_path / "cache", rules=rules, profile_scales=[1.0, 2.0])
    inside = score_cache(tmp_path / "cache", rules=rules, profile_scales=[1.0, 2.0], loio=False)
    assert loio["calibration"]["folds"] == {"a": ["b"], "b": ["a"]}
    assert inside["calibration"]["folds"] == {"a": ["a", "b"], "b": ["a", "b"]}
    # each held-out image is fused with the head the other image favours: the wrong one
    assert max(loio["iou"]["scale"]) < 0.1
    assert min(inside["iou"]["scale"]) > 0.8
    assert inside["iou"]["scale"] == pytest.approx(inside["iou"]["head1"], abs=1e-9)


def test_scores_report_every_row_and_the_oracle_is_the_best_head(tmp_path) -> None:
    net = _net()
    out = tmp_path / "cache"
    build_cache(net, _data(), out, _checkpoint(tmp_path / "model.pt", net), SCALES, tile_scales=SCALES)
    result = score_cache(out, profile_scales=SCALES)
    assert result["scales"] == SCALES
    assert list(result["iou"])[:5] == ["oracle", "pens", "mean", "head1", "head2"]
    assert set(CANDIDATE_RULES) <= set(result["iou"])
    for j in range(len(SCALES)):
        assert result["iou"]["oracle"][j] >= max(result["iou"]["head1"][j], result["iou"]["head2"][j])
        assert result["iou"]["oracle"][j] == result["iou"][f"head{result['oracle_head'][j]}"][j]
    scale = result["rules"]["scale"]
    assert scale["worst_gap"] == min(scale["gap"]) and len(scale["gap"]) == 3
    assert scale["under_pens"] == [s for s, d in zip(SCALES, scale["vs_pens"]) if d < 0]
    assert len(result["estimate"]["items"]) == 6 and result["estimate"]["octave_error"] >= 0
    assert result["calibration"]["pixels"] == (32**2 + 24**2) * 5.25

    tiles = score_cache(out, calibration="tiles", profile_scales=SCALES, rules={"scale": CANDIDATE_RULES["scale"]})
    assert tiles["calibration"]["items"] == 13 and tiles["calibration"]["folds"] == {"a": ["b"], "b": ["a"]}
    assert tiles["calibration"]["pixels"] == (9 + 4) * 16**2 * 5.25
    with pytest.raises(DataError, match="lacks .* at the profile scales"):
        score_cache(out, profile_scales="17")

    paths = write_report(result, tmp_path / "report", {"command": "scale_fusion_cv score ...", "code": {"git": 1}})
    assert [p.name for p in paths] == ["cv_report.json", "cv_report.md"]
    report = json.loads(paths[0].read_text())
    assert report["provenance"]["command"] == "scale_fusion_cv score ..." and report["iou"] == result["iou"]
    text = paths[1].read_text()
    assert "| oracle |" in text and "| scale |" in text and "under PEns at" in text and "Spearman" in text


def _profile(num_heads: int, scales: list[float], seed: int) -> ScaleProfile:
    g = torch.Generator().manual_seed(seed)
    iou = torch.rand(len(scales), num_heads, generator=g, dtype=torch.float64)
    signature = torch.rand(len(scales), 3 * num_heads, generator=g, dtype=torch.float64)
    signature[1, num_heads] = float("nan")  # a head without objects at one calibrated scale
    return ScaleProfile.from_buffers(scales, iou, signature)


def test_the_scale_rule_is_the_fusion_at_the_fusions_estimate() -> None:
    torch.manual_seed(0)
    logits = nn.functional.interpolate(torch.randn(4, 6, 6, 6) * 3, size=(24, 24), mode="nearest")
    probs = torch.softmax(logits.view(4, 3, 2, 24, 24), dim=2)  # (B, Ω, C, H, W)
    for seed in range(5):
        profile = _profile(3, [0.5, 0.71, 1.0, 1.41, 2.0], seed)
        t_hat = estimate_log_scale_from_signature(head_signature(probs), profile)  # as scored from the cache
        weights, _ = scale_head_weights(probs, profile, 0.01)
        fold = FoldProfile(profile, torch.zeros_like(profile.iou), 4, ("a", "b", "c", "d"))
        for b in range(4):
            x = RuleInput(probs[b : b + 1], fuse_heads(probs[b : b + 1], "pens"), float(t_hat[b]), fold)
            expected = (weights[b].view(3, 1, 1, 1) * probs[b]).sum(0, keepdim=True).float()
            assert torch.allclose(scale_rule(0.01)(x), expected, atol=1e-6)
