"""Specification of ``seunet_monai.transforms.instances``: nucleus instances from class probabilities (the
algorithm on arrays alone: ``tests/transforms/test_nucleus_watershed.py``)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image
from scipy import ndimage as ndi
from skimage.draw import disk, ellipse
from skimage.morphology import local_maxima, reconstruction
from skimage.segmentation import watershed

from seunet_monai.transforms.instances import NucleusInstances, NucleusInstancesd, pixel_size_of

FIXTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "monuseg-sample"


def probs_of(mask: np.ndarray) -> np.ndarray:
    """Two-class probabilities ``(2, H, W)`` of a boolean nucleus mask (0.9 inside, 0.1 outside)."""
    p1 = np.where(mask, 0.9, 0.1).astype(np.float32)
    return np.stack([1 - p1, p1])


def two_touching_discs(radius: int = 12, centre_distance: int = 20) -> np.ndarray:
    mask = np.zeros((64, 96), dtype=bool)
    mask[disk((32, 30), radius)] = True
    mask[disk((32, 30 + centre_distance), radius)] = True
    return mask


def with_affine(x: np.ndarray, row: float, col: float) -> MetaTensor:
    affine = torch.diag(torch.tensor([row, col, 1.0, 1.0], dtype=torch.float64))
    return MetaTensor(torch.from_numpy(x), affine=affine)


def test_two_touching_discs_are_split_in_two():
    mask = two_touching_discs()
    assert ndi.label(mask)[1] == 1  # one connected component: what the class mask gives today
    labels = NucleusInstances(pixel_size_um=0.5)(probs_of(mask))
    assert labels.shape == (1, 64, 96) and labels.dtype == np.uint32
    assert sorted(np.unique(labels)) == [0, 1, 2]
    assert np.array_equal(labels[0] > 0, mask)  # the instances cover exactly the nucleus pixels
    left, right = (labels[0] == 1).sum(), (labels[0] == 2).sum()
    assert abs(int(left) - int(right)) <= 0.05 * mask.sum()  # cut at the neck, in the middle
    assert labels[0, 32, 30] != labels[0, 32, 50]


def test_one_elongated_nucleus_is_not_split():
    mask = np.zeros((64, 96), dtype=bool)
    mask[ellipse(32, 48, 9, 30)] = True  # 9 µm x 30 µm at 1 µm/px: a ridge of distance maxima
    labels = NucleusInstances(pixel_size_um=0.5)(probs_of(mask))
    assert labels.max() == 1


@pytest.mark.parametrize("seed", range(4))
def test_a_nucleus_with_a_jagged_outline_is_one_object_at_the_defaults(seed):
    """A 5 µm-radius nucleus at 0.25 µm/px whose outline wobbles (5 lobes of 1.5 px, 0.7 px noise): its distance
    has several nearly equal peaks, and its noise leaves specks outside."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    phi, rr = np.arctan2(yy - 32, xx - 32), np.hypot(yy - 32, xx - 32)
    mask = rr < 20 + 1.5 * np.sin(5 * phi + rng.uniform(0, 6)) + rng.normal(0, 0.7, phi.shape)
    assert NucleusInstances(pixel_size_um=0.25)(probs_of(mask)).max() == 1


def test_a_deep_overlap_stays_one_object_with_a_higher_marker_h():
    mask = two_touching_discs(radius=12, centre_distance=14)
    probs = probs_of(mask)
    assert NucleusInstances(pixel_size_um=0.5, marker_h_um=0.5)(probs).max() == 2
    assert NucleusInstances(pixel_size_um=0.5, marker_h_um=2.0)(probs).max() == 1


