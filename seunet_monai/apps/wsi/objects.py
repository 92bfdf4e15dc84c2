"""The objects of one input, exported: ``NAME.geojson`` (and ``NAME_instances.tif`` for a nucleus model) and their
counts.

- :func:`write_nuclei` (images and slides of a 2-class nucleus model): touching nuclei separated by
  :class:`~seunet_monai.transforms.instances.NucleusInstances` on the class mask (guided by the network's fused
  separation map when it predicts one), band by band (:func:`~.instances.iter_nucleus_bands`), written as an
  instance TIFF and as one GeoJSON polygon per nucleus with its measurements
  (:func:`~seunet_monai.evaluation.nucleus_measurements.nucleus_measurements`, computed on crops of a few thousand
  columns of a band, whose values per nucleus are those of the whole image).
- :func:`write_components` (models of other classes): the connected components of each non-background class of
  the class mask, streamed band by band.

Both return the summary's ``nuclei`` entry: count, areas (µm² with a known resolution, else px² of the inference
level) and what the objects are.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from seunet_monai.evaluation.nucleus_measurements import nucleus_measurements
from seunet_monai.transforms.instances import NucleusInstances

from .accumulator import RawMask
from .instances import NucleusBand, iter_instances, iter_label_instances, iter_nucleus_bands
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


#: columns of a band whose nuclei are measured at once (each nucleus with the block of the first column of its box)
MEASURE_COLUMNS = 2048


def _write_band(writer: GeoJSONWriter, part: NucleusBand, slide: InferredSlide, mpp: float | None) -> None:
    """The GeoJSON features of the nuclei of one band, measured block by block of :data:`MEASURE_COLUMNS`."""
    boxes = ndi.find_objects(part.labels)
    blocks = np.array([box[1].start // MEASURE_COLUMNS for box in boxes])
    probability = slide.accumulator.probability
    for block in np.unique(blocks):
        ids = np.flatnonzero(blocks == block) + 1
        r0, r1 = min(boxes[i - 1][0].start for i in ids), max(boxes[i - 1][0].stop for i in ids)
        c0, c1 = min(boxes[i - 1][1].start for i in ids), max(boxes[i - 1][1].stop for i in ids)
        keep = np.zeros(part.count + 1, dtype=bool)
        keep[ids] = True
        crop = part.labels[r0:r1, c0:c1]
        crop = np.where(keep[crop], crop, 0)
        y, x, h, w = part.top + r0, c0, r1 - r0, c1 - c0
        table = nucleus_measurements(
            crop,
            None if probability is None else probability.read_block(y, x, h, w),
            np.moveaxis(slide.read_region((y, x), (h, w)), -1, 0),
            pixel_size_um=mpp,
        )
        rows = {int(k): i for i, k in enumerate(table["label"])}
        offset = np.array([x, y], dtype=np.float64)
        for inst in iter_label_instances(crop, class_id=1):
            i = rows[inst.label]
            inst.polygon = inst.polygon + offset
            inst.holes = [ring + offset for ring in inst.holes]
            writer.add(
                inst,
                {
                    name: float(table[col][i]) * (slide.downsample if lengths else 1.0)
                    for col, name, lengths in _MEASUREMENTS
                    if col in table
                },
            )


def write_nuclei(
    staging: Path,
    stem: str,
    slide: InferredSlide,
    instances: NucleusInstances,
    class_names: Sequence[str],
    simplify: float,
    target_mpp: float | None,
    separation: str | None = None,
    band: int = 512,
) -> tuple[dict, RawMask]:
    """``NAME_instances.tif`` and ``NAME.geojson`` of the separated nuclei of an image or a slide, band by band.

    Args:
        staging: the folder written into (also holds ``instances.raw``, the labels before they become the TIFF).
        stem: ``NAME``.
        slide: the inferred input (its class mask, nucleus probability, separation map and pixels).
        instances: the separation of touching nuclei.
        class_names: name per class (GeoJSON classification).
        simplify: polygon simplification tolerance (pixels of the inference level).
        target_mpp: the training resolution, assumed for the instance sizes when the input states none
            (:data:`ASSUMED_MPP` without it either).
        separation: ``"boundary"`` or ``"centre"``: what the accumulator's separation map is (passed to
            ``instances`` under that name); ``None``: the instances of the class mask alone.
        band: rows per band (:func:`~.instances.iter_nucleus_bands`); the nuclei do not depend on it.

    Returns:
        the summary's ``nuclei`` entry and the ``uint32`` labels (a :class:`~.accumulator.RawMask` in ``staging``,
        unique across the input, numbered band after band).
    """
    mpp, size, acc = slide.mpp, slide.size, slide.accumulator
    pixel = mpp or target_mpp or ASSUMED_MPP
    maps = {separation: acc.separation} if separation is not None and acc.separation is not None else {}
    labels = RawMask(staging / "instances.raw", size, np.uint32)
    writer = GeoJSONWriter(
        staging / f"{stem}.geojson", class_names, scale=slide.downsample, mpp=mpp, namespace=stem, simplify=simplify
    )
    count = 0
    try:
        for part in iter_nucleus_bands(acc.mask, instances, pixel, band=band, **maps):
            rows = labels.read_rows(part.top, part.top + part.labels.shape[0])
            inside = part.labels > 0
            rows[inside] = part.labels[inside] + np.uint32(count)
            labels.write_rows(part.top, rows)
            _write_band(writer, part, slide, mpp)
            count += part.count
    finally:
        writer.close()
    write_mask_tiff(staging / f"{stem}_instances.tif", labels, mpp=mpp, pyramid=max(size) > 2048)
    guide = f", guided by the network's {separation} map" if maps else ""
    return {
        **_areas(writer, mpp),
        "objects": "separated instances (NAME_instances.tif: marker-controlled watershed of the nucleus mask"
        f"{guide}, objects under {instances.min_nucleus_area_um2:g} µm² left out)",
        "instance_mpp": float(pixel),
        "instance_mpp_source": "the input's resolution (resolution.source says where it came from)"
        if mpp
        else f"assumed: the training resolution {pixel:g} µm/px (the input states none; give --mpp)",
    }, labels


def write_components(
    target: Path,
    stem: str,
    slide: InferredSlide,
    num_classes: int,
    class_names: Sequence[str],
    simplify: float,
    margin: int,
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

    Returns:
        the summary's ``nuclei`` entry.
    """
    writer = GeoJSONWriter(
        target, class_names, scale=slide.downsample, mpp=slide.mpp, namespace=stem, simplify=simplify
    )
    try:
        for inst in iter_instances(slide.accumulator.mask, num_classes, margin=margin):
            writer.add(inst)
    finally:
        writer.close()
    return {**_areas(writer, slide.mpp), "objects": "connected components of the class mask"}
