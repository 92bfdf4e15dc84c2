"""Specification of ``seunet_monai.fusion.scale_rules``: the ``scale`` rule is the ``scale`` fusion (its estimate
and its weights), and the variants move its weights the way they say."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from seunet_monai.fusion.heads import fuse_heads
from seunet_monai.fusion.scale import (
    ScaleProfile,
    estimate_log_scale_from_signature,
    head_signature,
    scale_head_weights,
)
from seunet_monai.fusion.scale_rules import (
    CANDIDATE_RULES,
    FoldProfile,
    RuleInput,
    lower_bound_rule,
    pens_mix_rule,
    scale_rule,
    shrunk_profile_rule,
)


def _profile(num_heads: int, scales: list[float], seed: int) -> ScaleProfile:
    g = torch.Generator().manual_seed(seed)
    iou = torch.rand(len(scales), num_heads, generator=g, dtype=torch.float64)
    signature = torch.rand(len(scales), 3 * num_heads, generator=g, dtype=torch.float64)
    signature[1, num_heads] = float("nan")  # a head without objects at one calibrated scale
    return ScaleProfile.from_buffers(scales, iou, signature)


def _probs(batch: int = 4, heads: int = 3) -> torch.Tensor:
    torch.manual_seed(0)
    logits = nn.functional.interpolate(torch.randn(batch, 2 * heads, 6, 6) * 3, size=(24, 24), mode="nearest")
    return torch.softmax(logits.view(batch, heads, 2, 24, 24), dim=2)  # (B, Ω, C, H, W)


def test_the_scale_rule_is_the_fusion_at_the_fusions_estimate() -> None:
    probs = _probs()
    for seed in range(5):
        profile = _profile(3, [0.5, 0.71, 1.0, 1.41, 2.0], seed)
        t_hat = estimate_log_scale_from_signature(head_signature(probs), profile)  # as scored from a cache
        weights, _ = scale_head_weights(probs, profile, 0.01)
        fold = FoldProfile(profile, torch.zeros_like(profile.iou), 4, ("a", "b", "c", "d"))
        for b in range(4):
            x = RuleInput(probs[b : b + 1], fuse_heads(probs[b : b + 1], "pens"), float(t_hat[b]), fold)
            expected = (weights[b].view(3, 1, 1, 1) * probs[b]).sum(0, keepdim=True).float()
            assert torch.allclose(scale_rule(0.01)(x), expected, atol=1e-6)
            assert torch.allclose(CANDIDATE_RULES["scale"](x), expected, atol=1e-6)


def test_the_profile_is_interpolated_in_log_scale_and_clamped_at_its_ends() -> None:
    profile = ScaleProfile.from_buffers([0.5, 2.0], [[0.2, 0.6], [0.6, 0.2]], torch.rand(2, 6, dtype=torch.float64))
    fold = FoldProfile(profile, torch.zeros(2, 2), 3, ("a", "b", "c"))
    assert fold.at(profile.iou, 0.0).tolist() == pytest.approx([0.4, 0.4])  # log 1: half way between log 0.5, log 2
    assert fold.at(profile.iou, math.log(8)).tolist() == pytest.approx([0.6, 0.2])


def test_the_variants_move_the_weights_towards_pens_a_flat_profile_or_the_surer_head() -> None:
    probs = _probs(1, 2)
    pens = fuse_heads(probs, "pens")
    iou = torch.tensor([[0.7, 0.5], [0.5, 0.7]], dtype=torch.float64)
    profile = ScaleProfile.from_buffers([0.5, 2.0], iou, torch.rand(2, 6, dtype=torch.float64))
    x = RuleInput(probs, pens, math.log(0.5), FoldProfile(profile, torch.zeros(2, 2), 1, ("a",)))
    assert torch.allclose(scale_rule(0.01)(x), probs[:, 0], atol=1e-6)  # head 1 is 20 points better at 0.5
    assert torch.allclose(pens_mix_rule(0.5)(x), 0.5 * probs[:, 0] + 0.5 * pens, atol=1e-6)
    # one calibration image, n0 = 2: the IoUs move 2/3 of the way to each head's mean over the scales (0.6)
    w = torch.softmax(torch.tensor([0.7 / 3 + 0.4, 0.5 / 3 + 0.4]) / 0.1, dim=0)
    assert torch.allclose(shrunk_profile_rule(2.0, 0.1)(x), w[0] * probs[:, 0] + w[1] * probs[:, 1], atol=1e-5)
    sure = RuleInput(
        probs, pens, math.log(0.5), FoldProfile(profile, torch.tensor([[0.3, 0.0], [0.0, 0.0]]), 2, ("a", "b"))
    )
    assert torch.allclose(lower_bound_rule(1.0)(sure), probs[:, 1], atol=1e-4)  # head 1 varies: 0.7 - 0.3 < 0.5
