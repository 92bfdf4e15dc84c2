"""Objects of a class mask read band by band (``instances``): separated nuclei, exactly those of the whole mask
and each once across the seams of the bands, in bounded memory; connected components whole and with their holes.

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi
from skimage.measure import label

from seunet_monai.apps.wsi import iter_nucleus_bands
from seunet_monai.transforms.instances import NucleusInstances
from tests.apps.wsi.slides import CountingRows, nuclei_across_seams, tall_objects

FIXTURE = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "monuseg-sample"


def painted(bands, shape) -> np.ndarray:
    """The labels of :func:`iter_nucleus_bands` painted into one map, band after band (as ``write_nuclei`` does),
    checking that no nucleus of a band covers one of an earlier band."""
    out = np.zeros(shape, np.uint32)
    count = 0
    for part in bands:
        assert part.labels.max() == part.count and part.labels.shape[1] == shape[1]
        region = out[part.top : part.top + part.labels.shape[0]]
        inside = part.labels > 0
        assert not region[inside].any()
        region[inside] = part.labels[inside] + count
        count += part.count
    return out


def objects(labels: np.ndarray) -> set[tuple[int, ...]]:
    """The objects of a label map as a set of pixel sets (flat indices): labels compared up to renumbering."""
    flat = np.asarray(labels).ravel()
    order = np.argsort(flat, kind="stable")
    cuts = np.flatnonzero(np.diff(flat[order])) + 1
    return {tuple(g) for g in np.split(order, cuts) if flat[g[0]] > 0}


def whole(mask: np.ndarray, t: NucleusInstances, **maps) -> np.ndarray:
    return t(np.stack([~mask, mask]).astype(np.float32), **maps)[0]


@pytest.mark.parametrize("band", [5, 64, 100, 1000])
def test_bands_give_exactly_the_nuclei_of_the_whole_mask_each_once(band):
    mask = nuclei_across_seams()
    t = NucleusInstances(pixel_size_um=0.5)
    labels = painted(iter_nucleus_bands(mask.astype(np.uint8), t, 0.5, band=band), mask.shape)
    reference = whole(mask, t)
    assert objects(labels) == objects(reference)  # no nucleus lost, split or duplicated at a seam
    ids = np.unique(labels[labels > 0])
    assert ids.tolist() == list(range(1, ids.size + 1)) and ids.size > 40  # unique labels 1..N
    y = 2 * 64
    assert labels[y, 150] == labels[y - 8, 150] > 0  # the speck in the ring's filled hole is the ring's


@pytest.mark.parametrize("separation", ["boundary", "centre"])
def test_bands_pass_the_separation_map_as_the_whole_mask_does(separation):
    mask = nuclei_across_seams()
    distance = ndi.distance_transform_edt(mask)
    maps = {
        "boundary": ((distance > 0) & (distance < 2.5)).astype(np.float32) * 0.9,
        "centre": np.clip(distance / 7.0, 0, 1).astype(np.float32),
    }
    t = NucleusInstances(pixel_size_um=0.5)
    bands = iter_nucleus_bands(mask.astype(np.uint8), t, 0.5, band=64, **{separation: maps[separation]})
    reference = whole(mask, t, **{separation: maps[separation]})
    assert objects(painted(bands, mask.shape)) == objects(reference) != objects(whole(mask, t))


@pytest.mark.skipif(not (FIXTURE / "masks").is_dir(), reason="needs ../shared/fixtures/monuseg-sample")
def test_bands_of_a_real_mask_give_its_nuclei():
    mask = np.asarray(Image.open(FIXTURE / "masks" / "TCGA-E2-A1B5-01Z-00-DX1.png")) > 0
    t = NucleusInstances(pixel_size_um=0.25)
    labels = painted(iter_nucleus_bands(mask.astype(np.uint8), t, 0.25, band=128), mask.shape)
    assert objects(labels) == objects(whole(mask, t))


def test_the_mask_is_read_a_window_at_a_time():
    """Windows of a band and its margins; a cluster taller than the margin is followed, the windows growing
    with it (not with the mask)."""
    mask = np.tile(nuclei_across_seams(), (5, 1)).astype(np.uint8)  # 2000 rows, five 376-row chains
    t = NucleusInstances(pixel_size_um=0.5)
    guard, chain = int(10.0 / 0.25) + 1, 376  # the largest filled hole + 1 (px); the chains' height
    below = guard + 60  # and 30 µm at 0.5 µm/px
    rows = CountingRows(mask)
    n = sum(part.count for part in iter_nucleus_bands(rows, t, 0.5, band=64))
    assert n == len(objects(whole(mask.astype(bool), t)))
    spans = [b - a for a, b in rows.reads]
    assert max(spans) <= guard + 64 + 2 * (chain + guard) < mask.shape[0] / 2
    assert sum(spans) < 12 * mask.shape[0]
    no_chain = mask.copy()
    no_chain[:, 265:] = 0
    rows = CountingRows(no_chain)
    assert sum(part.count for part in iter_nucleus_bands(rows, t, 0.5, band=64)) > 100
    assert max(b - a for a, b in rows.reads) <= guard + 64 + below


@pytest.mark.parametrize("band,margin", [(32, 8), (50, 0), (1024, 128)])
def test_instances_are_whole_across_bands_and_keep_their_holes(band, margin):
    from skimage.measure import regionprops

    from seunet_monai.apps.wsi import iter_instances

    mask = tall_objects()
    ref = sorted((r.area, r.bbox, round(1 - r.euler_number)) for r in regionprops(label(mask == 1, connectivity=1)))
    insts = list(iter_instances(mask, 2, band=band, margin=margin))
    assert len(insts) == len(ref) == 6
    got = []
    for inst in insts:
        xy = inst.polygon
        assert (xy[0] == xy[-1]).all() and all((h[0] == h[-1]).all() for h in inst.holes)
        bbox = (round(xy[:, 1].min()), round(xy[:, 0].min()), round(xy[:, 1].max()), round(xy[:, 0].max()))
        got.append((inst.area, bbox, len(inst.holes)))
    assert sorted(got) == ref  # same pixels, extents and number of holes as the components of the whole mask
    bar = max(insts, key=lambda i: i.area)
    assert len(bar.holes) == 2 and bar.area == 225 * 10 - 2 * 40

    def signed(ring):
        return 0.5 * float(np.dot(ring[:-1, 0], ring[1:, 1]) - np.dot(ring[1:, 0], ring[:-1, 1]))

    assert signed(bar.polygon) > 0 and all(signed(h) < 0 for h in bar.holes)  # exterior CCW, holes CW
    hole_area = sum(-signed(h) for h in bar.holes)
    assert signed(bar.polygon) - hole_area == pytest.approx(bar.area, rel=0.02)