def test_specks_under_the_area_threshold_are_removed():
    mask = np.zeros((64, 64), dtype=bool)
    mask[disk((32, 32), 10)] = True  # 314 px = 78.5 µm² at 0.5 µm/px
    mask[2:4, 2:4] = True  # 4 px = 1 µm²
    mask[60, 60] = True
    labels = NucleusInstances(pixel_size_um=0.5, min_nucleus_area_um2=10.0)(probs_of(mask))
    assert labels.max() == 1 and labels[0, 32, 32] == 1 and labels[0, 2, 2] == 0 and labels[0, 60, 60] == 0
    kept = NucleusInstances(pixel_size_um=0.5, min_nucleus_area_um2=0.0)(probs_of(mask))
    assert kept.max() == 3


def test_the_area_threshold_follows_the_pixel_size():
    mask = np.zeros((32, 32), dtype=bool)
    mask[10:15, 10:20] = True  # 50 px
    probs = probs_of(mask)
    # 50 px = 12.5 µm² at 0.5 µm/px (kept), 3.1 µm² at 0.25 µm/px (removed)
    assert NucleusInstances(pixel_size_um=0.5, min_nucleus_area_um2=10.0)(probs).max() == 1
    assert NucleusInstances(pixel_size_um=0.25, min_nucleus_area_um2=10.0)(probs).max() == 0


@pytest.mark.parametrize("um_per_px", [0.5, 0.25])
def test_the_same_physical_scene_gives_the_same_objects_at_two_resolutions(um_per_px):
    """A nucleus of radius 5 µm touching one of radius 4.5 µm, and a 1 µm² speck, drawn at two resolutions."""
    size = int(round(40 / um_per_px))
    mask = np.zeros((size, size), dtype=bool)
    for (y, x), r in (((20, 12), 5.0), ((20, 20.5), 4.5)):
        mask[disk((y / um_per_px, x / um_per_px), r / um_per_px)] = True
    speck = int(round(1.0 / um_per_px))  # 1 µm x 1 µm
    mask[2 : 2 + speck, 2 : 2 + speck] = True
    labels = NucleusInstances(pixel_size_um=um_per_px, min_nucleus_area_um2=10.0)(probs_of(mask))[0]
    assert labels.max() == 2
    areas_um2 = sorted(float((labels == k).sum()) * um_per_px**2 for k in (1, 2))
    assert areas_um2 == pytest.approx(sorted([np.pi * 4.5**2, np.pi * 5.0**2]), rel=0.12)


def test_small_holes_are_filled_and_large_ones_kept():
    mask = np.zeros((64, 64), dtype=bool)
    mask[disk((32, 32), 20)] = True
    mask[20:22, 20:22] = False  # 4 px = 1 µm² at 0.5 µm/px
    mask[disk((34, 34), 6)] = False  # 113 px = 28 µm²
    labels = NucleusInstances(pixel_size_um=0.5, max_hole_area_um2=10.0, marker_h_um=50.0)(probs_of(mask))[0]
    assert labels[20, 20] == 1 and labels[34, 34] == 0
    unfilled = NucleusInstances(pixel_size_um=0.5, max_hole_area_um2=0.0, marker_h_um=50.0)(probs_of(mask))[0]
    assert unfilled[20, 20] == 0


def test_labels_are_numbered_in_raster_order_and_foreground_is_the_argmax():
    mask = np.zeros((48, 48), dtype=bool)
    mask[disk((35, 10), 6)] = True
    mask[disk((10, 35), 6)] = True
    probs = np.concatenate([probs_of(mask), np.zeros((1, 48, 48), np.float32)])  # 3 classes, nucleus = 1
    labels = NucleusInstances(pixel_size_um=1.0)(probs)[0]
    assert labels[10, 35] == 1 and labels[35, 10] == 2
    probs[2, 35, 10] = 1.0  # that pixel now belongs to class 2 in the class mask (a hole, kept unfilled)
    assert NucleusInstances(pixel_size_um=1.0, max_hole_area_um2=0.0)(probs)[0, 35, 10] == 0


def test_threshold_on_the_nucleus_probability():
    p1 = np.zeros((32, 32), np.float32)
    p1[8:24, 8:24] = 0.4
    probs = np.stack([1 - p1, p1])
    assert NucleusInstances(pixel_size_um=1.0)(probs).max() == 0  # argmax: background
    assert NucleusInstances(pixel_size_um=1.0, threshold=0.3)(probs).max() == 1


