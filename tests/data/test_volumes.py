"""Specification of seunet_monai.data.volumes: 2D/3D checks naming the file and the configs to use, label
volumes, the inputs of a volume inference run and publishing SaveImaged's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from PIL import Image

from seunet_monai.data.synthetic.volumes import save_nifti
from seunet_monai.data.volumes import (
    EnsureSpatialDimsd,
    PublishSavedd,
    check_datalist_dims,
    check_spatial_dims,
    file_spatial_shape,
    list_volumes,
    read_volume_label,
    volume_stem,
)
from seunet_monai.errors import DataError, ExistingPathError, SeunetError


@pytest.fixture
def files(tmp_path):
    import tifffile

    tmp_path = tmp_path / "in"
    tmp_path.mkdir()
    save_nifti(tmp_path / "vol.nii.gz", np.zeros((10, 12, 8), np.uint8), (1, 1, 2))
    save_nifti(tmp_path / "slice.nii.gz", np.zeros((10, 12, 1), np.uint8), (1, 1, 1))
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((8, 12, 10), np.uint16))
    tifffile.imwrite(tmp_path / "page.tif", np.zeros((12, 10, 3), np.uint8), photometric="rgb")
    return tmp_path


def test_file_spatial_shape_tells_images_from_volumes(files):
    assert file_spatial_shape(files / "vol.nii.gz") == (10, 12, 8)
    assert file_spatial_shape(files / "stack.tif") == (10, 12, 8)
    assert file_spatial_shape(files / "slice.nii.gz") == (10, 12)
    assert file_spatial_shape(files / "rgb.png") == (10, 12)
    assert file_spatial_shape(files / "page.tif") == (10, 12)


@pytest.mark.parametrize(
    "name, dims, hint",
    [
        ("rgb.png", 3, "without that variant"),
        ("page.tif", 3, "without"),
        ("vol.nii.gz", 2, "variants/3d/"),
        ("stack.tif", 2, "3d/"),
    ],
)
def test_wrong_dimensionality_is_one_clear_line(files, name, dims, hint):
    with pytest.raises(DataError) as e:
        check_spatial_dims(files / name, dims)
    message = str(e.value)
    assert "\n" not in message and name in message and f"network is {dims}D" in message and hint in message


def test_datalist_check_compares_volume_shapes(files):
    save_nifti(files / "lab.nii.gz", np.zeros((10, 12, 7), np.uint8), (1, 1, 2))
    ok = {"training": [{"image": str(files / "vol.nii.gz"), "label": str(files / "vol.nii.gz")}]}
    check_datalist_dims(ok, 3)
    bad = {"training": [{"image": str(files / "vol.nii.gz"), "label": str(files / "lab.nii.gz")}]}
    with pytest.raises(DataError, match="must match voxel for voxel"):
        check_datalist_dims(bad, 3)


def test_read_volume_label_keeps_integer_values(tmp_path):
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[2:5, 2:5, 2:5] = 1
    save_nifti(tmp_path / "l.nii.gz", lab, (1, 1, 1))
    out = read_volume_label(tmp_path / "l.nii.gz")
    assert np.issubdtype(out.dtype, np.integer) and out.sum() == 27
    save_nifti(tmp_path / "f.nii.gz", lab.astype(np.float32) * 0.5, (1, 1, 1))
    with pytest.raises(DataError, match="integer"):
        read_volume_label(tmp_path / "f.nii.gz")


def test_ensure_spatial_dims_transform():
    t = EnsureSpatialDimsd("image", spatial_dims=3)
    vol = MetaTensor(torch.zeros(1, 4, 4, 4), meta={"filename_or_obj": "a.nii.gz"})
    assert t({"image": vol})["image"] is vol
    with pytest.raises(SeunetError, match="a.png.*2 spatial dims.*network is 3D"):
        t({"image": MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": "a.png"})})


def test_list_volumes_checks_before_writing(files, tmp_path):
    out = tmp_path / "out"
    assert files.parent == tmp_path
    with pytest.raises(DataError, match="rgb.png|page.tif|slice.nii.gz"):  # 2D files among the inputs
        list_volumes(files, out)
    vols = tmp_path / "vols"
    vols.mkdir()
    save_nifti(vols / "a.nii.gz", np.zeros((8, 8, 8), np.float32), (1, 1, 1))
    (vols / "notes.txt").write_text("not a volume")
    assert [volume_stem(i["image"]) for i in list_volumes(vols, out)] == ["a"]
    out.mkdir()
    (out / "a_seg.nii.gz").write_bytes(b"old")
    with pytest.raises(ExistingPathError, match="--overwrite"):
        list_volumes(vols, out)
    assert len(list_volumes(vols, out, overwrite=True)) == 1
    with pytest.raises(DataError, match="input folder"):
        list_volumes(vols, vols)
    save_nifti(vols / "a.nii", np.zeros((8, 8, 8), np.float32), (1, 1, 1))
    with pytest.raises(DataError, match="same output"):
        list_volumes(vols, tmp_path / "other")


def test_publish_saved_moves_the_file_into_place(tmp_path):
    staging = tmp_path / "out" / ".staging"
    staging.mkdir(parents=True)
    (staging / "a_seg.nii.gz").write_bytes(b"data")
    pred = MetaTensor(torch.zeros(1, 2, 2, 2), meta={"saved_to": str(staging / "a_seg.nii.gz")})
    PublishSavedd("pred", tmp_path / "out")({"pred": pred})
    assert (tmp_path / "out" / "a_seg.nii.gz").read_bytes() == b"data"
    assert not staging.exists() and pred.meta["saved_to"] == str(tmp_path / "out" / "a_seg.nii.gz")
    with pytest.raises(ValueError, match="savepath_in_metadict"):
        PublishSavedd("pred", tmp_path / "out")({"pred": MetaTensor(torch.zeros(1, 2, 2, 2))})
