"""Specification of the synthetic 3D nuclei generator (:mod:`seunet_monai.data.synthetic.volumes`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seunet_monai.data.datalist import load_datalist
from seunet_monai.data.synthetic.volumes import make_synthetic_volumes, synthesize_volume

SMALL = dict(n_train=2, n_val=1, n_test=1, size=32)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_volumes_are_bright_nuclei_on_a_dim_noisy_background():
    image, label = synthesize_volume(np.random.default_rng(0), 40)
    assert image.shape == label.shape == (40, 40, 40) and image.dtype == np.float32 and label.dtype == np.uint8
    assert set(np.unique(label)) == {0, 1} and 0.03 < label.mean() < 0.4
    assert image[label == 1].mean() > 3 * image[label == 0].mean()
    assert image[label == 0].std() > 0  # Poisson/read noise


def test_nuclei_vary_in_size_and_orientation():
    from scipy import ndimage

    _, label = synthesize_volume(np.random.default_rng(1), 48)
    objects, n = ndimage.label(label)
    assert n >= 5
    sizes = np.bincount(objects.ravel())[1:]
    assert sizes.max() > 2 * np.median(sizes)  # varied sizes
    extents = [np.ptp(np.argwhere(objects == k), axis=0) for k in range(1, n + 1) if sizes[k - 1] > 200]
    longest = {int(np.argmax(e)) for e in extents}
    assert len(longest) >= 2  # the long axis is not always the same: varied orientation


def test_scale_two_makes_nuclei_about_eight_times_larger_in_voxels():
    from scipy import ndimage

    def mean_size(scale):
        sizes = []
        for seed in range(3):
            _, label = synthesize_volume(np.random.default_rng(seed), 48, scale=scale)
            objects, n = ndimage.label(label)
            sizes += list(np.bincount(objects.ravel())[1:])
        return np.median(sizes)

    assert 4 < mean_size(2.0) / mean_size(1.0) < 12


def test_anisotropic_spacing_gives_thinner_nuclei_along_z():
    from scipy import ndimage

    def z_over_x(spacing):  # mean z extent / mean x extent (voxels) of the nuclei away from the border
        ratios = []
        for seed in range(3):
            _, label = synthesize_volume(np.random.default_rng(seed), 48, spacing=spacing)
            objects, _ = ndimage.label(label)
            for sl in ndimage.find_objects(objects):
                if all(0 < s.start and s.stop < 48 for s in sl):
                    ratios.append((sl[2].stop - sl[2].start) / (sl[0].stop - sl[0].start))
        return float(np.mean(ratios))

    assert z_over_x((1, 1, 1)) > 0.8
    assert z_over_x((1, 1, 2)) < 0.65


def test_dataset_is_nifti_with_spacing_and_a_datalist(tmp_path):
    import nibabel as nib

    path = make_synthetic_volumes(tmp_path / "v", **SMALL, scale=2.0, spacing=[1, 1, 2])
    d = load_datalist(path.parent, check_sizes=True)
    assert [len(d[k]) for k in ("training", "validation", "test")] == [2, 1, 1]
    for entry in d["training"]:
        img, lab = nib.load(entry["image"]), nib.load(entry["label"])
        assert entry["image"].endswith(".nii.gz") and img.shape == lab.shape == (32, 32, 32)
        np.testing.assert_allclose(img.header.get_zooms(), [0.5, 0.5, 1.0])  # spacing / scale
        np.testing.assert_allclose(np.diag(img.affine)[:3], [0.5, 0.5, 1.0])
        assert set(np.unique(np.asarray(lab.dataobj))) <= {0, 1}
    report = json.loads((path.parent / "synthetic_report.json").read_text())
    assert report["parameters"]["spacing"] == [1.0, 1.0, 2.0] and report["voxel_size"] == [0.5, 0.5, 1.0]


def test_same_seed_same_bytes(tmp_path):
    make_synthetic_volumes(tmp_path / "a", **SMALL)
    make_synthetic_volumes(tmp_path / "b", **SMALL)
    make_synthetic_volumes(tmp_path / "c", **SMALL, seed=1)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a")["images/test_0000.nii.gz"] != _files(tmp_path / "c")["images/test_0000.nii.gz"]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"size": 4}, "size"), ({"scale": 0}, "scale"), ({"spacing": [1, 2]}, "spacing"), ({"n_train": -1}, "training")],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic_volumes(tmp_path / "x", **{**SMALL, **kwargs})
