"""The SEUNet: shapes, modes, arguments, accessors, export."""

import warnings

import pytest
import torch

from seunet_monai.fusion.strategies import fuse
from seunet_monai.networks import SEUNet

TINY = (5, 10, 10, 15, 15)


def _net(**kw):
    torch.manual_seed(0)
    return SEUNet(**{"channels": TINY, **kw})


@pytest.mark.parametrize("size", [(32, 32), (21, 17)])
def test_shapes_2d_any_size(size):
    net = _net()
    x = torch.randn(2, 3, *size)
    assert net(x).shape == (2, 5, 2, *size)  # training: per-head logits
    assert net.features(x).shape == (2, 5, 1, *size)
    net.eval()
    probs = net(x)
    assert probs.shape == (2, 2, *size)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, *size))
    net.output_heads = True
    heads = net(x)
    assert heads.shape == (2, 5, 2, *size)
    torch.testing.assert_close(probs, fuse(heads, "pens"))
    net.output_heads, net.fusion = False, "pdist"
    torch.testing.assert_close(net(x), fuse(torch.softmax(net.forward_heads(x), 2), "pdist"))


def test_3d_float64_and_unshared_heads():
    net = SEUNet(spatial_dims=3, in_channels=1, out_channels=3, num_scales=2, channels=(2, 2, 4, 4, 4)).double()
    x = torch.randn(1, 1, 17, 16, 15, dtype=torch.float64)
    assert net(x).shape == (1, 2, 3, 17, 16, 15) and net(x).dtype == torch.float64
    net2 = _net(share_heads=False, out_channels=3)
    y = net2(torch.randn(2, 3, 16, 16))
    assert y.shape == (2, 5, 3, 16, 16)
    y.sum().backward()
    assert net2.head.weight.grad.shape == (5, 3, 1)


def test_heads_differ_only_through_sigma():
    """With every group's σ made equal, all heads give the same logits (shared α, norm and head)."""
    net = _net(sigma_mode="free").eval()
    with torch.no_grad():
        for layer in net.gd_layers().values():
            layer.scales.raw.fill_(0.3)
    out = net.forward_heads(torch.randn(1, 3, 32, 32))
    torch.testing.assert_close(out, out[:, :1].expand_as(out))
    with torch.no_grad():
        net.enc1.conv1.scales.raw[2] = 1.0
    out = net.forward_heads(torch.randn(1, 3, 32, 32))
    assert not torch.allclose(out[:, 2], out[:, 0])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(channels=(6, 12, 24, 48, 96)), "multiple of num_scales"),
        (dict(channels=(10, 20, 40, 80)), "5 widths"),
        (dict(num_scales=0), "num_scales"),
        (dict(spatial_dims=1), "spatial_dims"),
        (dict(fusion="vote"), "fusion"),
        (dict(sigma_mode="learned"), "sigma_mode"),
        (dict(sigma_ranges=[[(0.0, 1.0)] * 5] * 17), "18 layers"),
        (dict(sigma_ranges=[[(0.0, 1.0)] * 5] * 18), r"sigma_ranges\[0\] \(enc1.conv1\)"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _net(**kwargs)


def test_bad_inputs():
    net = _net()
    with pytest.raises(ValueError, match="input channels"):
        net(torch.randn(1, 1, 16, 16))
    with pytest.raises(ValueError, match="spatial"):
        net(torch.randn(1, 3, 16))


def test_accessors_for_sigmas_bounds_and_filters():
    net = _net()
    sig, bounds = net.sigmas(), net.sigma_bounds()
    assert len(sig) == len(bounds) == 18
    assert list(sig)[:2] == ["enc1.conv1", "enc1.conv2"] and list(sig)[-1] == "dec1.conv2"
    for name, s in sig.items():
        b = bounds[name]
        assert s.shape == (5,) and b.shape == (5, 2)
        assert torch.all(s > b[:, 0]) and torch.all(s < b[:, 1])
    filters = net.first_layer_filters()
    assert filters.shape[:3] == (5, 1, 3)
    net(torch.randn(2, 3, 16, 16)).sum().backward()
    assert all(m.scales.raw.grad is not None for m in net.gd_layers().values())


def test_trace_export_matches_eager():
    net = _net().eval()
    x = torch.randn(1, 3, 24, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, x, check_trace=False)
    torch.testing.assert_close(traced(x), net(x))
    x2 = torch.randn(2, 3, 24, 20)
    torch.testing.assert_close(traced(x2), net(x2))


def test_dense_reference_network_matches_fast():
    x = torch.randn(1, 3, 32, 32)
    fast = _net().eval()
    dense = _net(implementation="dense").eval()
    dense.load_state_dict(fast.state_dict())
    torch.testing.assert_close(fast.forward_heads(x), dense.forward_heads(x), rtol=1e-4, atol=1e-5)


def _calibrated(net, x):
    """Batch-norm running statistics measured on ``x`` (so that eval-mode activations are not all cut by ReLU)."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one pass sets the statistics of x
            m.reset_running_stats()
    net.train()
    with torch.no_grad():
        net(x)
    return net.eval()


def test_inference_with_folded_batch_norm_matches_eval_with_gradients():
    x = torch.randn(1, 3, 40, 36)
    net = _calibrated(_net(), x)
    plain = net.forward_heads(x)  # gradients on: batch norm applied after every GD layer, no cache
    assert plain.std() > 0.01  # a network whose output depends on the image
    with torch.no_grad():
        folded = net.forward_heads(x)
        cached = net.forward_heads(x)
    torch.testing.assert_close(folded, plain, rtol=1e-5, atol=1e-5)
    assert torch.equal(cached, folded)
    net.train()  # a training step changes the weights: the next inference sees them
    net(x).square().mean().backward()
    with torch.no_grad():
        for p in net.parameters():
            p.sub_(0.05 * p.grad.sign())
    net.eval()
    with torch.no_grad():
        after = net.forward_heads(x)
    torch.testing.assert_close(after, net.forward_heads(x).detach(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(after, folded, atol=1e-3)


def test_shipped_model_folded_matches_unfolded():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bundle" / "models" / "model.pt"
    if not path.is_file():
        pytest.skip(f"no shipped model at {path}")
    net = SEUNet(channels=(60, 120, 240, 480, 960))
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net.eval()
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    plain = net.forward_heads(x)
    with torch.no_grad():
        torch.testing.assert_close(net.forward_heads(x), plain, rtol=1e-5, atol=1e-5)
