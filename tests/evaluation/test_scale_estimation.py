"""Scale estimation from winning heads (beyond the paper)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seunet_monai.evaluation.scale_estimation import (
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


def test_estimates_follow_a_head_shift() -> None:
    log_sig = torch.log(torch.tensor([1.0, 2.0, 4.0]))
    scales = [0.5, 1.0, 2.0]
    # image votes all for head 1 at s=0.5, head 2 at s=1, head 3 at s=2 -> estimates 0.5, 1, 2
    w = np.zeros((2, 3, 3))
    for j in range(3):
        w[:, j, j] = 1.0
    est = relative_scale_estimates(w, scales, log_sig)
    assert est[0].tolist() == pytest.approx([0.5, 1.0, 2.0])
    c = scale_correlation(est, scales)
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] == pytest.approx(1.0) and c["num_pairs"] == 6


def test_constant_estimates_have_undefined_correlation() -> None:
    est = np.ones((2, 3))
    c = scale_correlation(est, [0.5, 1.0, 2.0])
    assert math.isnan(c["spearman"]) and math.isnan(c["pearson"])


def test_last_layer_sigmas(toy_heads, plain_pointwise) -> None:
    ls, src = last_layer_log_sigmas(toy_heads, 2)
    assert src == "layer2" and torch.allclose(ls.exp(), torch.tensor([1.0, 2.0], dtype=torch.float64))
    ls, src = last_layer_log_sigmas(plain_pointwise, 1)
    assert src == "head index" and ls.tolist() == [0.0]
