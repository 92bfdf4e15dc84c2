"""Specification of ``seunet_monai.transforms.nucleus_watershed``: one component of a nucleus mask split into nuclei
at the necks of its distance (or by a centre or boundary map), small holes filled, small objects removed and the
rest numbered in raster order."""

from __future__ import annotations

import numpy as np
from skimage.draw import disk

from seunet_monai.transforms.nucleus_watershed import (
    above,
    extended_maxima,
    fill_small_holes,
    remove_small,
    separate_component,
)


def two_touching_discs() -> np.ndarray:
    mask = np.zeros((40, 64), dtype=bool)
    mask[disk((20, 20), 12)] = True
    mask[disk((20, 40), 12)] = True
    return mask


def test_two_touching_discs_are_two_nuclei_in_raster_order():
    labels, first = separate_component(two_touching_discs(), (0.25, 0.25), marker_h_um=0.15, min_area_px=0)
    assert labels.dtype == np.int32 and sorted(np.unique(labels).tolist()) == [0, 1, 2]
    assert labels[20, 14] == 1 and labels[20, 46] == 2
    assert first.tolist() == [int(np.flatnonzero(labels.ravel() == k)[0]) for k in (1, 2)]


def test_a_centre_map_gives_the_markers_and_a_boundary_map_the_interiors():
    mask = np.zeros((20, 50), dtype=bool)
    mask[4:16, 5:45] = True  # one ridge of the distance: one nucleus without a map
    assert separate_component(mask, (0.25, 0.25), 0.15, 0)[0].max() == 1
    centre = np.zeros(mask.shape, np.float32)
    centre[9:11, 12:14] = centre[9:11, 36:38] = 0.9
    labels, _ = separate_component(mask, (0.25, 0.25), 0.15, 0, centre=centre)
    assert labels.max() == 2 and np.array_equal(labels > 0, mask)
    boundary = np.zeros(mask.shape, np.float32)
    boundary[:, 24:26] = 0.9  # a predicted border across it
    labels, _ = separate_component(mask, (0.25, 0.25), 0.15, 0, boundary=boundary)
    assert labels.max() == 2 and np.array_equal(labels > 0, mask) and labels[10, 10] != labels[10, 40]


def test_a_component_without_two_markers_is_one_object():
    mask = np.zeros((20, 20), dtype=bool)
    mask[disk((10, 10), 6)] = True
    labels, first = separate_component(mask, (1.0, 1.0), marker_h_um=0.5, min_area_px=0)
    assert np.array_equal(labels, mask.astype(np.int32)) and first.size == 1


def test_small_objects_are_removed_and_the_rest_renumbered_by_first_pixel():
    labels = np.array([[0, 3, 3, 0], [5, 0, 3, 0], [0, 0, 0, 7]], dtype=np.int32)
    out, first = remove_small(labels, min_area_px=2)
    assert out.tolist() == [[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]] and first.tolist() == [1]


def test_only_holes_up_to_the_area_are_filled():
    mask = np.ones((20, 30), dtype=bool)
    mask[5:7, 5:7] = False  # 4 px
    mask[5:15, 15:25] = False  # 100 px
    filled = fill_small_holes(mask.copy(), max_area_px=10)
    assert filled[5:7, 5:7].all() and not filled[5:15, 15:25].any()


def test_extended_maxima_keep_a_plateau_as_one_region_and_above_compares_in_float64():
    image = np.zeros((5, 9))
    image[2, 2], image[2, 3], image[2, 6] = 1.0, 0.95, 1.0  # a low saddle between two peaks
    maxima = extended_maxima(image, 0.1)
    assert maxima[2, 2] and maxima[2, 6] and not maxima[0, 0]
    assert above(np.array([np.float32(0.3)]), 0.3).all()  # float32(0.3) > 0.3 in float64