def test_resolution_is_read_from_a_metatensor_affine():
    mask = np.zeros((32, 32), dtype=bool)
    mask[10:15, 10:20] = True  # 50 px
    probs = probs_of(mask)
    out = NucleusInstances(min_nucleus_area_um2=10.0)(with_affine(probs, 0.5, 0.5))
    assert isinstance(out, MetaTensor) and out.shape == (1, 32, 32)
    assert int(out.long().max()) == 1
    assert np.allclose(out.pixdim.numpy(), [0.5, 0.5])
    assert int(NucleusInstances(min_nucleus_area_um2=10.0)(with_affine(probs, 0.25, 0.25)).long().max()) == 0
    # an explicit pixel size wins over the affine, and the call's over the constructor's
    assert int(NucleusInstances(pixel_size_um=0.5)(with_affine(probs, 0.25, 0.25)).long().max()) == 1
    assert NucleusInstances(pixel_size_um=0.25)(probs, pixel_size_um=0.5).max() == 1
    assert pixel_size_of(with_affine(probs, 0.25, 0.5)) == (0.25, 0.5)


def test_unknown_resolution_is_a_one_line_error():
    probs = probs_of(two_touching_discs())
    for unknown in (probs, torch.from_numpy(probs), MetaTensor(torch.from_numpy(probs))):  # no affine / identity
        with pytest.raises(ValueError, match="pixel_size_um") as e:
            NucleusInstances()(unknown)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="pixel_size_um.*another unit"):
        NucleusInstances()(with_affine(probs, 2.5e-5, 2.5e-5))  # centimetres


def test_a_centre_map_gives_the_markers():
    mask = two_touching_discs(radius=12, centre_distance=14)  # one marker from the distance alone
    assert NucleusInstances(pixel_size_um=0.5, marker_h_um=2.0)(probs_of(mask)).max() == 1
    centre = np.zeros(mask.shape, np.float32)
    centre[disk((32, 30), 3)] = 0.9
    centre[disk((32, 44), 3)] = 0.9
    labels = NucleusInstances(pixel_size_um=0.5, marker_h_um=2.0)(probs_of(mask), centre=centre)[0]
    assert labels.max() == 2 and labels[32, 30] != labels[32, 44]


def test_a_boundary_map_separates_the_interiors():
    mask = two_touching_discs(radius=12, centre_distance=14)
    boundary = np.zeros(mask.shape, np.float32)
    boundary[:, 36:39] = 0.9  # a predicted border across the neck
    labels = NucleusInstances(pixel_size_um=0.5, marker_h_um=2.0)(probs_of(mask), boundary=boundary[None])[0]
    assert labels.max() == 2 and labels[32, 30] != labels[32, 44]
    assert np.array_equal(labels > 0, mask)


def test_empty_prediction_gives_no_objects():
    probs = probs_of(np.zeros((16, 16), dtype=bool))
    labels = NucleusInstances(pixel_size_um=0.5)(probs)
    assert labels.shape == (1, 16, 16) and labels.max() == 0


