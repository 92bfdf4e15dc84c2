"""Scales σ (eq. 6) and filter sizes (eq. 7)."""

import math

import pytest
import torch

from seunet_monai.layers.scales import ScaleParameter, default_sigma_ranges, half_widths, validate_sigma_bounds

BOUNDS = [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 2.5)]


def test_constrained_sigma_stays_inside_its_interval_for_any_parameter():
    sp = ScaleParameter(BOUNDS, "constrained")
    lower, upper = sp.bounds().unbind(1)
    for raw in (torch.full((5,), -1e4), torch.full((5,), 1e4), torch.randn(5) * 50, torch.zeros(5)):
        with torch.no_grad():
            sp.raw.copy_(raw)
        sigma = sp()
        assert torch.all(sigma >= lower) and torch.all(sigma <= upper)
    with torch.no_grad():
        sp.raw.zero_()
    torch.testing.assert_close(sp(), (lower + upper) / 2)  # initialised at the midpoint


def test_fixed_sigma_has_no_gradient_and_free_sigma_can_leave_the_range():
    fixed = ScaleParameter(BOUNDS, "fixed")
    assert list(fixed.parameters()) == []
    assert not fixed().requires_grad
    torch.testing.assert_close(fixed(), torch.tensor([0.25, 0.75, 1.25, 1.75, 2.25]))
    free = ScaleParameter(BOUNDS, "free")
    torch.testing.assert_close(free(), torch.tensor([0.25, 0.75, 1.25, 1.75, 2.25]))
    with torch.no_grad():
        free.raw.fill_(10.0)
    assert torch.all(free() > 9.0)
    with torch.no_grad():
        free.raw.fill_(-30.0)
    assert torch.all(free() > 0)
    free().sum().backward()
    assert free.raw.grad is not None


@pytest.mark.parametrize(
    "bounds,match",
    [
        ([(0.0, 0.5)] * 2 + [(1.0, 1.5)], "overlaps"),
        ([(1.0, 1.5), (0.0, 0.5), (2.0, 2.5)], "overlaps or follows"),
        ([(0.5, 0.5), (1.0, 2.0), (2.0, 3.0)], "a > lower bound"),
        ([(-0.1, 0.5), (1.0, 2.0), (2.0, 3.0)], ">= 0"),
        ([(0.0, 0.5), (1.0, 2.0)], "expected 3"),
        ([(0.0,), (1.0, 2.0), (2.0, 3.0)], "pairs"),
    ],
)
def test_invalid_bounds_name_the_layer(bounds, match):
    with pytest.raises(ValueError, match=match) as err:
        validate_sigma_bounds(bounds, 3, "enc2.conv1")
    assert "enc2.conv1" in str(err.value)


def test_half_widths_follow_eq7_with_optional_cap():
    sigma = torch.tensor([0.25, 0.5, 0.75, 1.0, 1.01, 2.25, 5.0])
    assert half_widths(sigma) == [1, 1, 2, 2, 3, 5, 10]
    assert half_widths(sigma, max_half_width=3) == [1, 1, 2, 2, 3, 3, 3]


def test_default_ranges_match_the_paper_layout():
    ranges = default_sigma_ranges(5)
    assert len(ranges) == 18
    first = [2 * math.ceil(2 * (b + a) / 2) + 1 for b, a in ranges[0]]
    assert first == [3, 5, 7, 9, 11]
    tops = [r[-1][1] for r in ranges]
    # centred layout: group 5 of the first layer is (2.25, 2.75); the bottleneck (level 4) doubles it
    assert tops[:10] == sorted(tops[:10]) and tops[9] == max(tops) == pytest.approx(5.5)
    assert tops[10:] == sorted(tops[10:], reverse=True) and tops[-1] == tops[0]
    for i, r in enumerate(ranges):
        validate_sigma_bounds(r, 5, f"layer {i}")
    with pytest.raises(ValueError):
        default_sigma_ranges(0)


def test_centred_layout_first_layer_is_centred_on_half_k():
    """Appendix C / Fig. 4: first-layer σ = 0.5·k (k = 1..5), intervals (0.5k - 0.25, 0.5k + 0.25)."""
    first = default_sigma_ranges(5)[0]
    for k, (b, a) in enumerate(first, start=1):
        assert (b + a) / 2 == pytest.approx(0.5 * k)
        assert (b, a) == (pytest.approx(0.5 * k - 0.25), pytest.approx(0.5 * k + 0.25))
    mids = [(b + a) / 2 for b, a in first]
    assert mids[1] / mids[0] == pytest.approx(2.0) and mids[3] / mids[1] == pytest.approx(2.0)  # exact pairs


def test_deeper_layers_scale_the_first_layer_and_keep_its_ratios():
    ranges = default_sigma_ranges(5, growth=0.25)
    first = torch.tensor(ranges[0], dtype=torch.float64)
    levels = [0, 1, 2, 3, 4, 3, 2, 1, 0]  # enc1..enc4, bottleneck, dec4..dec1
    for layer, r in enumerate(ranges):
        expected = first * (1 + 0.25 * levels[layer // 2])
        torch.testing.assert_close(torch.tensor(r, dtype=torch.float64), expected)
        mids = torch.tensor(r, dtype=torch.float64).mean(1)
        torch.testing.assert_close(mids / mids[0], torch.arange(1, 6, dtype=torch.float64))


def test_offset_layout_is_still_reachable():
    old = default_sigma_ranges(5, layout="offset")
    assert old[0] == [pytest.approx((0.5 * k, 0.5 * (k + 1))) for k in range(5)]
    assert old[9][-1][1] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="layout"):
        default_sigma_ranges(5, layout="shifted")


def test_seunet_sigma_layout_argument():
    from seunet_monai.networks import SEUNet

    tiny = (5, 10, 20, 40, 80)
    centred = SEUNet(channels=tiny).sigmas()["enc1.conv1"]
    torch.testing.assert_close(centred, torch.tensor([0.5, 1.0, 1.5, 2.0, 2.5]))
    offset = SEUNet(channels=tiny, sigma_layout="offset").sigmas()["enc1.conv1"]
    torch.testing.assert_close(offset, torch.tensor([0.25, 0.75, 1.25, 1.75, 2.25]))
    with pytest.raises(ValueError, match="layout"):
        SEUNet(channels=tiny, sigma_layout="centered")


def test_sampled_first_derivatives_do_not_vanish_at_the_smallest_centred_sigma():
    """At σ = 0.25 (old layout) the sampled derivative kernel is ~0; at the new smallest σ (0.5, and the lower
    bound 0.25 of its interval is never reached by the tanh of eq. 6) it is a usable derivative filter."""
    from seunet_monai.layers.gaussian_basis import gaussian_derivative_kernels_1d

    def first_derivative(sigma):
        s = torch.tensor(sigma, dtype=torch.float64)
        return gaussian_derivative_kernels_1d(s, 1, half_widths(s.view(1))[0], "sampled")[1]

    b, a = default_sigma_ranges(5)[0][0]
    smallest = (b + a) / 2
    assert smallest == pytest.approx(0.5)
    k_new, k_old = first_derivative(smallest), first_derivative(0.25)
    # response to a unit ramp f(x) = x, ideally the γ-normalised derivative σ·f' = σ: measured 0.43 at σ = 0.5
    # (85% of 0.5), 0.0027 at σ = 0.25 (1% of 0.25)
    ramp = torch.arange(-1.0, 2.0, dtype=torch.float64)
    assert float(k_new @ ramp) > 0.7 * smallest
    assert float(k_old @ ramp) < 0.05 * 0.25
