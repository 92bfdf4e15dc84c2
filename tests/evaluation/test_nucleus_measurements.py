"""Specification of ``seunet_monai.evaluation.nucleus_measurements``: size, shape, probability and haematoxylin
optical density of every nucleus."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from skimage.color import rgb_from_hed
from skimage.draw import disk, ellipse

from seunet_monai.evaluation.nucleus_measurements import MEASUREMENT_COLUMNS, haematoxylin_od, nucleus_measurements

PX_COLUMNS = ["label", "area_px", "perimeter_px", "equivalent_diameter_px", "eccentricity", "solidity"]
UM_COLUMNS = ["area_um2", "perimeter_um", "equivalent_diameter_um"]


def disc_labels(radius: float, size: int = 64, label: int = 1) -> np.ndarray:
    labels = np.zeros((1, size, size), np.uint32)
    labels[0][disk((size / 2, size / 2), radius)] = label
    return labels


def stained(labels: np.ndarray, od_by_label: dict[int, float]) -> np.ndarray:
    """8-bit-range RGB ``(3, H, W)``: white background, each label a pure haematoxylin stain of the given OD."""
    rgb = np.full((3, *labels.shape[-2:]), 255.0)
    for k, od in od_by_label.items():
        rgb[:, labels[0] == k] = (255.0 * 10.0 ** (-od * rgb_from_hed[0]))[:, None]
    return rgb


def test_a_disc_of_known_radius_matches_its_analytic_measurements():
    r = 20
    m = nucleus_measurements(disc_labels(r), pixel_size_um=0.5)
    assert list(m) == PX_COLUMNS + UM_COLUMNS
    assert m["area_px"][0] == pytest.approx(math.pi * r**2, rel=0.02)
    assert m["perimeter_px"][0] == pytest.approx(2 * math.pi * r, rel=0.04)
    assert m["equivalent_diameter_px"][0] == pytest.approx(2 * r, rel=0.015)
    assert m["eccentricity"][0] < 0.05 and m["solidity"][0] > 0.95
    assert m["area_um2"][0] == pytest.approx(m["area_px"][0] * 0.25)
    assert m["perimeter_um"][0] == pytest.approx(m["perimeter_px"][0] * 0.5)
    assert m["equivalent_diameter_um"][0] == pytest.approx(2 * r * 0.5, rel=0.015)


def test_an_ellipse_is_eccentric():
    labels = np.zeros((64, 64), np.int64)
    labels[ellipse(32, 32, 8, 24)] = 1  # semi-axes 8 and 24: e = sqrt(1 - (8/24)^2) = 0.943
    m = nucleus_measurements(labels)
    assert m["eccentricity"][0] == pytest.approx(math.sqrt(1 - (8 / 24) ** 2), abs=0.01)


def test_the_same_physical_nucleus_measures_the_same_at_two_resolutions():
    radius_um = 6.0
    coarse = nucleus_measurements(disc_labels(radius_um / 0.5), pixel_size_um=0.5)
    fine = nucleus_measurements(disc_labels(radius_um / 0.25, size=128), pixel_size_um=0.25)
    for key in UM_COLUMNS:
        assert coarse[key][0] == pytest.approx(fine[key][0], rel=0.04), key
    assert fine["area_px"][0] == pytest.approx(4 * coarse["area_px"][0], rel=0.04)


def test_rows_are_keyed_by_label_id_in_ascending_order():
    labels = np.zeros((1, 64, 64), np.uint32)
    labels[0][disk((16, 16), 6)] = 7
    labels[0][disk((45, 45), 10)] = 3
    m = nucleus_measurements(labels)
    assert m["label"].tolist() == [3, 7]
    assert m["area_px"][0] > m["area_px"][1]  # label 3 is the larger disc
    assert all(len(v) == 2 for v in m.values())


def test_mean_probability_and_haematoxylin_od_per_nucleus():
    labels = np.zeros((1, 64, 64), np.uint32)
    labels[0][disk((16, 16), 6)] = 1
    labels[0][disk((45, 45), 10)] = 2
    probability = np.where(labels[0] == 1, 0.6, np.where(labels[0] == 2, 0.9, 0.05))[None]
    m = nucleus_measurements(labels, probability=probability, image=stained(labels, {1: 0.3, 2: 0.9}))
    assert m["mean_probability"] == pytest.approx([0.6, 0.9])
    assert m["mean_haematoxylin_od"] == pytest.approx([0.3, 0.9], abs=1e-6)
    assert set(m) <= set(MEASUREMENT_COLUMNS)


def test_haematoxylin_od_is_decadic_and_zero_on_white():
    labels = disc_labels(10)
    rgb = stained(labels, {1: 0.5})
    od = haematoxylin_od(rgb)
    assert od[32, 32] == pytest.approx(0.5) and od[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert haematoxylin_od(rgb / 255.0, max_value=1.0) == pytest.approx(od)
    assert haematoxylin_od(np.clip(np.round(rgb), 0, 255).astype(np.uint8))[32, 32] == pytest.approx(0.5, abs=0.02)


def test_micrometre_columns_only_with_a_known_resolution():
    labels = disc_labels(10)
    assert list(nucleus_measurements(labels)) == PX_COLUMNS  # unknown: px only, never a guess
    identity = MetaTensor(torch.from_numpy(labels.astype(np.int64)))
    assert list(nucleus_measurements(identity)) == PX_COLUMNS
    affine = torch.diag(torch.tensor([0.25, 0.25, 1.0, 1.0], dtype=torch.float64))
    from_affine = nucleus_measurements(MetaTensor(torch.from_numpy(labels.astype(np.int64)), affine=affine))
    assert from_affine["area_um2"][0] == pytest.approx(from_affine["area_px"][0] / 16)
    anisotropic = nucleus_measurements(labels, pixel_size_um=(0.25, 0.5))
    assert anisotropic["area_um2"][0] == pytest.approx(anisotropic["area_px"][0] * 0.125)
    assert math.isnan(anisotropic["perimeter_um"][0])  # no perimeter on non-square pixels


def test_no_nucleus_gives_empty_columns():
    m = nucleus_measurements(np.zeros((16, 16), np.int64), probability=np.zeros((16, 16)), pixel_size_um=0.5)
    assert list(m) == PX_COLUMNS + UM_COLUMNS + ["mean_probability"]
    assert all(v.shape == (0,) for v in m.values())


def test_bad_arguments_are_one_line_errors_naming_them():
    labels = disc_labels(10)
    cases = [
        (lambda: nucleus_measurements(labels[0, :, :, None]), "instances"),
        (lambda: nucleus_measurements(-labels.astype(np.int64)), "instances"),
        (lambda: nucleus_measurements(labels + 0.5), "instances"),
        (lambda: nucleus_measurements(labels, probability=np.zeros((32, 32))), "probability"),
        (lambda: nucleus_measurements(labels, image=np.zeros((64, 64, 3))), "image"),
        (lambda: nucleus_measurements(labels, image=np.zeros((3, 32, 32))), "image"),
        (lambda: nucleus_measurements(labels, pixel_size_um=-1.0), "pixel_size_um"),
        (lambda: haematoxylin_od(np.zeros((3, 4, 4)), max_value=0), "max_value"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name) as e:
            call()
        assert "\n" not in str(e.value)
