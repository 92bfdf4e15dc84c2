"""SESN baseline: the fixed Hermite-Gaussian basis and the SESNUNet built on the SEUNet architecture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import eval_hermite

from seunet_monai.networks import SESNConv, SESNUNet
from seunet_monai.networks.sesn import hermite_gaussian_basis, hermite_multi_indices

TINY = (5, 10, 20, 40, 80)


def test_multi_indices_total_order_4():
    idx = hermite_multi_indices(2, 4)
    assert len(idx) == 15 and len(set(idx)) == 15
    assert all(sum(n) <= 4 for n in idx) and (4, 0) in idx and (2, 2) in idx and (3, 2) not in idx
    assert len(hermite_multi_indices(3, 4)) == 35


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 5])
def test_basis_shape_and_unit_norm_per_scale(scale):
    b = hermite_gaussian_basis(scale)
    assert b.shape == (15, 2 * scale + 1, 2 * scale + 1)  # filter sizes 3..11 for scales 1..5
    assert torch.allclose(b.flatten(1).norm(dim=1), torch.ones(15, dtype=torch.float64))


def test_basis_values_are_hermite_times_gaussian():
    b = hermite_gaussian_basis(3)
    sigma = 0.5 * 3
    x = np.arange(-3, 4) / sigma
    g = np.exp(-0.5 * x**2)
    n = hermite_multi_indices(2, 4).index((3, 1))
    ref = np.outer(eval_hermite(3, x) * g, eval_hermite(1, x) * g)
    assert np.allclose(b[n].numpy(), ref / np.linalg.norm(ref))


def test_basis_rank_and_not_orthogonal():
    # scale 1: 15 functions on 3x3 pixels span at most 9 dimensions; independent from scale 2 on
    assert torch.linalg.matrix_rank(hermite_gaussian_basis(1).flatten(1)) == 9
    for s in (2, 5):
        gram = hermite_gaussian_basis(s).flatten(1) @ hermite_gaussian_basis(s).flatten(1).T
        assert torch.linalg.matrix_rank(gram) == 15
        assert not torch.allclose(gram, torch.eye(15, dtype=gram.dtype), atol=1e-3)  # documented: unit norm only


def test_basis_is_the_same_function_stretched():
    # ψ(x; s=2) at even pixels equals ψ(x; s=1) at every pixel, up to the per-function normalisation
    b1, b2 = hermite_gaussian_basis(1), hermite_gaussian_basis(2)[:, ::2, ::2]
    cos = torch.nn.functional.cosine_similarity(b1.flatten(1), b2.flatten(1), dim=1)
    assert torch.allclose(cos, torch.ones(15, dtype=cos.dtype))


def test_sesnconv_basis_is_fixed_buffer_and_coefficients_shared():
    conv = SESNConv(2, 3, 4, lifting=True)
    names = [n for n, _ in conv.named_parameters()]
    assert names == ["weight"] and conv.weight.shape == (4, 3, 15)
    assert all(f"basis{k}" in dict(conv.named_buffers()) for k in range(5))
    assert "basis4" in conv.state_dict()
    assert conv.kernel_sizes() == [3, 5, 7, 9, 11] and conv.num_scales == 5
    assert torch.allclose(conv.sigma(), torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5]))
    dense = conv.dense_filters()
    assert dense.shape == (5, 4, 3, 11, 11)
    assert torch.allclose(dense[1, :, :, 3:8, 3:8], conv.filters(1))
    assert dense[0, :, :, :4].abs().sum() == 0  # smaller scales are zero-padded, centred


def test_sesnconv_lifting_and_group_wise_shapes_and_independence():
    lift = SESNConv(2, 3, 4, lifting=True)
    x = torch.randn(2, 3, 20, 20)
    y = lift(x)
    assert y.shape == (10, 4, 20, 20)
    # a delta image returns every scale's filter (flipped: conv2d is a correlation)
    delta = torch.zeros(1, 3, 23, 23)
    delta[0, 0, 11, 11] = 1
    out = lift(delta)
    assert torch.allclose(out[4, :, 6:17, 6:17], lift.filters(4)[:, 0].flip(-1, -2), atol=1e-6)
    gw = SESNConv(2, 4, 6)
    z = gw(y)
    assert z.shape == (10, 6, 20, 20)
    y2 = y.clone()
    y2[:2] += 1.0  # change group 0 only
    z2 = gw(y2)
    assert not torch.allclose(z2[:2], z[:2]) and torch.allclose(z2[2:], z[2:])
    with pytest.raises(ValueError, match="folded"):
        gw(torch.randn(3, 4, 8, 8))


def test_sesnunet_modes_and_reporting():
    net = SESNUNet(channels=TINY)
    x = torch.randn(2, 3, 40, 36)
    net.train()
    logits = net(x)
    assert logits.shape == (2, 5, 2, 40, 36)
    logits.mean().backward()
    assert all(n.endswith("weight") or n.endswith("bias") for n, p in net.named_parameters())
    net.eval()
    with torch.no_grad():
        probs = net(x)
        assert probs.shape == (2, 2, 40, 36)
        assert torch.allclose(probs.sum(1), torch.ones(2, 40, 36), atol=1e-5)
        net.output_heads = True
        assert net(x).shape == (2, 5, 2, 40, 36)
        assert net.features(x).shape == (2, 5, 1, 40, 36)
    assert net.first_layer_filters().shape == (5, 1, 3, 11, 11)
    sig = net.sigmas()
    assert len(sig) == 18 and all(torch.allclose(v, torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5])) for v in sig.values())
    assert len(net.sigma_bounds()) == 0  # fixed scales: no trained ranges
    assert all(isinstance(m, SESNConv) for m in net.gd_layers().values())


def test_sesnunet_scales_argument_and_float64():
    net = SESNUNet(channels=(3, 6, 12, 24, 48), scales=(1, 2, 3)).double()
    assert net.num_scales == 3 and net.enc1.conv1.kernel_sizes() == [3, 5, 7]
    assert net(torch.randn(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64
