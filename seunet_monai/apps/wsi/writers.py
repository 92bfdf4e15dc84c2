"""Output files of slide inference: the class-id mask and the instance labels as tiled, compressed, pyramidal
(OME-)TIFFs, a palette PNG for small images and a QuPath GeoJSON FeatureCollection of instances (the pictures:
:mod:`~seunet_monai.apps.wsi.figures`).

Writers write to the path they are given (the caller writes into a staging folder and renames into place),
with ordinary ``open`` so that files get the usual permissions under the umask.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image
from skimage.measure import approximate_polygon

from .instances import Instance

__all__ = ["PALETTE", "GeoJSONWriter", "write_mask_tiff", "write_palette_png"]

#: Class colours (class id -> RGB): background black, then clearly visible colours.
PALETTE = [
    (0, 0, 0),
    (255, 224, 0),
    (0, 160, 255),
    (255, 0, 160),
    (0, 200, 80),
    (255, 120, 0),
    (160, 80, 255),
    (0, 230, 230),
    (200, 200, 200),
]


def _colour(c: int) -> tuple[int, int, int]:
    return PALETTE[c % len(PALETTE)] if c < len(PALETTE) else PALETTE[1 + (c - 1) % (len(PALETTE) - 1)]


def write_mask_tiff(
    path: str | os.PathLike,
    mask: Any,
    mpp: float | None = None,
    pyramid: bool = True,
    tile: int = 256,
    factor: int = 4,
    min_size: int = 1024,
    compression: str = "zlib",
) -> list[tuple[int, int]]:
    """Write a label map (class ids, or instance ids) as a tiled, compressed OME-TIFF, with sub-resolution
    levels in SubIFDs.

    Every level is streamed tile row by tile row from ``mask`` (a :class:`~.accumulator.RawMask` or an array
    ``(H, W)``, of any unsigned integer dtype: ``uint8`` class ids, ``uint32`` instance labels; the file has the
    mask's dtype): level ``k`` keeps every ``factor**k``-th pixel of level 0 (labels are not averaged), read row
    by row, until the longer side is at most ``min_size``; memory holds one tile row of one level. The resolution
    (µm per pixel) goes into the TIFF resolution tags (centimetre unit) and the OME ``PhysicalSizeX/Y``.

    Returns:
        the ``(height, width)`` of every level written.
    """
    read = mask.read_rows if hasattr(mask, "read_rows") else (lambda a, b: np.asarray(mask)[a:b])
    h, w = (int(v) for v in mask.shape)
    dtype = np.dtype(getattr(mask, "dtype", np.uint8))
    shapes = [(h, w)]
    while pyramid and max(shapes[-1]) > min_size:
        shapes.append((math.ceil(shapes[-1][0] / factor), math.ceil(shapes[-1][1] / factor)))

    def tiles(step: int, shape: tuple[int, int]):
        lh, lw = shape
        padded = np.zeros((tile, math.ceil(lw / tile) * tile), dtype=dtype)
        for ty in range(0, lh, tile):
            n = min(tile, lh - ty)
            padded[:] = 0
            if step == 1:
                padded[:n, :lw] = read(ty, ty + n)
            else:
                for i in range(n):
                    y = (ty + i) * step
                    padded[i, :lw] = read(y, y + 1)[0, ::step]
            for tx in range(0, lw, tile):
                yield padded[:, tx : tx + tile].copy()

    def options(level_mpp: float | None) -> dict:
        opts: dict[str, Any] = {"tile": (tile, tile), "compression": compression, "photometric": "minisblack"}
        if level_mpp:
            opts["resolution"] = (1e4 / level_mpp, 1e4 / level_mpp)
            opts["resolutionunit"] = "CENTIMETER"
        return opts

    meta: dict[str, Any] = {"axes": "YX"}
    if mpp:
        meta.update(PhysicalSizeX=mpp, PhysicalSizeXUnit="µm", PhysicalSizeY=mpp, PhysicalSizeYUnit="µm")
    with tifffile.TiffWriter(path, bigtiff=h * w * dtype.itemsize > 2**31, ome=True) as tif:
        tif.write(
            tiles(1, shapes[0]), shape=shapes[0], dtype=dtype, subifds=len(shapes) - 1, metadata=meta, **options(mpp)
        )
        for k in range(1, len(shapes)):
            d = factor**k
            tif.write(
                tiles(d, shapes[k]),
                shape=shapes[k],
                dtype=dtype,
                subfiletype=1,
                metadata=None,
                **options(mpp * d if mpp else None),
            )
    return shapes


def write_palette_png(path: str | os.PathLike, mask: np.ndarray, num_classes: int) -> None:
    """Save class ids as a palette PNG: pixel values stay class ids, viewers show :data:`PALETTE` colours."""
    flat: list[int] = []
    for c in range(256):
        flat.extend(_colour(c) if c < max(num_classes, 2) else (0, 0, 0))
    pimg = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
    pimg.putpalette(flat)
    with open(path, "wb") as f:
        pimg.save(f, format="PNG")


class GeoJSONWriter:
    """Streams instances into a QuPath-compatible GeoJSON ``FeatureCollection``, one feature at a time.

    Each feature: a ``Polygon`` in level-0 pixel coordinates (``scale`` = level-0 pixels per mask pixel),
    ``properties.objectType`` (``"detection"``), ``classification`` ``{"name", "color"}`` and
    ``measurements`` (``"Area px^2"`` at level 0, ``"Area µm^2"`` when ``mpp`` is known, then the
    ``measurements`` given to :meth:`add`). Every ring is simplified with scikit-image's ``approximate_polygon``
    (Douglas-Peucker) at a tolerance of ``simplify`` mask pixels before scaling; a ring that would keep fewer
    than 4 points (a triangle) is kept as it is. Areas are those of the pixels, never of the simplified polygon.

    Args:
        path: the ``.geojson`` file.
        class_names: name per class id.
        scale: level-0 pixels per mask pixel.
        mpp: µm per mask pixel, or ``None``.
        namespace: text that, with the instance number, makes the (reproducible) feature ids.
        simplify: tolerance of the polygon simplification in mask pixels (>= 0; 0 = the exact pixel outlines).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        class_names: Sequence[str],
        scale: float = 1.0,
        mpp: float | None = None,
        namespace: str = "",
        simplify: float = 0.0,
    ) -> None:
        if not (math.isfinite(float(simplify)) and float(simplify) >= 0):
            raise ValueError(f"geojson_simplify must be a tolerance >= 0 in pixels (0 = off), got {simplify!r}.")
        self.path = Path(path)
        self.class_names = list(class_names)
        self.scale = float(scale)
        self.mpp = mpp
        self.namespace = namespace
        self.simplify = float(simplify)
        self.count = 0
        self.areas_px: list[int] = []
        self._f = open(self.path, "w", encoding="utf-8")
        self._f.write('{"type": "FeatureCollection", "features": [\n')

    def _simplified(self, ring: np.ndarray) -> np.ndarray:
        if self.simplify <= 0:
            return ring
        out = approximate_polygon(ring, tolerance=self.simplify)
        return out if len(out) >= 4 else ring

    def add(self, inst: Instance, measurements: dict[str, float] | None = None) -> None:
        """Write one instance; ``measurements`` (name -> value, ``None`` or ``nan`` left out) follow the areas."""
        rings = [inst.polygon, *getattr(inst, "holes", [])]  # exterior, then one interior ring per hole
        coords = [np.round(self._simplified(r) * self.scale, 2).tolist() for r in rings]
        c = int(inst.class_id)
        name = self.class_names[c] if c < len(self.class_names) else f"class{c}"
        values: dict[str, float] = {"Area px^2": round(inst.area * self.scale**2, 2)}
        if self.mpp:
            values["Area µm^2"] = round(inst.area * self.mpp**2, 3)
        for key, value in (measurements or {}).items():
            if value is not None and math.isfinite(float(value)):
                values[key] = round(float(value), 4)
        feature = {
            "type": "Feature",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.namespace}/{self.count}")),
            "geometry": {"type": "Polygon", "coordinates": coords},
            "properties": {
                "objectType": "detection",
                "classification": {"name": name, "color": list(_colour(c))},
                "measurements": values,
            },
        }
        self._f.write(("" if self.count == 0 else ",\n") + json.dumps(feature, ensure_ascii=False))
        self.count += 1
        self.areas_px.append(int(inst.area))

    def close(self) -> None:
        if not self._f.closed:
            self._f.write("\n]}\n")
            self._f.close()
