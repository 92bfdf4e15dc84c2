"""GD convolutions (eq. 4-5): fast path = dense reference, gradients, scale equivariance, group independence."""

import pytest
import torch

from seunet_monai.layers import GDConv

BOUNDS3 = [(0.0, 0.6), (0.6, 1.3), (1.3, 2.2)]


def _layer(spatial_dims=2, order=1, discretization="hybrid", lifting=False, cin=3, cout=4, bounds=BOUNDS3, **kw):
    torch.manual_seed(0)
    layer = GDConv(spatial_dims, cin, cout, bounds, order=order, discretization=discretization, lifting=lifting, **kw)
    with torch.no_grad():  # σ away from the midpoints, in every group
        layer.scales.raw.copy_(torch.tensor([0.7, -0.4, 0.3])[: layer.num_scales])
    return layer.double()


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("order", [0, 1, 2])
@pytest.mark.parametrize("discretization", ["hybrid", "sampled"])
@pytest.mark.parametrize("lifting", [True, False])
def test_fast_path_equals_dense_reference(spatial_dims, order, discretization, lifting):
    layer = _layer(spatial_dims, order, discretization, lifting, bias=True)
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
    size = (11, 9) if spatial_dims == 2 else (7, 8, 6)
    x = torch.randn(2 * (1 if lifting else 3), 3, *size, dtype=torch.float64)
    fast = layer(x)
    layer.implementation = "dense"
    dense = layer(x)
    assert fast.shape == (6, 4, *size)
    torch.testing.assert_close(fast, dense, rtol=1e-4, atol=1e-10)


def test_fast_path_equals_dense_in_float32_channels_last():
    layer = _layer(order=1).float()
    x = torch.randn(6, 3, 16, 13).contiguous(memory_format=torch.channels_last)
    fast = layer(x)
    layer.implementation = "dense"
    torch.testing.assert_close(fast, layer(x), rtol=1e-4, atol=1e-5)


@pytest.mark.timeout(60)
def test_bfloat16_autocast_on_cpu_with_wide_kernels_returns_and_matches_float32():
    # σ up to 5 gives 1-D kernels of more than 15 taps: oneDNN's bfloat16 depthwise pass along the last axis of a
    # channels-last tensor did not return there; the smoothing runs in float32, the 3x3 stage in bfloat16
    torch.manual_seed(0)
    layer = GDConv(2, 4, 4, [(3.5, 4.0), (4.5, 5.0)], order=2)
    x = torch.randn(4, 4, 34, 32).contiguous(memory_format=torch.channels_last)
    ref = layer(x)
    assert max(layer.kernel_sizes()) >= 15
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
        out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and layer.alpha.grad is not None
    # bfloat16 keeps 8 bits of mantissa, and the central differences of the 3x3 stage cancel: 5.9 % here (order 2)
    assert ((out.float() - ref).norm() / ref.norm()).item() < 0.1
    layer_bf16 = GDConv(2, 4, 4, [(3.5, 4.0), (4.5, 5.0)], order=2).to(torch.bfloat16)
    assert layer_bf16(x.to(torch.bfloat16)).dtype == torch.bfloat16


@pytest.mark.parametrize("discretization", ["hybrid", "sampled"])
def test_gradients_reach_alpha_and_sigma(discretization):
    layer = _layer(order=1, discretization=discretization, cin=2, cout=2)
    x = torch.randn(3, 2, 7, 6, dtype=torch.float64)

    def f(alpha, raw):
        return torch.func.functional_call(layer, {"alpha": alpha, "scales.raw": raw}, (x,))

    params = (layer.alpha.detach().clone().requires_grad_(), layer.scales.raw.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(f, params)
    layer(x).square().sum().backward()
    assert layer.alpha.grad.abs().sum() > 0 and torch.all(layer.scales.raw.grad != 0)


def test_fixed_sigma_gets_no_gradient():
    layer = GDConv(2, 2, 2, BOUNDS3, sigma_mode="fixed")
    layer(torch.randn(3, 2, 8, 8)).sum().backward()
    assert layer.alpha.grad is not None
    assert [n for n, _ in layer.named_parameters()] == ["alpha"]


def _smooth_image(n: int, pitch: float) -> torch.Tensor:
    """Gaussian blobs of a continuous image sampled on an n×n grid with pixel pitch ``pitch``."""
    c = torch.arange(n, dtype=torch.float64) * pitch
    y, x = torch.meshgrid(c, c, indexing="ij")
    g = torch.Generator().manual_seed(0)
    f = torch.zeros(3, n, n, dtype=torch.float64)
    for ch in range(3):
        for _ in range(6):
            cx, cy = torch.rand(2, generator=g, dtype=torch.float64) * 32
            s = 2 + 4 * torch.rand(1, generator=g, dtype=torch.float64)
            f[ch] += torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s**2))
    return f.unsqueeze(0)


@pytest.mark.parametrize("discretization,bound", [("hybrid", 1e-4), ("sampled", 5e-4)])
def test_lifting_layer_is_scale_equivariant_between_matched_groups(discretization, bound):
    """S_2(F_σ * f) ≈ F_2σ * S_2 f (groups at σ = 1 and 2); relative errors measured: hybrid 2.1e-5,
    sampled 1.1e-4, against ~6e-3 for the mismatched pair (σ = 1 on both)."""
    layer = GDConv(2, 3, 8, [(0.5, 1.5), (1.5, 2.5)], discretization=discretization, lifting=True).double()
    with torch.no_grad():
        coarse = layer(_smooth_image(32, 1.0))[0]  # group σ=1 on f
        fine = layer(_smooth_image(64, 0.5))  # both groups on f enlarged 2x
    inner = slice(6, 26)
    ref = coarse[:, inner, inner]

    def rel_err(out):
        return ((out[:, ::2, ::2][:, inner, inner] - ref) ** 2).sum() / (ref**2).sum()

    matched, mismatched = rel_err(fine[1]), rel_err(fine[0])
    assert matched < bound
    assert mismatched > 20 * matched


