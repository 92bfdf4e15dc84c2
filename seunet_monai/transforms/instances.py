"""Nucleus instances from fused class probabilities: MONAI transforms and the resolution they work in.

- :class:`NucleusInstances` / :class:`NucleusInstancesd`: class probabilities ``(C, H, W)`` (nucleus = class
  ``nucleus_class``) -> instance labels ``(1, H, W)``, 0 = background, 1..N = nuclei;
- :func:`pixel_size_of`: the pixel size in µm ``(row, column)`` of an argument or a ``MetaTensor``, or ``None``;
- :func:`nucleus_components`, :func:`padded_box`: the components of a nucleus mask and the crop of each, for callers
  that separate some components only (a band of a slide).

Steps of :class:`NucleusInstances` (every size in µm, converted with the pixel size, so that the same
physical nucleus gives the same objects at any resolution):

1. Foreground: the pixels whose argmax over ``C`` is ``nucleus_class`` (the nucleus pixels of the class mask;
   the instances never change the class mask), or ``probs[nucleus_class] > threshold`` when a threshold is
   given.
2. Holes: background regions enclosed by the foreground with an area of at most ``max_hole_area_um2`` become
   foreground.
3. Markers (one per nucleus): the extended maxima of the Euclidean distance to the background in µm, i.e. the
   regional maxima of its h-maxima transform of height ``marker_h_um`` (Soille, Morphological Image Analysis,
   6.3.3), 8-connected. Two maxima form separate markers only when the distance drops by more than
   ``marker_h_um`` between them; a plateau or ridge of the distance (an elongated nucleus) is one marker.
   This is what splits touching nuclei at their neck without cutting one nucleus where the distance has
   several nearly equal peaks (the straight cuts of ``peak_local_max`` markers with a fixed pixel spacing).
   With a ``centre`` map, the markers are instead the connected components of ``centre > map_threshold``
   inside the foreground; with a ``boundary`` map, the distance is measured in the foreground minus the pixels
   with ``boundary > map_threshold`` (the nucleus interiors), so that markers and cuts follow the predicted
   borders.
4. Watershed (scikit-image ``watershed``, 8-connected) of the negated distance from the markers, inside the
   foreground (the border pixels included); each foreground component left without a marker is one object.
5. Objects with an area under ``min_nucleus_area_um2`` are removed (not merged into a neighbour); labels are
   renumbered ``1..N`` in raster order of their first pixel.

Steps 3-5 run on each 8-connected component of the hole-filled foreground on its own, in the crop of its bounding
box grown by one pixel (within the image) where the other components are background
(:meth:`NucleusInstances.separate`, the algorithm on arrays in :mod:`~seunet_monai.transforms.nucleus_watershed`,
which says why the nuclei of a component depend on that component alone).

Memory: the whole image is held as a few boolean masks, the int32 component labels and the output labels (the
probabilities are not copied); the distance, the markers and the watershed exist for one component's crop at a
time.

Resolution: ``pixel_size_um`` of the call, else of the constructor (µm per pixel, one value or ``(row, column)``;
per call, e.g. the training resolution divided by an estimated scale), else the pixel size of the
input ``MetaTensor``'s affine, read as µm. An identity affine is taken as *unknown*: it is what MONAI's readers
write when a file states no resolution (PNG, MoNuSeg's TIFFs) and a ``MetaTensor``'s default. With the
resolution unknown the transform raises a ``ValueError`` rather than fall back to pixel units, since
thresholds in µm² applied to pixels would be off by the square of the pixel size. An affine whose pixel size
lies outside ``[0.01, 100]`` µm (e.g. centimetres or millimetres from TIFF resolution tags) is refused too.
Whoever builds the ``MetaTensor`` owns the unit of its affine: a spatial transform applied to an image with an
identity affine (e.g. a zoom) makes an affine in *source pixels*, not µm, so pipelines that rescale should pass
``pixel_size_um`` explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type
from scipy import ndimage as ndi

from seunet_monai.transforms.nucleus_watershed import EIGHT_CONNECTED, above, fill_small_holes, separate_component

__all__ = ["NucleusInstances", "NucleusInstancesd", "nucleus_components", "padded_box", "pixel_size_of"]

_AFFINE_UM_RANGE = (0.01, 100.0)


def pixel_size_of(x: Any = None, pixel_size_um: float | Sequence[float] | None = None) -> tuple[float, float] | None:
    """The pixel size in µm ``(row, column)``: ``pixel_size_um`` when given, else that of ``x``'s affine, else ``None``.

    Args:
        x: an image ``(C, H, W)``; only a ``MetaTensor`` with a non-identity affine has a resolution.
        pixel_size_um: µm per pixel, one value (square pixels) or ``(row, column)``; wins over ``x``.

    Returns:
        ``(row, column)`` µm per pixel, or ``None`` when the resolution is unknown (module docstring).

    Raises:
        ValueError: for a ``pixel_size_um`` that is not one or two positive finite numbers, or an affine whose
            pixel size lies outside ``[0.01, 100]`` µm.
    """
    if pixel_size_um is not None:
        values = np.atleast_1d(np.asarray(pixel_size_um, dtype=np.float64)).ravel()
        if values.size not in (1, 2) or not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError(
                f"pixel_size_um must be one or two positive finite numbers (µm per pixel), got {pixel_size_um!r}."
            )
        if values.size == 1:
            values = np.repeat(values, 2)
        return float(values[0]), float(values[1])
    if not isinstance(x, MetaTensor):
        return None
    affine = np.asarray(x.affine, dtype=np.float64)
    if affine.ndim != 2 or np.allclose(affine, np.eye(affine.shape[0])):
        return None
    spacing = np.asarray(x.pixdim, dtype=np.float64).ravel()
    if spacing.size < 2:
        return None
    row, col = float(spacing[0]), float(spacing[1])
    lo, hi = _AFFINE_UM_RANGE
    if not (lo <= row <= hi and lo <= col <= hi):
        raise ValueError(
            f"pixel_size_um: the input's affine gives ({row:g}, {col:g}) per pixel, outside [{lo:g}, {hi:g}] µm "
            "(another unit?); give pixel_size_um."
        )
    return row, col


def _probability_map(value: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    """An extra map ``(H, W)`` or ``(1, H, W)`` as an ``(H, W)`` array of its own dtype (not copied)."""
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != shape:
        raise ValueError(f"{name} must be (H, W) or (1, H, W) with (H, W) = {shape}, got {arr.shape}.")
    return arr


def padded_box(box: tuple[slice, slice], shape: tuple[int, int]) -> tuple[slice, slice]:
    """``box`` (row and column slices, e.g. of ``scipy.ndimage.find_objects``) grown by one pixel on every side,
    within ``shape``: the crop in which :meth:`NucleusInstances.separate` sees one component."""
    return tuple(slice(max(0, b.start - 1), min(n, b.stop + 1)) for b, n in zip(box, shape))  # type: ignore[return-value]


def nucleus_components(nuclei: np.ndarray) -> tuple[np.ndarray, list[tuple[slice, slice] | None]]:
    """The 8-connected components of a (hole-filled) nucleus mask ``(H, W)``: int32 labels ``1..n`` in raster
    order of their first pixel, and the bounding box of each (``scipy.ndimage.find_objects``)."""
    components, _ = ndi.label(nuclei, structure=EIGHT_CONNECTED)
    return components, ndi.find_objects(components)


class NucleusInstances(Transform):
    """Array transform: class probabilities ``(C, H, W)`` -> nucleus instance labels ``(1, H, W)`` (module
    docstring: steps and resolution).

    Args:
        nucleus_class: channel of the nucleus class in ``C``.
        threshold: ``None`` (default): foreground = argmax over ``C`` is ``nucleus_class``; a number in
            ``(0, 1)``: foreground = ``probs[nucleus_class] > threshold``.
        pixel_size_um: µm per pixel, one value or ``(row, column)``; ``None``: from the input ``MetaTensor``
            (a ``ValueError`` when unknown).
        min_nucleus_area_um2: objects with a smaller area are removed (µm², >= 0). The default, 5 µm², was
            chosen with ``marker_h_um`` on the MoNuSeg validation images (``bundle/docs/research_log.md``).
        max_hole_area_um2: enclosed holes up to this area are filled (µm², >= 0; 0 = off).
        marker_h_um: drop of the distance (µm, > 0) that separates two markers; default 0.15 µm (0.6 px at
            0.25 µm per pixel), chosen on the validation images.
        map_threshold: threshold of the ``boundary`` and ``centre`` maps, in ``(0, 1)``.
        dtype: integer dtype of the labels (default ``np.uint32``; torch implements few operations on
            ``torch.uint32``, pass ``np.int64`` for labels to compute with in torch).

    The output has the input's type (numpy array, tensor or ``MetaTensor`` with the input's metadata).
    """

    def __init__(
        self,
        nucleus_class: int = 1,
        threshold: float | None = None,
        pixel_size_um: float | Sequence[float] | None = None,
        min_nucleus_area_um2: float = 5.0,
        max_hole_area_um2: float = 10.0,
        marker_h_um: float = 0.15,
        map_threshold: float = 0.5,
        dtype: Any = np.uint32,
    ) -> None:
        if int(nucleus_class) < 0:
            raise ValueError(f"nucleus_class must be >= 0, got {nucleus_class}.")
        if threshold is not None and not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must be None or in (0, 1), got {threshold}.")
        for name, value in (("min_nucleus_area_um2", min_nucleus_area_um2), ("max_hole_area_um2", max_hole_area_um2)):
            if not (math.isfinite(float(value)) and float(value) >= 0):
                raise ValueError(f"{name} must be a finite area >= 0 (µm²), got {value}.")
        if not (math.isfinite(float(marker_h_um)) and float(marker_h_um) > 0):
            raise ValueError(f"marker_h_um must be a finite height > 0 (µm), got {marker_h_um}.")
        if not 0.0 < float(map_threshold) < 1.0:
            raise ValueError(f"map_threshold must be in (0, 1), got {map_threshold}.")
        if np.dtype(dtype).kind not in "iu":
            raise ValueError(f"dtype must be an integer dtype, got {dtype!r}.")
        self.nucleus_class = int(nucleus_class)
        self.threshold = None if threshold is None else float(threshold)
        self.pixel_size_um = pixel_size_of(None, pixel_size_um) if pixel_size_um is not None else None
        self.min_nucleus_area_um2 = float(min_nucleus_area_um2)
        self.max_hole_area_um2 = float(max_hole_area_um2)
        self.marker_h_um = float(marker_h_um)
        self.map_threshold = float(map_threshold)
        self.dtype = dtype

    def __call__(
        self, probs: Any, boundary: Any = None, centre: Any = None, pixel_size_um: float | Sequence[float] | None = None
    ) -> Any:
        """
        Args:
            probs: ``(C, H, W)`` class probabilities (or scores: only their argmax is used without a threshold).
            boundary: optional ``(H, W)`` or ``(1, H, W)`` probability of a nucleus boundary.
            centre: optional ``(H, W)`` or ``(1, H, W)`` probability of a nucleus centre.
            pixel_size_um: µm per pixel of this input; overrides the constructor's and the input's affine.

        Returns:
            ``(1, H, W)`` labels, 0 = background, 1..N = nuclei, of dtype ``dtype`` and the input's type.

        Raises:
            ValueError: for a ``probs`` that is not ``(C, H, W)`` with ``C > nucleus_class``, extra maps of
                another size, or an unknown resolution.
        """
        size = self.resolution(probs, pixel_size_um)
        nuclei = self.fill_holes(self.foreground(probs), size)
        shape = nuclei.shape
        extra_b = None if boundary is None else _probability_map(boundary, shape, "boundary")
        extra_c = None if centre is None else _probability_map(centre, shape, "centre")
        components, boxes = nucleus_components(nuclei)
        del nuclei
        labels, _ = self.label_components(components, boxes, size, extra_b, extra_c)
        out = labels[None]
        return convert_to_dst_type(out, probs, dtype=out.dtype)[0] if isinstance(probs, torch.Tensor) else out

    def resolution(
        self, probs: Any = None, pixel_size_um: float | Sequence[float] | None = None
    ) -> tuple[float, float]:
        """µm per pixel ``(row, column)``: ``pixel_size_um``, else the constructor's, else ``probs``' affine.

        Raises:
            ValueError: when none of them states it (module docstring).
        """
        size = pixel_size_of(probs, self.pixel_size_um if pixel_size_um is None else pixel_size_um)
        if size is None:
            raise ValueError(
                "pixel_size_um: the resolution is unknown (not given, and the input has no MetaTensor affine in µm); "
                "give pixel_size_um (µm per pixel)."
            )
        return size

    def foreground(self, probs: Any) -> np.ndarray:
        """Step 1: the nucleus pixels ``(H, W)`` (bool) of class probabilities ``(C, H, W)``: where the argmax over
        ``C`` (the first of equal maxima, as ``numpy.argmax``) is ``nucleus_class``, or where
        ``probs[nucleus_class] > threshold``; computed in the input's dtype, without a float64 copy.

        Raises:
            ValueError: for a ``probs`` that is not ``(C, H, W)`` with ``C > nucleus_class``.
        """
        x = np.asarray(probs.detach().cpu() if isinstance(probs, torch.Tensor) else probs)
        k = self.nucleus_class
        if x.ndim != 3 or x.shape[0] <= k:
            raise ValueError(f"probs must be (C, H, W) class probabilities with C > nucleus_class={k}, got {x.shape}.")
        if self.threshold is not None:
            return above(x[k], self.threshold)
        fg = np.ones(x.shape[1:], dtype=bool)
        for j in range(x.shape[0]):
            if j != k:  # argmax is k: larger than every earlier class, at least every later one
                np.logical_and(fg, (x[k] > x[j]) if j < k else (x[k] >= x[j]), out=fg)
        if x.dtype.kind in "fc":  # numpy.argmax returns the first NaN: k when the first is at k
            nan_k = np.isnan(x[k])
            if nan_k.any():
                for j in range(k):
                    nan_k &= ~np.isnan(x[j])
                fg |= nan_k
        return fg

    def fill_holes(self, foreground: np.ndarray, pixel_size_um: float | Sequence[float]) -> np.ndarray:
        """Step 2: ``foreground`` ``(H, W)`` (bool, changed in place) with its enclosed holes of at most
        ``max_hole_area_um2`` filled."""
        size = pixel_size_of(None, pixel_size_um)
        return fill_small_holes(np.asarray(foreground, dtype=bool), self.max_hole_area_um2 / (size[0] * size[1]))

    def separate(
        self, component: np.ndarray, pixel_size_um: float | Sequence[float], boundary: Any = None, centre: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Steps 3-5 on one 8-connected component of the hole-filled nucleus mask
        (:func:`~seunet_monai.transforms.nucleus_watershed.separate_component` at this transform's sizes in µm).

        Args:
            component: ``(h, w)`` bool crop holding the component alone (the other pixels False), grown by one
                pixel on every side within the image (:func:`padded_box`); the result depends on this crop only.
            pixel_size_um: µm per pixel, one value or ``(row, column)``.
            boundary: optional ``(h, w)`` boundary probability over the crop.
            centre: optional ``(h, w)`` centre probability over the crop.

        Returns:
            int32 labels ``(h, w)`` (``1..n`` the nuclei in raster order, those under ``min_nucleus_area_um2``
            removed) and the flat index in the crop of each one's first pixel ``(n,)``.
        """
        size = pixel_size_of(None, pixel_size_um)
        min_area_px = self.min_nucleus_area_um2 / (size[0] * size[1])
        return separate_component(component, size, self.marker_h_um, min_area_px, self.map_threshold, boundary, centre)

    def label_components(
        self,
        components: np.ndarray,
        boxes: Sequence[tuple[slice, slice] | None],
        pixel_size_um: float | Sequence[float],
        boundary: np.ndarray | None = None,
        centre: np.ndarray | None = None,
        which: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, int]:
        """Steps 3-5 over the components of a hole-filled nucleus mask, one at a time (:meth:`separate`).

        Args:
            components: ``(H, W)`` int32 component labels and ``boxes`` their bounding boxes
                (:func:`nucleus_components`).
            boxes: see ``components``.
            pixel_size_um: µm per pixel.
            boundary: optional ``(H, W)`` boundary probability.
            centre: optional ``(H, W)`` centre probability.
            which: the component labels to separate (default all); the others stay 0.

        Returns:
            ``(H, W)`` labels of dtype ``dtype``: the nuclei of those components numbered ``1..N`` in raster order
            of their first pixel; and ``N``.
        """
        size = pixel_size_of(None, pixel_size_um)
        shape = components.shape
        min_area = self.min_nucleus_area_um2 / (size[0] * size[1])
        labels = np.zeros(shape, dtype=self.dtype)
        done: list[tuple[int, tuple[slice, slice]]] = []
        firsts: list[np.ndarray] = []
        count = 0
        for k in range(1, len(boxes) + 1) if which is None else which:
            box = boxes[k - 1]
            if box is None:
                continue
            crop = padded_box(box, shape)
            component = components[crop] == k
            if component.sum() < min_area:  # every nucleus of it would be smaller
                continue
            local, first = self.separate(
                component,
                size,
                None if boundary is None else boundary[crop],
                None if centre is None else centre[crop],
            )
            if not first.size:
                continue
            rows, cols = np.divmod(first, crop[1].stop - crop[1].start)
            firsts.append((rows + crop[0].start) * shape[1] + cols + crop[1].start)
            region = labels[crop]
            region[component] = (local[component] + count) * (local[component] > 0)
            count += first.size
            done.append((k, crop))
        if not count:
            return labels, 0
        order = np.argsort(np.concatenate(firsts), kind="stable")  # provisional id - 1 -> raster rank
        lut = np.zeros(count + 1, dtype=self.dtype)
        lut[order + 1] = np.arange(1, count + 1, dtype=self.dtype)
        for k, crop in done:
            region = labels[crop]
            inside = components[crop] == k
            region[inside] = lut[region[inside]]
        return labels, count


