"""Volumes (3D) next to images (2D): which one a file holds, checks that a run gets the one its network
expects, reading volume labels, the inputs of a volume inference run and publishing its outputs.

A file's spatial dimensionality is read from its header where the format allows (NIfTI through ``nibabel``,
MHA/NRRD through ITK's ``ImageIO``, TIFF through ``tifffile``, PNG/JPEG through Pillow). A NIfTI/MHA file with
one slice (``(X, Y, 1)``) or a TIFF with one page is an image; a TIFF with several full-size grey pages, or a
NIfTI/MHA/NRRD with more than one slice, is a volume. An RGB(A) image (last axis of 3 or 4 samples) is 2D.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import itk
import nibabel
import numpy as np
import tifffile
from monai.config import KeysCollection
from monai.transforms import LoadImage, MapTransform
from PIL import Image

from seunet_monai.data.io import list_images
from seunet_monai.errors import DataError
from seunet_monai.runtime.checks import check_outputs
from seunet_monai.runtime.files import check_not_overlapping, ordinary_file_mode

__all__ = [
    "VOLUME_READERS",
    "VOLUME_SUFFIXES",
    "EnsureSpatialDimsd",
    "PublishSavedd",
    "check_datalist_dims",
    "check_spatial_dims",
    "file_spatial_shape",
    "list_volumes",
    "read_volume_label",
    "volume_stem",
]

logger = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".tif", ".tiff")
"""Files a volume run reads (case-insensitive): NIfTI, MetaImage, NRRD and TIFF stacks."""

VOLUME_READERS = ("ITKReader", "seunet_monai.data.image_reader.TiffStackReader", "NibabelReader")
"""``LoadImaged(reader=...)`` of the volume variant; MONAI tries them last to first: NIfTI through nibabel, TIFF
stacks through tifffile, MHA/NRRD (and anything else ITK reads) through ITK."""

_HINTS = {
    2: "this run is 2D (images); volumes need the 3D variant: add the overlays of bundle/configs/variants/3d/ last to "
    "--config_file",
    3: "this run is 3D (bundle/configs/variants/3d/); 2D images need the configs without that variant",
}


def volume_stem(path: str | os.PathLike) -> str:
    """The file name without its (double) extension: ``a.nii.gz`` -> ``a``, ``b.mha`` -> ``b``."""
    name = Path(str(path)).name
    for suffix in VOLUME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def file_spatial_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The spatial shape of an image or volume file, from its header where possible.

    Returns:
        ``(X, Y)`` / ``(H, W)`` for an image (a trailing RGB(A) axis and single slices dropped), ``(X, Y, Z)``
        for a volume.

    Raises:
        seunet_monai.errors.DataError: when the file cannot be read, naming it.
    """
    p = Path(path)
    name = p.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            shape = tuple(int(n) for n in nibabel.load(str(p)).shape[:3])  # (X, Y, Z[, t, c]): spatial part
        elif name.endswith((".mha", ".mhd", ".nrrd", ".nhdr")):
            io = itk.ImageIOFactory.CreateImageIO(str(p), itk.CommonEnums.IOFileMode_ReadMode)
            if io is None:
                raise ValueError("ITK has no ImageIO for it")
            io.SetFileName(str(p))
            io.ReadImageInformation()
            shape = tuple(int(io.GetDimensions(i)) for i in range(io.GetNumberOfDimensions()))  # components apart
        elif name.endswith((".tif", ".tiff")):
            with tifffile.TiffFile(str(p)) as tif:
                series = tif.series[0]
                # (Z, Y, X) pages as (X, Y, Z); RGB samples (axis "S") are not a spatial axis
                shape = tuple(int(n) for n, a in zip(reversed(series.shape), reversed(series.axes)) if a != "S")
        else:
            with Image.open(p) as img:
                shape = tuple(int(n) for n in img.size)  # bands are samples, not a spatial axis
    except Exception as e:  # noqa: BLE001 - one clear line naming the file
        raise DataError(f"cannot read the header of {p}: {type(e).__name__}: {e}") from e
    while len(shape) > 2 and shape[-1] == 1:  # a single slice
        shape = shape[:-1]
    return shape