def test_dict_transform_adds_the_labels_under_new_key():
    probs = probs_of(two_touching_discs())
    d = NucleusInstancesd("pred", pixel_size_um=0.5)({"pred": probs})
    assert d["pred"] is probs and d["instances"].max() == 2
    d = NucleusInstancesd("pred", new_key="objects", centre_key="centre", pixel_size_um=0.5)(
        {"pred": probs, "centre": np.zeros((1, 64, 96), np.float32)}
    )
    assert d["objects"].max() == 1  # no centre above the threshold: each component is one object
    per_item = NucleusInstancesd("pred", pixel_size_key="mpp", min_nucleus_area_um2=10.0)
    speck = probs_of(np.pad(np.ones((5, 10), bool), 10))  # 50 px
    assert per_item({"pred": speck, "mpp": 0.5})["instances"].max() == 1
    assert per_item({"pred": speck, "mpp": 0.25})["instances"].max() == 0
    with pytest.raises(ValueError, match="pixel_size_key"):
        per_item({"pred": speck})
    with pytest.raises(ValueError, match="boundary_key"):
        NucleusInstancesd("pred", boundary_key="edges", pixel_size_um=0.5)({"pred": probs})
    with pytest.raises(ValueError, match="keys"):
        NucleusInstancesd(["a", "b"], pixel_size_um=0.5)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"nucleus_class": -1}, "nucleus_class"),
        ({"threshold": 1.5}, "threshold"),
        ({"min_nucleus_area_um2": -1.0}, "min_nucleus_area_um2"),
        ({"max_hole_area_um2": float("nan")}, "max_hole_area_um2"),
        ({"marker_h_um": 0.0}, "marker_h_um"),
        ({"map_threshold": 1.0}, "map_threshold"),
        ({"pixel_size_um": 0.0}, "pixel_size_um"),
        ({"pixel_size_um": (0.5, 0.5, 0.5)}, "pixel_size_um"),
        ({"dtype": np.float32}, "dtype"),
    ],
)
def test_bad_arguments_are_one_line_errors_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name) as e:
        NucleusInstances(**kwargs)
    assert "\n" not in str(e.value)


def test_bad_inputs_are_one_line_errors_naming_them():
    t = NucleusInstances(pixel_size_um=0.5)
    with pytest.raises(ValueError, match="probs"):
        t(np.zeros((16, 16), np.float32))
    with pytest.raises(ValueError, match="probs"):
        NucleusInstances(nucleus_class=2, pixel_size_um=0.5)(np.zeros((2, 16, 16), np.float32))
    with pytest.raises(ValueError, match="boundary"):
        t(np.zeros((2, 16, 16), np.float32), boundary=np.zeros((8, 8)))
    with pytest.raises(ValueError, match="centre"):
        t(np.zeros((2, 16, 16), np.float32), centre=np.zeros((2, 16, 16)))


