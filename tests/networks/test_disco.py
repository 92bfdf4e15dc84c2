"""DISCO baseline: the basis optimised for discrete scale equivariance, its layer and the DISCOUNet's modes."""

from __future__ import annotations

import time

import pytest
import torch

from seunet_monai.networks import DISCOConv, DISCOUNet
from seunet_monai.networks.disco import _disco_basis_1d_cached, basis_equivariance_error, disco_basis, disco_basis_1d
from seunet_monai.networks.sesn import hermite_gaussian_basis

TINY = (5, 10, 20, 40, 80)
SCALES = [1, 2, 3, 4, 5]


def _smooth_images(n: int = 3, size: int = 120, seed: int = 123) -> torch.Tensor:
    """Band-limited test images (white noise smoothed by a Gaussian of σ = 1.5 px), not those the basis was fit on."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 1, size + 16, size + 16, generator=g, dtype=torch.float64)
    x = torch.arange(-8, 9, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / 1.5) ** 2)
    k = k / k.sum()
    out = torch.nn.functional.conv2d(torch.nn.functional.conv2d(noise, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return out[:, 0]


def test_basis_shapes_and_the_reference_scale_is_the_3x3_grid():
    bases = disco_basis(SCALES)
    assert [tuple(b.shape) for b in bases] == [(9, 2 * s + 1, 2 * s + 1) for s in SCALES]  # sizes 3..11 as SESN
    torch.testing.assert_close(bases[0].flatten(1), torch.eye(9, dtype=torch.float64))  # one delta per pixel
    assert [tuple(b.shape) for b in disco_basis([1, 2], spatial_dims=3)] == [(27, 3, 3, 3), (27, 5, 5, 5)]
    one_d = disco_basis_1d(SCALES)
    # 2-D functions are outer products of the 1-D ones, in multi-index order (a, b) -> 3a + b
    torch.testing.assert_close(bases[3][5], torch.outer(one_d[3][1], one_d[3][2]))


def test_basis_is_fast_and_deterministic():
    _disco_basis_1d_cached.cache_clear()
    t0 = time.perf_counter()
    first = disco_basis(SCALES)
    elapsed = time.perf_counter() - t0
    _disco_basis_1d_cached.cache_clear()
    second = disco_basis(SCALES)
    assert elapsed < 5.0
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    first[1].zero_()  # callers get copies: the cache is not altered
    assert disco_basis(SCALES)[1].abs().sum() > 0


def test_equivariance_error_is_far_below_the_sesn_hermite_basis_on_the_same_grid():
    images = _smooth_images()
    disco = basis_equivariance_error(disco_basis(SCALES), SCALES, images)
    sesn = basis_equivariance_error([hermite_gaussian_basis(s) for s in SCALES], SCALES, images)
    assert set(disco) == set(sesn) and len(disco) == 10  # every pair of scales
    for pair in disco:
        assert disco[pair] < 0.1 * sesn[pair], pair
    # integer ratios have an exact solution (the dilated 3x3 filter): the least squares finds it
    assert max(disco.values()) < 1e-2
    assert torch.allclose(disco_basis_1d(SCALES)[2][0], torch.eye(7, dtype=torch.float64)[0], atol=5e-3)  # tap -1 -> -3


def test_non_integer_scales_give_a_non_trivial_basis_that_still_beats_sesn():
    scales = [1, 1.5, 2, 3]
    b1 = disco_basis_1d(scales)
    assert b1[1].shape == (3, 5) and float(b1[1][0, :2].abs().min()) > 0.1  # spread over several taps
    images = _smooth_images(n=2)
    disco = basis_equivariance_error(disco_basis(scales), scales, images)
    sesn = basis_equivariance_error([hermite_gaussian_basis(s) for s in scales], scales, images)
    assert all(disco[p] < 0.1 * sesn[p] for p in disco)


def test_bad_scales_are_refused():
    with pytest.raises(ValueError, match="increasing"):
        disco_basis_1d([2, 1])
    with pytest.raises(ValueError, match="half-width"):
        disco_basis_1d([1, 2], half_widths=[1])


def test_discoconv_basis_is_a_buffer_and_coefficients_are_shared():
    conv = DISCOConv(2, 3, 4, lifting=True)
    assert [n for n, _ in conv.named_parameters()] == ["weight"] and conv.weight.shape == (4, 3, 9)
    assert "basis4" in conv.state_dict() and conv.kernel_sizes() == [3, 5, 7, 9, 11]
    torch.testing.assert_close(conv.basis(2).double(), disco_basis(SCALES)[2])
    y = conv(torch.randn(2, 3, 20, 20))
    assert y.shape == (10, 4, 20, 20)
    gw = DISCOConv(2, 4, 6)
    assert gw(y).shape == (10, 6, 20, 20)
    with pytest.raises(ValueError, match="folded"):
        gw(torch.randn(3, 4, 8, 8))


def test_discounet_modes_and_reporting():
    net = DISCOUNet(channels=TINY)
    x = torch.randn(2, 3, 40, 36)
    logits = net.train()(x)
    assert logits.shape == (2, 5, 2, 40, 36)
    logits.mean().backward()
    assert net.enc1.conv1.weight.grad is not None
    net.eval()
    with torch.no_grad():
        probs = net(x)
        assert probs.shape == (2, 2, 40, 36)
        torch.testing.assert_close(probs.sum(1), torch.ones(2, 40, 36))
        net.output_heads = True
        assert net(x).shape == (2, 5, 2, 40, 36)
        assert net.features(x).shape == (2, 5, 1, 40, 36)
    assert net.first_layer_filters().shape == (5, 1, 3, 11, 11)
    sig = net.sigmas()
    assert len(sig) == 18 and all(torch.allclose(v, torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5])) for v in sig.values())
    assert len(net.sigma_bounds()) == 0
    assert all(isinstance(m, DISCOConv) for m in net.gd_layers().values())
    three = DISCOUNet(channels=(3, 6, 12, 24, 48), scales=(1, 2, 3))
    assert three.num_scales == 3 and three.enc1.conv1.kernel_sizes() == [3, 5, 7]
