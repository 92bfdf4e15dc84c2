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
    assert tops[:10] == sorted(tops[:10]) and tops[9] == max(tops) == pytest.approx(5.0)
    assert tops[10:] == sorted(tops[10:], reverse=True) and tops[-1] == tops[0]
    for i, r in enumerate(ranges):
        validate_sigma_bounds(r, 5, f"layer {i}")
    with pytest.raises(ValueError):
        default_sigma_ranges(0)