def check_spatial_dims(path: str | os.PathLike, spatial_dims: int, key: str = "image") -> tuple[int, ...]:
    """Check that a file holds data of ``spatial_dims`` spatial dimensions (2: image, 3: volume).

    Returns:
        its spatial shape (:func:`file_spatial_shape`).

    Raises:
        seunet_monai.errors.DataError: one line naming the file, what it holds and what to run instead.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    shape = file_spatial_shape(path)
    if len(shape) != spatial_dims:
        what = "a volume" if len(shape) == 3 else "a 2D image" if len(shape) == 2 else f"{len(shape)}D data"
        raise DataError(
            f"{key} file {str(path)!r} holds {what} of shape {shape} but the network is {spatial_dims}D "
            f"(network_def#spatial_dims {spatial_dims}): {_HINTS[spatial_dims]}."
        )
    return shape


def check_datalist_dims(datalist: Mapping[str, Sequence[Mapping[str, Any]]], spatial_dims: int) -> None:
    """Check the images and labels of every split with :func:`check_spatial_dims` (headers only), and that each
    volume and its label have the same shape (the 2D size check compares height and width only)."""
    for split, entries in datalist.items():
        for entry in entries:
            shapes = {k: check_spatial_dims(entry[k], spatial_dims, k) for k in ("image", "label") if k in entry}
            if spatial_dims == 3 and len(shapes) == 2 and shapes["image"] != shapes["label"]:
                raise DataError(
                    f"{split}: image {entry['image']!r} has shape {shapes['image']} but its label "
                    f"{entry['label']!r} has shape {shapes['label']} (X, Y, Z); they must match voxel for voxel."
                )


def read_volume_label(path: str | os.PathLike) -> np.ndarray:
    """Read an integer label volume ``(X, Y, Z)`` with the volume variant's readers (:data:`VOLUME_READERS`).

    Raises:
        seunet_monai.errors.DataError: unreadable, not 3D, or not integer-valued (naming the file).
    """
    try:
        arr = np.asarray(LoadImage(reader=list(VOLUME_READERS), image_only=True, dtype=None)(str(path)))
    except Exception as e:  # noqa: BLE001 - one clear line naming the file
        raise DataError(f"cannot read label volume {str(path)!r}: {type(e).__name__}: {str(e).splitlines()[0]}") from e
    if arr.ndim != 3:
        raise DataError(f"label file {str(path)!r}: expected a volume (X, Y, Z), got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer) and not np.array_equal(arr, np.round(arr)):
        raise DataError(f"label file {str(path)!r}: expected integer class ids, got dtype {arr.dtype} with fractions.")
    return arr.astype(np.int64) if not np.issubdtype(arr.dtype, np.integer) else arr


class EnsureSpatialDimsd(MapTransform):
    """Refuse loaded data whose number of spatial dimensions is not ``spatial_dims`` (after ``LoadImaged`` and
    ``EnsureChannelFirstd``: ``(C, *spatial)``), with one line naming the file and the configs to use.

    Args:
        keys: keys to check.
        spatial_dims: expected spatial dimensions (2 or 3).
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(self, keys: KeysCollection, spatial_dims: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        self.spatial_dims = int(spatial_dims)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            x = d[key]
            dims = int(np.ndim(x)) - 1
            if dims != self.spatial_dims:
                meta = getattr(x, "meta", None) or {}
                name = meta.get("filename_or_obj", "<unknown file>")
                raise DataError(
                    f"{key} {str(name)!r} has {dims} spatial dims (shape {tuple(np.shape(x))[1:]}) but the network "
                    f"is {self.spatial_dims}D: {_HINTS[self.spatial_dims]}."
                )
        return d


def list_volumes(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    output_postfix: str = "seg",
    output_ext: str = ".nii.gz",
    overwrite: bool = False,
) -> list[dict[str, str]]:
    """The volume files of ``input_dir`` (not recursive, sorted) as ``[{"image": path}, ...]``, checked before
    anything is written: 3D each (headers), no two with the same output name, the output folder outside the
    input folder and, unless ``overwrite``, no output present (``<stem>_<postfix><ext>``).

    Raises:
        seunet_monai.errors.MissingPathError / DataError / ExistingPathError: one line naming the path.
    """
    folder = Path(os.path.expanduser(str(input_dir)))
    items = list_images(folder, VOLUME_SUFFIXES, what="volume")
    out = Path(os.path.expanduser(str(output_dir)))
    try:
        check_not_overlapping(out, [folder], what="output_dir")
    except ValueError as e:
        raise DataError(
            f"output_dir {str(out)!r} is the input folder or overlaps it; choose another --output_dir."
        ) from e
    for item in items:
        check_spatial_dims(item["image"], 3)
    check_outputs(items, out, overwrite, suffixes=(f"_{output_postfix}{output_ext}",), stem=volume_stem)
    return items


class PublishSavedd(MapTransform):
    """Move the file MONAI's ``SaveImaged`` just wrote (``meta["saved_to"]``, with ``savepath_in_metadict=True``)
    from its staging folder into ``output_dir`` with one ``os.replace``.

    ``SaveImaged`` writes its file in place (nibabel and ITK write the final name directly), so an interrupted run
    could leave a truncated prediction under the final name. Writing into a staging folder on the same file system
    and renaming makes every published file complete; the staging folder is removed once empty.

    Args:
        keys: keys whose metadata names the saved file (the ``SaveImaged`` keys).
        output_dir: the folder the files are published into.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(self, keys: KeysCollection, output_dir: str | os.PathLike, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_dir = Path(os.path.expanduser(str(output_dir)))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            meta = getattr(d[key], "meta", None) or d.get(f"{key}_meta_dict") or {}
            src = meta.get("saved_to")
            if not src:
                raise ValueError(
                    f"PublishSavedd: no 'saved_to' in the metadata of {key!r}; set SaveImaged(savepath_in_metadict=True)."
                )
            src = Path(src)
            self.output_dir.mkdir(parents=True, exist_ok=True)
            dst = self.output_dir / src.name
            os.chmod(src, ordinary_file_mode())
            os.replace(src, dst)
            meta["saved_to"] = str(dst)
            logger.info(f"wrote {dst}")
            try:
                src.parent.rmdir()  # the staging folder, once empty
            except OSError:
                pass
        return d
