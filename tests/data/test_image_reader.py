"""Specification of the volume readers: the same volume saved as NIfTI (nibabel), MHA (ITK) and a multi-page TIFF
stack (seunet_monai.data.image_reader.TiffStackReader) loads to the same array and spacing through MONAI's
LoadImage with the volume variant's readers."""

from __future__ import annotations

import numpy as np
import pytest
from monai.transforms import LoadImage

from seunet_monai.data.image_reader import TiffStackReader
from seunet_monai.data.synthetic.volumes import save_nifti
from seunet_monai.data.volumes import VOLUME_READERS

SPACING = (0.5, 0.6, 2.0)


@pytest.fixture
def volume():
    return np.random.default_rng(0).random((20, 24, 12)).astype(np.float32)  # (X, Y, Z), not cubic


def _save_mha(path, volume, spacing):
    itk = pytest.importorskip("itk")
    img = itk.image_from_array(np.ascontiguousarray(volume.transpose(2, 1, 0)))  # ITK's numpy view is (Z, Y, X)
    img.SetSpacing([float(s) for s in spacing])
    itk.imwrite(img, str(path))


def _save_tiff(path, volume, spacing):
    import tifffile

    tifffile.imwrite(
        path,
        volume.transpose(2, 1, 0),
        imagej=True,
        resolution=(1 / spacing[0], 1 / spacing[1]),
        metadata={"spacing": spacing[2], "axes": "ZYX"},
    )


def test_nifti_and_mha_read_to_the_same_array_and_spacing(tmp_path, volume):
    save_nifti(tmp_path / "v.nii.gz", volume, SPACING)
    _save_mha(tmp_path / "v.mha", volume, SPACING)
    load = LoadImage(reader=list(VOLUME_READERS), image_only=True)
    nii, mha = load(str(tmp_path / "v.nii.gz")), load(str(tmp_path / "v.mha"))
    np.testing.assert_array_equal(nii.numpy(), volume)
    np.testing.assert_array_equal(mha.numpy(), volume)
    np.testing.assert_allclose(nii.pixdim, SPACING)
    np.testing.assert_allclose(mha.pixdim, SPACING)


def test_nifti_reads_alike_through_nibabel_and_itk(tmp_path, volume):
    pytest.importorskip("itk")
    save_nifti(tmp_path / "v.nii.gz", volume, SPACING)
    by_nibabel = LoadImage(reader="NibabelReader", image_only=True)(str(tmp_path / "v.nii.gz"))
    by_itk = LoadImage(reader="ITKReader", image_only=True)(str(tmp_path / "v.nii.gz"))
    np.testing.assert_array_equal(by_nibabel.numpy(), by_itk.numpy())
    np.testing.assert_allclose(by_nibabel.affine, by_itk.affine, atol=1e-6)


def test_tiff_stack_reads_like_the_nifti(tmp_path, volume):
    save_nifti(tmp_path / "v.nii.gz", volume, SPACING)
    _save_tiff(tmp_path / "v.tif", volume, SPACING)
    load = LoadImage(reader=list(VOLUME_READERS), image_only=True)
    tif, nii = load(str(tmp_path / "v.tif")), load(str(tmp_path / "v.nii.gz"))
    np.testing.assert_array_equal(tif.numpy(), nii.numpy())
    np.testing.assert_allclose(tif.pixdim, SPACING, rtol=1e-5)
    assert tif.meta["filename_or_obj"].endswith("v.tif")


def test_tiff_stack_reader_alone_and_its_refusals(tmp_path, volume):
    import tifffile

    _save_tiff(tmp_path / "v.tif", volume, SPACING)
    reader = TiffStackReader()
    assert reader.verify_suffix("a.TIFF") and not reader.verify_suffix("a.nii.gz")
    arr, meta = reader.get_data(reader.read(str(tmp_path / "v.tif")))
    assert arr.shape == (20, 24, 12) and np.isnan(meta["original_channel_dim"])
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((3, 8, 8, 3), np.uint8), photometric="rgb")
    with pytest.raises(ValueError, match="grey-scale"):
        reader.read(str(tmp_path / "rgb.tif"))
    with pytest.raises(ValueError, match=".tif"):
        reader.read(str(tmp_path / "v.nii.gz"))
