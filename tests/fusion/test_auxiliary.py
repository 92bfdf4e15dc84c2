"""Specification of ``seunet_monai.fusion.auxiliary``: extra per-head maps fused with the head weights of the class
fusion (the weights that, applied to the class probabilities, are the class fusion itself)."""

from __future__ import annotations

import pytest
import torch

from seunet_monai.fusion.auxiliary import fuse_auxiliary, head_weights
from seunet_monai.fusion.heads import winning_head
from seunet_monai.fusion.scale import ScaleProfile, head_signature
from seunet_monai.fusion.strategies import fuse


def probs_and_maps(seed: int = 0, heads: int = 3, classes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(3 * torch.randn(2, heads, classes, 6, 5, generator=g), dim=2)
    maps = torch.rand(2, heads, 1, 6, 5, generator=g)
    return probs, maps


@pytest.mark.parametrize("strategy", ["mean", "pdist", "pens", "head:2"])
@pytest.mark.parametrize("classes", [2, 3])
def test_the_weights_applied_to_the_class_probabilities_are_the_class_fusion(strategy, classes):
    probs, _ = probs_and_maps(classes=classes)
    w = head_weights(probs, strategy)
    assert w.shape == (2, 3, 6, 5) and torch.allclose(w.sum(1), torch.ones(2, 6, 5))
    assert torch.allclose((w.unsqueeze(2) * probs).sum(1), fuse(probs, strategy), atol=1e-6)


def test_the_scale_fusion_weights_are_per_image_and_fall_back_to_pens():
    probs, maps = probs_and_maps()
    profile = ScaleProfile.from_buffers([1.0], [[0.60, 0.59, 0.50]], head_signature(probs[:1]))
    w = head_weights(probs, "scale", profile)
    assert torch.allclose((w.unsqueeze(2) * probs).sum(1), fuse(probs, "scale", profile=profile), atol=1e-6)
    assert torch.equal(w, w[:, :, :1, :1].expand_as(w))  # one weight per image and head
    assert torch.equal(head_weights(probs, "scale"), head_weights(probs, "pens"))  # uncalibrated: PEns


def test_fused_maps_are_the_head_weighted_means():
    probs, maps = probs_and_maps()
    assert torch.allclose(fuse_auxiliary(probs, maps, "mean"), maps.mean(1))
    win = winning_head(probs)  # (B, H, W): PDist takes the map of the head that decides the class
    expected = maps[:, :, 0].gather(1, win.unsqueeze(1))
    assert torch.equal(fuse_auxiliary(probs, maps, "pdist"), expected)
    assert torch.equal(fuse_auxiliary(probs, maps, "head:3"), maps[:, 2])
    pens = fuse_auxiliary(probs, maps, "pens")
    assert pens.shape == (2, 1, 6, 5)
    assert bool((pens >= maps.min(1).values - 1e-6).all() and (pens <= maps.max(1).values + 1e-6).all())  # convex


def test_shapes_are_checked():
    probs, maps = probs_and_maps()
    with pytest.raises(ValueError, match="matching the class probabilities"):
        fuse_auxiliary(probs, maps[:, :2], "pens")
    with pytest.raises(ValueError, match="matching the class probabilities"):
        fuse_auxiliary(probs, maps[..., :4], "pens")
    with pytest.raises(ValueError, match="asks for head 4"):
        head_weights(probs, "head:4")
    with pytest.raises(ValueError, match="unknown fusion strategy"):
        head_weights(probs, "median")