class NucleusInstancesd(MapTransform):
    """Dictionary form of :class:`NucleusInstances`: writes the labels of ``keys`` under ``new_key``.

    Args:
        keys: key of the class probabilities ``(C, H, W)`` (one key; the item is kept).
        new_key: key of the instance labels ``(1, H, W)``.
        boundary_key: optional key of a boundary probability map ``(1, H, W)``.
        centre_key: optional key of a centre probability map ``(1, H, W)``.
        pixel_size_key: optional key of the item's µm per pixel (a number or ``(row, column)``), e.g. written by
            the step that estimates its scale; overrides ``pixel_size_um``.
        kwargs: the arguments of :class:`NucleusInstances`.
        allow_missing_keys: don't raise for missing keys.
    """

    def __init__(
        self,
        keys: KeysCollection,
        new_key: str = "instances",
        boundary_key: str | None = None,
        centre_key: str | None = None,
        pixel_size_key: str | None = None,
        allow_missing_keys: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"keys: give one key, got {self.keys}.")
        self.new_key = new_key
        self.boundary_key = boundary_key
        self.centre_key = centre_key
        self.pixel_size_key = pixel_size_key
        self.transform = NucleusInstances(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            extra = {}
            for name, extra_key in (
                ("boundary", self.boundary_key),
                ("centre", self.centre_key),
                ("pixel_size_um", self.pixel_size_key),
            ):
                if extra_key is not None:
                    if extra_key not in d:
                        raise ValueError(
                            f"{name.removesuffix('_um')}_key: {extra_key!r} is not in the data (keys {sorted(map(str, d))})."
                        )
                    extra[name] = d[extra_key]
            d[self.new_key] = self.transform(d[key], **extra)
        return d