def touching_pairs(shape=(256, 320), seed=0) -> np.ndarray:
    """Pairs of touching discs of unequal radii (8-14 px) and single discs, scattered over ``shape``."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=bool)
    for _ in range(30):
        r = rng.uniform(8, 14)
        y, x = rng.uniform(r, shape[0] - r), rng.uniform(r, shape[1] - r)
        mask[disk((y, x), r, shape=shape)] = True
        if rng.random() < 0.6:
            a, r2 = rng.uniform(0, 2 * np.pi), rng.uniform(6, 12)
            mask[disk((y + 1.6 * r * np.sin(a), x + 1.6 * r * np.cos(a)), r2, shape=shape)] = True
    return mask


def whole_image_nuclei(mask: np.ndarray, um_per_px: float, h: float = 0.15, min_area_um2: float = 5.0) -> np.ndarray:
    """Steps 3-5 as one pass over the whole image (one distance, one set of markers, one watershed): the reference
    the per-component computation is held to."""
    t = NucleusInstances(pixel_size_um=um_per_px, min_nucleus_area_um2=min_area_um2, marker_h_um=h)
    fg = t.fill_holes(mask.copy(), um_per_px)
    distance = ndi.distance_transform_edt(fg, sampling=(um_per_px, um_per_px))
    peaks = local_maxima(reconstruction(distance - h, distance), connectivity=2, allow_borders=True).astype(bool)
    markers, _ = ndi.label(peaks & fg, structure=np.ones((3, 3)))
    labels = watershed(-distance, markers, connectivity=2, mask=fg)
    orphans, _ = ndi.label(fg & (labels == 0), structure=np.ones((3, 3)))
    labels[orphans > 0] = orphans[orphans > 0] + labels.max()
    areas = np.bincount(labels.ravel())
    labels[areas[labels] < min_area_um2 / um_per_px**2] = 0
    return labels


def objects(labels: np.ndarray) -> set[tuple[int, ...]]:
    """The objects of a label map as a set of pixel sets (flat indices): labels compared up to renumbering."""
    flat = np.asarray(labels).ravel()
    order = np.argsort(flat, kind="stable")
    cuts = np.flatnonzero(np.diff(flat[order])) + 1
    return {tuple(g) for g in np.split(order, cuts) if flat[g[0]] > 0}


def test_a_component_gets_the_same_nuclei_alone_or_among_others():
    mask = touching_pairs()
    t = NucleusInstances(pixel_size_um=0.25)
    together = objects(t(probs_of(mask))[0])
    alone = set()
    components, n = ndi.label(mask, structure=np.ones((3, 3)))
    for k in range(1, n + 1):
        alone |= objects(t(probs_of(components == k))[0])
    assert together == alone and len(together) > n  # touching pairs are split


def test_a_component_alone_gets_the_nuclei_of_one_whole_image_watershed():
    components, n = ndi.label(touching_pairs(seed=1), structure=np.ones((3, 3)))
    t = NucleusInstances(pixel_size_um=0.25)
    for k in range(1, n + 1):
        single = components == k
        assert objects(t(probs_of(single))[0]) == objects(whole_image_nuclei(single, 0.25))


@pytest.mark.skipif(not (FIXTURE / "masks").is_dir(), reason="needs ../shared/fixtures/monuseg-sample")
@pytest.mark.parametrize("name", ["TCGA-B0-5710-01Z-00-DX1", "TCGA-E2-A1B5-01Z-00-DX1"])
def test_a_real_mask_gets_the_nuclei_of_one_whole_image_watershed_up_to_its_ties(name):
    """Per component, the distance and the markers are those of the whole image; over a whole image,
    scikit-image's watershed settles pixels that two fronts reach at the same priority in an order set by every
    marker of the image, per component by the component's. On a genuine MoNuSeg mask (about 300 nuclei, 1000²
    px at 0.25 µm/px) almost every nucleus is pixel for pixel the same, and the nucleus pixels are the same."""
    mask = np.asarray(Image.open(FIXTURE / "masks" / f"{name}.png")) > 0
    ours = NucleusInstances(pixel_size_um=0.25, min_nucleus_area_um2=0.0)(probs_of(mask))[0]
    reference = whole_image_nuclei(mask, 0.25, min_area_um2=0.0)
    a, b = objects(ours), objects(reference)
    assert np.array_equal(ours > 0, reference > 0) and len(a) == len(b) > 250
    assert len(a & b) >= 0.98 * len(b)


def test_the_foreground_is_numpy_argmax_including_ties_and_nan():
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 3, (3, 40, 40)).astype(np.float32)  # many ties
    probs[:, :5, :5] = np.nan
    probs[1, 5:8, :8] = np.nan
    probs[0, 6, :4] = np.nan
    t = NucleusInstances(nucleus_class=1, pixel_size_um=1.0)
    assert np.array_equal(t.foreground(probs), np.argmax(probs, axis=0) == 1)
    assert np.array_equal(t.foreground(torch.from_numpy(probs)), np.argmax(probs, axis=0) == 1)
    p = np.full((2, 4, 4), np.float32(0.3))  # float32(0.3) > 0.3 in float64, as the threshold is compared
    assert NucleusInstances(threshold=0.3, pixel_size_um=1.0).foreground(p).all()


def test_memory_stays_a_few_bytes_per_pixel():
    """float32 probabilities are not copied to float64, and the distance, markers and watershed exist for one
    component's crop at a time (bundle/docs/benchmarks.md has the measured figures)."""
    mask = np.tile(touching_pairs(), (2, 2))
    probs = probs_of(mask)
    t = NucleusInstances(pixel_size_um=0.25)
    t(probs[:, :32, :32])
    tracemalloc.start()
    t(probs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak / mask.size < 32  # bytes per pixel (the whole-image computation needed about 115)
