"""Specification of ``seunet_monai.data.synthetic.tissue``: fields defined in physical coordinates."""

from __future__ import annotations

import numpy as np

from seunet_monai.data.synthetic.tissue import FourierField, smoothstep


def test_smoothstep_goes_from_zero_to_one_smoothly():
    x = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(smoothstep(x, 0.0, 1.0), [0.0, 0.0, 0.5, 1.0, 1.0])


def test_a_field_is_the_same_on_a_grid_and_at_points_and_has_unit_variance():
    field = FourierField(np.random.default_rng(0), 256, (5.0, 20.0))
    xs, ys = np.linspace(0, 200, 64), np.linspace(0, 150, 48)
    grid = field.grid(xs, ys)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    np.testing.assert_allclose(grid.ravel(), field.points(xx.ravel(), yy.ravel()), atol=1e-4)
    assert abs(float(grid.mean())) < 0.2 and 0.6 < float(grid.var()) < 1.4
    again = FourierField(np.random.default_rng(0), 256, (5.0, 20.0)).grid(xs, ys)
    np.testing.assert_array_equal(grid, again)  # seeded: the same tissue every time
