"""Specification of ``seunet_monai.networks.equivariance`` (eq. 12, the matching of groups) and of eq. 10 on it."""

from __future__ import annotations

import pytest
import torch

from seunet_monai.evaluation.equivariance import equivariance_error
from seunet_monai.networks.equivariance import equivariance_matrix, matched_groups


def test_equivariance_zero_for_identical_features_and_matrix_shape() -> None:
    f = torch.randn(2, 3, 4, 5, 5)
    assert torch.allclose(equivariance_error(f, f), torch.zeros(2, dtype=torch.float64))
    e = equivariance_matrix(f, f)
    assert e.shape == (2, 3, 3)
    assert torch.allclose(torch.diagonal(e, dim1=1, dim2=2), torch.zeros(2, 3, dtype=torch.float64), atol=1e-10)
    assert bool((e[:, 0, 1] > 0).all())


def test_equivariance_matrix_hand_value() -> None:
    r = torch.tensor([3.0, 4.0]).view(1, 1, 1, 2)  # ||r||² = 25
    t = torch.tensor([3.0, 0.0]).view(1, 1, 1, 2)  # ||r - t||² = 16
    assert equivariance_matrix(r, t).item() == pytest.approx(16 / 25)
    shifted = torch.cat([t, r], 1)  # two groups on the test side
    assert equivariance_error(r, shifted, matches=torch.tensor([1])).item() == pytest.approx(0.0)


def test_matched_groups_follow_sigma_ratio() -> None:
    sig = torch.tensor([1.0, 2.0, 4.0, 8.0])
    assert matched_groups(sig, 1.0).tolist() == [0, 1, 2, 3]
    assert matched_groups(sig, 2.0).tolist() == [1, 2, 3, 3]
    assert matched_groups(sig, 0.5).tolist() == [0, 0, 1, 2]
    with pytest.raises(ValueError, match="scale must be > 0"):
        matched_groups(sig, 0.0)
