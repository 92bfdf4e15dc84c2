"""Scale estimation from winning heads (beyond the paper)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seunet_monai.fusion.estimation import (
    head_confidence,
    head_votes,
    last_layer_log_sigmas,
    relative_scale_estimates,
    scale_correlation,
)


def test_head_votes_count_winners_and_margins() -> None:
    # 3 pixels: head 1 wins pixel 0 (margin 0.8), head 2 wins pixels 1, 2 (margins 0.6, 0.2)
    h1 = torch.tensor([[0.9, 0.5, 0.5], [0.1, 0.5, 0.5]])
    h2 = torch.tensor([[0.5, 0.8, 0.6], [0.5, 0.2, 0.4]])
    probs = torch.stack([h1, h2]).unsqueeze(0)  # (1, 2, 2, 3)
    counts, weights = head_votes(probs)
    assert counts.tolist() == [1, 2]
    assert weights.tolist() == pytest.approx([0.8, 0.8])
    counts, _ = head_votes(probs, mask=torch.tensor([[True, False, False]]))
    assert counts.tolist() == [1, 0]


def test_head_confidence_is_the_mean_margin() -> None:
    h1 = torch.tensor([[0.9, 0.5, 0.5], [0.1, 0.5, 0.5]])  # margins 0.8, 0, 0
    h2 = torch.tensor([[0.5, 0.8, 0.6], [0.5, 0.2, 0.4]])  # margins 0, 0.6, 0.2
    probs = torch.stack([h1, h2]).unsqueeze(0)
    assert head_confidence(probs).tolist() == pytest.approx([0.8 / 3, 0.8 / 3])
    assert head_confidence(probs, mask=torch.tensor([[False, True, True]])).tolist() == pytest.approx([0.0, 0.4])


def test_estimates_follow_the_confident_head() -> None:
    log_sig = torch.log(torch.tensor([1.0, 2.0, 4.0]))
    scales = [0.5, 1.0, 2.0]
    # head 1 confident at s=0.5, head 2 at s=1, head 3 at s=2 (a sharp temperature: near one-hot weights)
    conf = np.full((2, 3, 3), 0.1)
    for j in range(3):
        conf[:, j, j] = 0.9
    est = relative_scale_estimates(conf, scales, log_sig, temperature=0.01)
    assert est[0].tolist() == pytest.approx([0.5, 1.0, 2.0], rel=1e-6)
    c = scale_correlation(est, scales)
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] == pytest.approx(1.0) and c["num_pairs"] == 6
    soft = relative_scale_estimates(conf, scales, log_sig, temperature=1.0)  # soft weights: same order, compressed
    assert 0.5 < soft[0, 0] < 1.0 < soft[0, 2] < 2.0
    with pytest.raises(ValueError, match="temperature"):
        relative_scale_estimates(conf, scales, log_sig, temperature=0.0)


def test_constant_estimates_have_undefined_correlation() -> None:
    est = np.ones((2, 3))
    c = scale_correlation(est, [0.5, 1.0, 2.0])
    assert math.isnan(c["spearman"]) and math.isnan(c["pearson"])


def test_last_layer_sigmas(toy_heads, plain_pointwise) -> None:
    ls, src = last_layer_log_sigmas(toy_heads, 2)
    assert src == "layer2" and torch.allclose(ls.exp(), torch.tensor([1.0, 2.0], dtype=torch.float64))
    ls, src = last_layer_log_sigmas(plain_pointwise, 1)
    assert src == "head index" and ls.tolist() == [0.0]
