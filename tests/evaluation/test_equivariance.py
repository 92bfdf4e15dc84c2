"""Equivariance error (eq. 10, 12) measured on networks: zero for pointwise linear maps, and the matched
group of a Gaussian-derivative lifting layer beats the unmatched one."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from seunet_monai.evaluation.equivariance import centre_crop, equivariance_matrices, matched_error
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.networks.equivariance import matched_groups


def _smooth_image(size: int = 96, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 1, size, size, generator=g)
    return torch.nn.functional.avg_pool2d(noise, 5, 1, 2)[0]


def test_zero_for_pointwise_networks(toy_heads, plain_pointwise) -> None:
    img = torch.rand(3, 20, 20)
    for net in (toy_heads, plain_pointwise):
        mats = equivariance_matrices(net.eval(), img, [0.5, 1.0, 1.41, 2.0])
        for s, m in mats.items():
            assert m.shape == ((2, 2) if net is toy_heads else (1, 1))
            assert float(m.max()) < 1e-10, (type(net).__name__, s)


def test_nonlinear_pointwise_is_not_equivariant_to_resampling() -> None:
    # a sanity check that the measure can fail: features x**2 do not commute with bilinear resampling
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Conv2d(2, 1, 1))
    net[0].register_forward_hook(lambda m, i, o: o**2)
    mats = equivariance_matrices(net, _smooth_image(32), [2.0])
    assert float(mats[2.0]) > 1e-4


class _Lifting(MultiHeadNetwork):
    """One lifting GD layer with σ = 1, 2, 4, exposing the multi-head feature API."""

    def __init__(self) -> None:
        super().__init__()
        from seunet_monai.layers.gd_conv import GDConv

        self.conv = GDConv(2, 1, 4, [(0.9, 1.1), (1.9, 2.1), (3.9, 4.1)], lifting=True)
        self.num_scales = 3

    def features(self, x: torch.Tensor) -> torch.Tensor:
        from seunet_monai.layers.group_ops import unfold_groups

        return unfold_groups(self.conv(x), self.num_scales)

    def sigmas(self) -> dict[str, torch.Tensor]:
        return {"lift": self.conv.sigma().detach()}


def test_matched_groups_of_a_gd_layer_beat_mismatched() -> None:
    torch.manual_seed(0)
    net = _Lifting().eval()
    sig = net.sigmas()["lift"]
    mats = equivariance_matrices(net, _smooth_image(), [0.5, 1.0, 2.0], crop=64)
    up, down = mats[2.0], mats[0.5]
    assert matched_groups(sig, 2.0).tolist() == [1, 2, 2]
    assert up[0, 1] < 0.2 * up[0, 0] and up[1, 2] < 0.2 * up[1, 1]  # enlarged: σ_k' = 2 σ_k matches
    assert down[1, 0] < 0.2 * down[1, 1] and down[2, 1] < 0.2 * down[2, 2]  # shrunk: σ_k' = σ_k / 2
    assert matched_error(up, matched_groups(sig, 2.0)) < matched_error(up, torch.arange(3))
    assert float(torch.diagonal(mats[1.0]).abs().max()) < 1e-12


def test_centre_crop() -> None:
    x = torch.arange(2 * 6 * 5).view(2, 6, 5)
    c = centre_crop(x, 4)
    assert c.shape == (2, 4, 4) and c[0, 0, 0] == x[0, 1, 0]
    assert centre_crop(x, None) is x


def test_scale_partners_within_ten_percent():
    from seunet_monai.evaluation.equivariance import scale_partners

    sig = torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5])
    matches, has = scale_partners(sig, 2.0)
    assert matches.tolist()[:2] == [1, 3] and has.tolist() == [True, True, False, False, False]
    # 2^(1/4) = 1.19: 2.5/2 = 1.25 is within 5%; 2/1.5 = 1.33 is 12% away
    matches, has = scale_partners(sig, 2**0.25)
    assert has.tolist() == [False, False, False, True, False] and int(matches[3]) == 4
    assert scale_partners(sig, 1.0)[1].all()
    assert not scale_partners(sig, 7.0)[1].any()
    with pytest.raises(ValueError, match="tolerance"):
        scale_partners(sig, 2.0, tolerance=-1)


def test_matched_error_averages_only_groups_with_a_partner():
    mat = torch.tensor([[1.0, 0.1], [5.0, 9.0]], dtype=torch.float64)
    assert matched_error(mat, torch.tensor([1, 1])) == pytest.approx(4.55)
    assert matched_error(mat, torch.tensor([1, 1]), torch.tensor([True, False])) == pytest.approx(0.1)
    assert math.isnan(matched_error(mat, torch.tensor([1, 1]), torch.tensor([False, False])))