def test_groups_are_independent():
    layer = _layer(order=2)
    x = torch.randn(6, 3, 10, 10, dtype=torch.float64)
    base = layer(x)
    for k in range(3):
        x2 = x.clone()
        x2[2 * k : 2 * k + 2] += torch.randn(2, 3, 10, 10, dtype=torch.float64)
        changed = (layer(x2) - base).abs().flatten(1).amax(1) > 0
        assert changed.tolist() == [k == j for j in range(3) for _ in range(2)]


def test_kernel_sizes_follow_sigma_and_cap():
    layer = GDConv(2, 1, 1, [(0.0, 0.5), (0.5, 1.0), (2.0, 2.5)], discretization="sampled")
    assert layer.kernel_sizes() == [3, 5, 11]
    with torch.no_grad():
        layer.scales.raw.fill_(10.0)  # σ → upper bounds 0.5, 1.0, 2.5
    assert layer.kernel_sizes() == [3, 5, 11]
    capped = GDConv(2, 1, 1, [(0.0, 0.5), (0.5, 1.0), (2.0, 2.5)], discretization="hybrid", max_half_width=2)
    assert capped.kernel_sizes() == [5, 7, 7]  # + 2 for the central-difference stencil
    assert capped.dense_filters().shape == (3, 1, 1, 7, 7)
    assert "kernel_sizes=[5, 7, 7]" in repr(capped)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="discretization"):
        GDConv(2, 1, 1, BOUNDS3, discretization="fourier")
    with pytest.raises(ValueError, match="implementation"):
        GDConv(2, 1, 1, BOUNDS3, implementation="cuda")
    with pytest.raises(ValueError, match="sigma_mode"):
        GDConv(2, 1, 1, BOUNDS3, sigma_mode="learned")
    layer = GDConv(2, 3, 2, BOUNDS3, name="dec1.conv2")
    with pytest.raises(ValueError, match="dec1.conv2.*input channels"):
        layer(torch.randn(3, 2, 8, 8))
    with pytest.raises(ValueError, match="folded"):
        layer(torch.randn(4, 3, 8, 8))
    with pytest.raises(ValueError, match="4-D"):
        layer(torch.randn(3, 3, 8))


def _batch_norm(channels, seed=1):
    g = torch.Generator().manual_seed(seed)
    norm = torch.nn.BatchNorm2d(channels).double()
    with torch.no_grad():
        norm.running_mean.copy_(torch.randn(channels, generator=g, dtype=torch.float64))
        norm.running_var.copy_(torch.rand(channels, generator=g, dtype=torch.float64) + 0.5)
        norm.weight.copy_(torch.randn(channels, generator=g, dtype=torch.float64))
        norm.bias.copy_(torch.randn(channels, generator=g, dtype=torch.float64))
    return norm.eval()


@pytest.mark.parametrize("discretization", ["hybrid", "sampled"])
@pytest.mark.parametrize("implementation", ["fast", "dense"])
@pytest.mark.parametrize("lifting", [True, False])
def test_inference_folds_batch_norm_into_cached_filters(discretization, implementation, lifting):
    layer = _layer(discretization=discretization, lifting=lifting, bias=True, implementation=implementation).eval()
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
    norm = _batch_norm(4)
    x = torch.randn(2 * (1 if lifting else 3), 3, 12, 9, dtype=torch.float64)
    unfolded = norm(layer(x))  # gradients on: the plain path, norm applied after the convolution
    with torch.no_grad():
        folded = layer(x, norm=norm)
        again = layer(x, norm=norm)
    torch.testing.assert_close(folded, unfolded, rtol=1e-7, atol=1e-10)
    assert torch.equal(again, folded)
    assert "_inference_cache" in layer.__dict__


def test_inference_cache_follows_parameters_buffers_and_mode():
    layer = _layer(bias=True).eval()
    norm = _batch_norm(4)
    x = torch.randn(6, 3, 10, 10, dtype=torch.float64)

    def check():
        expected = norm(layer(x))  # with gradients: never cached
        with torch.no_grad():
            torch.testing.assert_close(layer(x, norm=norm), expected, rtol=1e-7, atol=1e-10)

    check()
    with torch.no_grad():
        layer.alpha.mul_(2.0)  # an in-place edit (as an optimiser step)
    check()
    layer.scales.raw.data = layer.scales.raw.data + 0.3  # a .data assignment changes σ and kernel sizes
    check()
    norm.running_var.data.mul_(3.0)  # the folded norm's statistics
    check()
    other = _layer(bias=True)
    with torch.no_grad():
        other.alpha.uniform_(-1, 1)
    layer.load_state_dict(other.state_dict())
    assert "_inference_cache" not in layer.__dict__
    check()
    layer.train()
    assert "_inference_cache" not in layer.__dict__
    with torch.no_grad():  # training mode: batch statistics, never folded nor cached
        out = layer(x, norm=norm.train())
    assert "_inference_cache" not in layer.__dict__
    torch.testing.assert_close(out.mean((0, 2, 3)), norm.bias, rtol=1e-6, atol=1e-6)
    layer.eval()
    with torch.no_grad():
        layer(x.float().double())
    assert layer.__dict__["_inference_cache"][0][0] == torch.float64
    with torch.no_grad():  # another dtype rebuilds the filters in that dtype
        assert layer.float()(x.float()).dtype == torch.float32
