"""Specification of the uncalibrated relative scale estimate (``log σ̂`` weighted by the heads' confidence)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seunet_monai.fusion.relative_scale import log_sigma_estimate, relative_scale_estimates


def test_uncalibrated_estimates_follow_the_confident_head() -> None:
    log_sig = torch.log(torch.tensor([1.0, 2.0, 4.0]))
    scales = [0.5, 1.0, 2.0]
    # head 1 confident at s=0.5, head 2 at s=1, head 3 at s=2 (a sharp temperature: near one-hot weights)
    conf = np.full((2, 3, 3), 0.1)
    for j in range(3):
        conf[:, j, j] = 0.9
    est = relative_scale_estimates(conf, scales, log_sig, temperature=0.01)
    assert est[0].tolist() == pytest.approx([0.5, 1.0, 2.0], rel=1e-6)
    soft = relative_scale_estimates(conf, scales, log_sig, temperature=1.0)  # soft weights: same order, compressed
    assert 0.5 < soft[0, 0] < 1.0 < soft[0, 2] < 2.0
    with pytest.raises(ValueError, match="temperature"):
        relative_scale_estimates(conf, scales, log_sig, temperature=0.0)


def test_log_sigma_estimate_weights_the_heads_sigma_by_their_confidence() -> None:
    log_sig = np.log([1.0, 2.0, 4.0])
    assert log_sigma_estimate(np.array([0.9, 0.1, 0.1]), log_sig, temperature=0.01) == pytest.approx(0.0, abs=1e-9)
    even = log_sigma_estimate(np.full((2, 3), 0.5), log_sig)  # equal confidence: the mean log σ
    assert even.shape == (2,) and even.tolist() == pytest.approx([float(np.mean(log_sig))] * 2)
