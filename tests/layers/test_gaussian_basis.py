"""The Gaussian-derivative basis (eq. 3): analytic values, normalisation, symmetry, discretisations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from seunet_monai.layers.gaussian_basis import (
    central_difference,
    derivative_multi_indices,
    gaussian_derivative_kernels_1d,
    gaussian_kernel_1d,
    gd_basis,
)


def _apply_1d(taps: torch.Tensor, signal: torch.Tensor) -> torch.Tensor:
    return F.conv1d(signal.view(1, 1, -1), taps.view(1, 1, -1), padding=taps.numel() // 2).view(-1)


@pytest.mark.parametrize("spatial_dims,order,count", [(2, 0, 1), (2, 1, 3), (2, 2, 6), (3, 1, 4), (3, 2, 10)])
def test_multi_indices_cover_all_orders_up_to_n(spatial_dims, order, count):
    idx = derivative_multi_indices(spatial_dims, order)
    assert len(idx) == count == len(set(idx))
    assert all(sum(n) <= order and len(n) == spatial_dims for n in idx)
    assert idx[0] == (0,) * spatial_dims


@pytest.mark.parametrize("sigma", [0.8, 1.5, 3.2])
@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_sampled_kernels_equal_scipy_gaussian_derivatives(sigma, order):
    """Hermite closed form x unit-sum sampled Gaussian = scipy's derivative-of-Gaussian filter of an impulse."""
    h = int(np.ceil(2 * sigma))
    taps = gaussian_derivative_kernels_1d(torch.tensor(sigma, dtype=torch.float64), order, h, "sampled")
    impulse = np.zeros(41)
    impulse[20] = 1.0
    expected = ndimage.gaussian_filter1d(impulse, sigma, order=order, truncate=h / sigma, mode="constant")
    ours = _apply_1d(taps[order], torch.from_numpy(impulse)).numpy() / sigma**order  # undo γ-normalisation
    np.testing.assert_allclose(ours, expected, atol=1e-12)


@pytest.mark.parametrize("discretization", ["sampled", "hybrid"])
def test_sums_and_symmetry(discretization):
    sigma = torch.tensor([0.6, 1.7, 2.9], dtype=torch.float64)
    k = gaussian_derivative_kernels_1d(sigma, 3, [2, 4, 6], discretization)
    assert k.shape == (3, 4, 2 * 6 + 1 + (4 if discretization == "hybrid" else 0))
    torch.testing.assert_close(k[:, 0].sum(-1), torch.ones(3, dtype=torch.float64))
    for n in range(4):
        # even orders symmetric, odd orders antisymmetric (so they sum to 0)
        torch.testing.assert_close(k[:, n].flip(-1), (-1) ** n * k[:, n])
    torch.testing.assert_close(k[:, 1].sum(-1), torch.zeros(3, dtype=torch.float64))


def test_per_kernel_half_widths_zero_pad_the_same_kernels():
    sigma = torch.tensor([0.4, 2.0], dtype=torch.float64)
    both = gaussian_derivative_kernels_1d(sigma, 1, [1, 4], "hybrid")
    alone = gaussian_derivative_kernels_1d(sigma[:1], 1, 1, "hybrid")
    torch.testing.assert_close(both[0, :, 3:-3], alone[0])
    assert torch.all(both[0, :, :3] == 0) and torch.all(both[0, :, -3:] == 0)
    with pytest.raises(ValueError, match="half_width"):
        gaussian_kernel_1d(sigma, [1, 2, 3])


def test_scale_normalised_first_derivative_of_a_ramp_is_sigma():
    """γ-normalisation: σ·∂(G_σ * f) of f(x) = x is σ, for every σ (hybrid: exactly)."""
    ramp = torch.arange(60, dtype=torch.float64)
    for sigma in (0.3, 1.0, 2.5, 4.0):
        taps = gaussian_derivative_kernels_1d(
            torch.tensor(sigma, dtype=torch.float64), 1, int(np.ceil(2 * sigma)), "hybrid"
        )
        out = _apply_1d(taps[1], ramp)
        assert out[20].item() == pytest.approx(sigma, rel=1e-12)


def test_central_differences_are_exact_on_polynomials():
    x = torch.arange(-10, 11, dtype=torch.float64)
    for n, f, deriv in [(1, x**2, 2 * x), (2, x**3, 6 * x), (3, x**4, 24 * x), (4, x**5, 120 * x)]:
        out = _apply_1d(central_difference(n, torch.float64), f)
        torch.testing.assert_close(out[5:-5], deriv[5:-5])


def test_dense_basis_is_the_outer_product_of_1d_kernels():
    sigma = torch.tensor(1.3, dtype=torch.float64)
    k1 = gaussian_derivative_kernels_1d(sigma, 1, 3, "sampled")
    b2 = gd_basis(sigma, 2, 1, 3, "sampled")
    assert b2.shape == (3, 7, 7)
    torch.testing.assert_close(b2[1], torch.outer(k1[1], k1[0]))  # ∂/∂y (axis 0)
    torch.testing.assert_close(b2[2], torch.outer(k1[0], k1[1]))  # ∂/∂x (axis 1)
    b3 = gd_basis(torch.tensor([1.0, 2.0]), 3, 1, 4, "hybrid")
    assert b3.shape == (2, 4, 11, 11, 11)
    torch.testing.assert_close(b3[:, 0].sum(dim=(-3, -2, -1)), torch.ones(2))
