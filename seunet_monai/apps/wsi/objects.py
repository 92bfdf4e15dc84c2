"""The objects of one input, exported: ``NAME.geojson`` (and ``NAME_instances.tif`` for images) and their counts.

- :func:`write_nuclei` (ordinary images of a 2-class nucleus model): touching nuclei separated by
  :class:`~seunet_monai.transforms.instances.NucleusInstances` on the class mask, written as an instance TIFF and
  as one GeoJSON polygon per nucleus with its measurements
  (:func:`~seunet_monai.evaluation.nucleus_measurements.nucleus_measurements`).
- :func:`write_components` (slides, and images of other models): the connected components of each
  non-background class of the class mask, streamed band by band (optionally split by a watershed).

Both return the summary's ``nuclei`` entry: count, areas (µm² with a known resolution, else px² of the inference
level) and what the objects are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seunet_monai.evaluation.nucleus_measurements import nucleus_measurements
from seunet_monai.transforms.instances import NucleusInstances

from .instances import iter_instances, iter_label_instances
from .slide import InferredSlide
from .writers import GeoJSONWriter, write_mask_tiff

__all__ = ["ASSUMED_MPP", "write_components", "write_nuclei"]

#: µm per pixel assumed for the sizes of the instances of an image of unknown resolution when there is no
#: ``target_mpp`` either: the bundle's training resolution (MoNuSeg, 40x).
ASSUMED_MPP = 0.25

#: GeoJSON measurement name per column of the nucleus table, and the factor of its pixel lengths (level-0 pixels)
_MEASUREMENTS = (
    ("perimeter_px", "Perimeter px", True),
    ("perimeter_um", "Perimeter µm", False),
    ("equivalent_diameter_px", "Equivalent diameter px", True),
    ("equivalent_diameter_um", "Equivalent diameter µm", False),
    ("eccentricity", "Eccentricity", False),
    ("solidity", "Solidity", False),
    ("mean_probability", "Nucleus probability mean", False),
    ("mean_haematoxylin_od", "Haematoxylin OD mean", False),
)


def _areas(writer: GeoJSONWriter, mpp: float | None) -> dict:
    """Count and area statistics of the objects a writer wrote (µm² with ``mpp``, else px²)."""
    areas = np.asarray(writer.areas_px, dtype=np.float64) * ((mpp**2) if mpp else 1.0)
    stats = {k: (float(getattr(np, k)(areas)) if areas.size else None) for k in ("mean", "median", "std", "min", "max")}
    return {"count": writer.count, "area_unit": "µm^2" if mpp else "px^2 (inference level)", "area": stats}


def write_nuclei(
    staging: Path,
    stem: str,
    slide: InferredSlide,
    instances: NucleusInstances,
    class_names: Sequence[str],
    simplify: float,
    target_mpp: float | None,
) -> tuple[dict, np.ndarray]:
    """``NAME_instances.tif`` and ``NAME.geojson`` of the separated nuclei of an image.

    Args:
        staging: the folder written into.
        stem: ``NAME``.
        slide: the inferred image (its class mask, nucleus probability and pixels).
        instances: the separation of touching nuclei.
        class_names: name per class (GeoJSON classification).
        simplify: polygon simplification tolerance (pixels of the inference level).
        target_mpp: the training resolution, assumed for the instance sizes when the image states none
            (:data:`ASSUMED_MPP` without it either).

    Returns:
        the summary's ``nuclei`` entry and the instance labels ``(H, W)``.
    """
    mpp, size, ds, acc = slide.mpp, slide.size, slide.downsample, slide.accumulator
    pixel = mpp or target_mpp or ASSUMED_MPP
    mask = acc.mask.read_rows(0, size[0])
    onehot = np.stack([mask != 1, mask == 1]).astype(np.float32)
    labels = np.asarray(instances(onehot, pixel_size_um=pixel))[0]
    del onehot
    write_mask_tiff(staging / f"{stem}_instances.tif", labels, mpp=mpp, pyramid=max(size) > 2048)
    probability = acc.probability.read_rows(0, size[0]) if acc.probability is not None else None
    image = np.moveaxis(slide.read_region((0, 0), size), -1, 0)
    table = nucleus_measurements(labels, probability, image, pixel_size_um=mpp)
    rows = {int(k): i for i, k in enumerate(table["label"])}
    writer = GeoJSONWriter(
        staging / f"{stem}.geojson", class_names, scale=ds, mpp=mpp, namespace=stem, simplify=simplify
    )
    try:
        for inst in iter_label_instances(labels, class_id=1):
            i = rows[inst.label]
            writer.add(
                inst,
                {
                    name: float(table[col][i]) * (ds if lengths else 1.0)
                    for col, name, lengths in _MEASUREMENTS
                    if col in table
                },
            )
    finally:
        writer.close()
    return {
        **_areas(writer, mpp),
        "objects": "separated instances (NAME_instances.tif: marker-controlled watershed of the nucleus mask, "
        f"objects under {instances.min_nucleus_area_um2:g} µm² left out)",
        "instance_mpp": float(pixel),
        "instance_mpp_source": "the image's resolution (resolution.source says where it came from)"
        if mpp
        else f"assumed: the training resolution {pixel:g} µm/px (the image states none; give --mpp)",
    }, labels


def write_components(
    target: Path,
    stem: str,
    slide: InferredSlide,
    num_classes: int,
    class_names: Sequence[str],
    simplify: float,
    margin: int,
    watershed: bool,
    min_distance: int,
) -> dict:
    """``NAME.geojson`` of the connected components of each non-background class of the class mask.

    Args:
        target: the GeoJSON file.
        stem: ``NAME`` (the features' namespace).
        slide: the inferred slide.
        num_classes: classes of the mask.
        class_names: name per class.
        simplify: polygon simplification tolerance (pixels of the inference level).
        margin: rows read below each band of the mask at once (:func:`~.instances.iter_instances`).
        watershed: split touching objects (``peak_local_max`` markers).
        min_distance: watershed marker spacing (pixels of the inference level).

    Returns:
        the summary's ``nuclei`` entry.
    """
    writer = GeoJSONWriter(
        target, class_names, scale=slide.downsample, mpp=slide.mpp, namespace=stem, simplify=simplify
    )
    try:
        for inst in iter_instances(
            slide.accumulator.mask, num_classes, margin=margin, watershed=watershed, min_distance=min_distance
        ):
            writer.add(inst)
    finally:
        writer.close()
    return {
        **_areas(writer, slide.mpp),
        "objects": "connected components of the class mask" + (" split by watershed" if watershed else ""),
    }
