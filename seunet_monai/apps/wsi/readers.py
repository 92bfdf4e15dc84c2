"""Whole-slide and ordinary image readers for patch-wise inference (MONAI ``BaseWSIReader`` backends).

- :class:`TiffRegionReader`: tiled/pyramidal TIFF, OME-TIFF and Aperio SVS through tifffile. It subclasses
  MONAI's :class:`monai.data.TiffFileWSIReader` and works around two of its limitations in MONAI 1.6.1:

  1. ``TiffFileWSIReader._get_patch`` decodes the **whole level** (``wsi.asarray(level=level)``) for every
     patch, i.e. 4.8 GB per patch of a 40,000 x 40,000 RGB slide. Here only the tiles (or strips) that
     overlap the requested region are read and decoded (``TiffPage.decode`` on the segments' bytes), and a
     region reaching beyond the image is padded with white (255, like background glass), which is what
     ``WSISlidingWindowSplitter``'s constant padding needs (MONAI pads only with the cuCIM/OpenSlide backends).
  2. Levels are taken as ``wsi.pages[level]``, which is wrong for SVS (page 1 is the thumbnail, not a level)
     and for OME-TIFF pyramids stored in SubIFDs. Here levels are tifffile's ``series[0].levels``, and the
     resolution comes from the resolution tags, the Aperio description (``MPP = ...``) or the OME-XML
     ``PhysicalSizeX`` (MONAI reads the tags only).

- :class:`PILImageReader`: PNG and JPEG, decoded whole with Pillow (these formats have no random access to a
  region). Pillow's decompression-bomb guess is replaced by an explicit bound, :data:`MAX_IMAGE_PIXELS`
  (2^28 pixels, e.g. 16,384 x 16,384, about 1.9 GB while decoding: Pillow's 4 bytes per pixel plus the
  3-byte array), checked from the header *before* decoding; a larger PNG/JPEG is refused with one line that
  says to convert it to a tiled pyramidal TIFF, which is read tile by tile in bounded memory.

cuCIM and OpenSlide (MONAI's ``WSIReader(backend="cucim" | "openslide")``) are used for slides when installed
and asked for (:func:`make_reader`); the tifffile backend is always available and is the default.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.wsi_reader import BaseWSIReader, TiffFileWSIReader, WSIReader
from PIL import Image
from scipy.ndimage import affine_transform, gaussian_filter
from skimage.transform import downscale_local_mean, resize

from seunet_monai.data.io import to_rgb
from seunet_monai.errors import ImageTooLargeError

__all__ = [
    "WHOLE_IMAGE_SUFFIXES",
    "MAX_IMAGE_PIXELS",
    "PLAUSIBLE_MPP",
    "SLIDE_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "PILImageReader",
    "ResampledLevelReader",
    "TiffRegionReader",
    "choose_level",
    "implausible_resolution",
    "level_mpp",
    "make_reader",
    "read_region",
    "read_thumbnail",
]

MAX_IMAGE_PIXELS = 2**28
"""Largest PNG/JPEG (pixels) decoded whole; larger ones must be converted to a tiled TIFF (module docstring)."""
WHOLE_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Ordinary images, decoded whole (Pillow)."""
SLIDE_SUFFIXES = (".tif", ".tiff", ".svs")
"""Files read region by region (tifffile): TIFF (tiled or stripped, pyramidal or not), OME-TIFF, Aperio SVS."""
SUPPORTED_SUFFIXES = WHOLE_IMAGE_SUFFIXES + SLIDE_SUFFIXES
PLAUSIBLE_MPP = (0.05, 10.0)
"""Level-0 resolutions (µm per pixel) taken as a microscope's: from below the optical limit to a 1x scan. A file
stating one outside this range (typically a screen or print dpi: 72-600 dpi is 353-42 µm/px, or a default
pixels-per-centimetre tag) is treated as of unknown resolution (:func:`implausible_resolution`)."""

_CM_PER_UNIT = {2: 2.54, 3: 1.0}  # ResolutionUnit INCH, CENTIMETER
_OME_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


def _to_rgb_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    """``(H, W[, S])`` -> ``(H, W, 3) uint8`` (grey replicated, alpha dropped; other than 8-bit refused)."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] in (4, 2):
        arr = arr[..., :3] if arr.shape[-1] == 4 else np.repeat(arr[..., :1], 3, axis=-1)
    if arr.shape[-1] != 3:
        raise ValueError(f"{name}: expected grey, RGB or RGBA samples, got {arr.shape[-1]} per pixel.")
    if arr.dtype != np.uint8:
        bits = "16-bit" if arr.dtype.itemsize == 2 else str(arr.dtype)
        raise ValueError(f"{name}: {bits} pixels; expected 8-bit RGB (grey/RGBA are converted). Convert it to 8 bits.")
    return arr


class TiffRegionReader(TiffFileWSIReader):
    """MONAI tifffile WSI backend that decodes only the tiles of the requested region (see module docstring).

    ``read`` returns the open :class:`tifffile.TiffFile`; levels are ``series[0].levels``. Arguments are those
    of :class:`monai.data.TiffFileWSIReader` (``level``, ``channel_dim``, ``dtype``, ``mode``...).
    """

    backend = "tifffile"
    supported_suffixes = ["tif", "tiff", "svs"]

    @staticmethod
    def _levels(wsi: Any) -> list:
        if not wsi.series:
            raise ValueError(f"{wsi.filehandle.path}: no image series in this TIFF file.")
        return list(wsi.series[0].levels)

    @staticmethod
    def _page(wsi: Any, level: int) -> Any:
        levels = TiffRegionReader._levels(wsi)
        if not 0 <= level < len(levels):
            raise ValueError(f"{wsi.filehandle.path}: level {level} requested, the file has {len(levels)} levels.")
        return levels[level].pages[0]

    @staticmethod
    def get_level_count(wsi: Any) -> int:
        return len(TiffRegionReader._levels(wsi))

    def get_size(self, wsi: Any, level: int) -> tuple[int, int]:
        page = self._page(wsi, level)
        return int(page.imagelength), int(page.imagewidth)

    def get_downsample_ratio(self, wsi: Any, level: int) -> float:
        return float(self.get_size(wsi, 0)[0]) / float(self.get_size(wsi, level)[0])

    def get_mpp(self, wsi: Any, level: int) -> tuple[float, float]:
        """Micrometres per pixel (y, x) at ``level``.

        Raises:
            ValueError: when the file records no physical resolution.
        """
        base = self._base_mpp(wsi)
        if base is None:
            raise ValueError(f"{wsi.filehandle.path}: no resolution metadata (µm per pixel) in the file.")
        r = self.get_downsample_ratio(wsi, level)
        return base[0] * r, base[1] * r

    @staticmethod
    def _base_mpp(wsi: Any) -> tuple[float, float] | None:
        """Level-0 µm per pixel from the Aperio description, the OME-XML or the resolution tags."""
        page = wsi.pages[0]
        desc = page.description or ""
        if wsi.is_svs:
            m = re.search(r"MPP\s*=\s*([0-9.eE+-]+)", desc)
            if m and float(m.group(1)) > 0:
                return float(m.group(1)), float(m.group(1))
        if wsi.is_ome and wsi.ome_metadata:
            mx = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', wsi.ome_metadata)
            my = re.search(r'PhysicalSizeY="([0-9.eE+-]+)"', wsi.ome_metadata)
            ux = re.search(r'PhysicalSizeXUnit="([^"]+)"', wsi.ome_metadata)
            if mx and my:
                f = _OME_UM.get(ux.group(1) if ux else "µm", 1.0)
                return float(my.group(1)) * f, float(mx.group(1)) * f
        tags = page.tags
        unit = tags.get("ResolutionUnit")
        unit = int(unit.value) if unit is not None else 2
        if "XResolution" in tags and "YResolution" in tags and unit in _CM_PER_UNIT:
            xr, yr = tags["XResolution"].value, tags["YResolution"].value
            x = xr[0] / xr[1] if isinstance(xr, tuple) else float(xr)
            y = yr[0] / yr[1] if isinstance(yr, tuple) else float(yr)
            # TIFF writers put 1 (or 72 dpi) when nothing is known: treat those as "no resolution"
            if x > 1 and y > 1 and not (unit == 2 and {round(x), round(y)} <= {72, 96, 300}):
                return _CM_PER_UNIT[unit] * 1e4 / y, _CM_PER_UNIT[unit] * 1e4 / x
        return None

    def read_region(self, wsi: Any, location: tuple[int, int], size: tuple[int, int], level: int) -> np.ndarray:
        """Decode the ``(H, W, 3) uint8`` region at ``location`` (level-``level`` pixels) of ``size``.

        Only the tiles or strips overlapping the region are read; pixels beyond the image are white (255).
        """
        page = self._page(wsi, level)
        key = page.keyframe
        name = str(wsi.filehandle.path)
        if key.planarconfig == 2 and key.samplesperpixel > 1:
            raise ValueError(f"{name}: separate colour planes (PlanarConfiguration 2) are not supported.")
        h, w = (int(s) for s in size)
        y0, x0 = (int(s) for s in location)
        big_h, big_w = int(key.imagelength), int(key.imagewidth)
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        ys, xs, ye, xe = max(y0, 0), max(x0, 0), min(y0 + h, big_h), min(x0 + w, big_w)
        if ys >= ye or xs >= xe:
            return out
        th, tw = (int(key.tilelength), int(key.tilewidth)) if key.is_tiled else (min(int(key.rowsperstrip), big_h), big_w)
        nx = math.ceil(big_w / tw)
        decodeargs: dict[str, Any] = {"_fullsize": key.is_tiled}
        if key.compression in {6, 7, 34892, 33007}:  # JPEG
            decodeargs["jpegtables"] = page.jpegtables
            decodeargs["jpegheader"] = key.jpegheader
        fh = wsi.filehandle
        for ty in range(ys // th, (ye - 1) // th + 1):
            for tx in range(xs // tw, (xe - 1) // tw + 1):
                index = ty * nx + tx
                offset, count = page.dataoffsets[index], page.databytecounts[index]
                with fh.lock:
                    fh.seek(offset)
                    data = fh.read(count) if count else None
                seg, _, shape = key.decode(data, index, **decodeargs)
                if seg is None:  # an empty (never written) tile
                    continue
                seg = _to_rgb_uint8(np.asarray(seg).reshape(shape[1:]), name)
                sy, sx = ty * th, tx * tw
                a0, a1 = max(ys, sy), min(ye, sy + seg.shape[0])
                b0, b1 = max(xs, sx), min(xe, sx + seg.shape[1])
                out[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0] = seg[a0 - sy : a1 - sy, b0 - sx : b1 - sx]
        return out

    def _get_patch(
        self, wsi: Any, location: tuple[int, int], size: tuple[int, int], level: int, dtype: Any, mode: str
    ) -> np.ndarray:
        # MONAI passes ``location`` in level-0 pixels
        ratio = self.get_downsample_ratio(wsi, level)
        loc = tuple(int(round(v / ratio)) for v in location)
        patch = self.read_region(wsi, loc, size, level).astype(dtype, copy=False)
        return np.moveaxis(patch, -1, self.channel_dim)


class PILImageReader(BaseWSIReader):
    """A one-level MONAI WSI backend for PNG/JPEG images held in memory (decoded whole with Pillow).

    ``read`` returns a dict ``{"path", "image" (H, W, 3) uint8, "mpp" or None}``; the resolution comes from the
    file's dots-per-inch when it states one other than the usual 72/96/300 defaults.

    Args:
        max_pixels: the largest image (``H * W``) decoded; a larger one is refused from its header, before
            any decoding (default :data:`MAX_IMAGE_PIXELS`).
        kwargs: those of :class:`monai.data.wsi_reader.BaseWSIReader` (``level``, ``channel_dim``...).
    """

    backend = "pillow"
    supported_suffixes = ["png", "jpg", "jpeg"]

    def __init__(self, max_pixels: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_pixels = int(MAX_IMAGE_PIXELS if max_pixels is None else max_pixels)
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {max_pixels}.")

    def read(self, data: Sequence[os.PathLike] | os.PathLike | str, **kwargs: Any) -> dict:
        path = Path(str(data))
        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # replaced by the explicit bound below, checked before decoding
        try:
            with Image.open(path) as img:  # reads the header only
                w, h = img.size
                if w * h > self.max_pixels:
                    raise ImageTooLargeError(
                        f"{path}: {w} x {h} {img.format or 'image'} ({w * h / 1e6:.0f} Mpx) is larger than the "
                        f"{self.max_pixels / 1e6:.0f} Mpx that PNG/JPEG files are decoded whole within (no random "
                        "access to a region in these formats). Convert it to a tiled pyramidal TIFF, which is read "
                        "tile by tile, e.g. `vips tiffsave IN OUT.tif --tile --pyramid --compression jpeg`."
                    )
                img.load()
                dpi = img.info.get("dpi")
                arr = np.asarray(to_rgb(img))  # logs grey/RGBA conversions, refuses 16-bit and float
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - any decoder error becomes one message naming the file
            raise ValueError(f"cannot read image {str(path)!r}: {type(e).__name__}: {e}") from e
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        mpp = None
        if dpi and all(float(d) > 1 for d in dpi) and {round(float(d)) for d in dpi} - {72, 96, 300}:
            mpp = (25400.0 / float(dpi[1]), 25400.0 / float(dpi[0]))
        return {"path": str(path.resolve()), "image": _to_rgb_uint8(arr, str(path)), "mpp": mpp}

    @staticmethod
    def get_level_count(wsi: dict) -> int:
        return 1

    def get_size(self, wsi: dict, level: int) -> tuple[int, int]:
        return tuple(int(s) for s in wsi["image"].shape[:2])  # type: ignore[return-value]

    def get_downsample_ratio(self, wsi: dict, level: int) -> float:
        return 1.0

    @staticmethod
    def get_file_path(wsi: dict) -> str:
        return wsi["path"]

    def get_mpp(self, wsi: dict, level: int) -> tuple[float, float]:
        if wsi["mpp"] is None:
            raise ValueError(f"{wsi['path']}: no resolution metadata (µm per pixel) in the file.")
        return wsi["mpp"]

    def get_power(self, wsi: dict, level: int) -> float:
        raise ValueError(f"{wsi['path']}: objective power is not recorded in PNG/JPEG files.")

    def read_region(self, wsi: dict, location: tuple[int, int], size: tuple[int, int], level: int = 0) -> np.ndarray:
        """The ``(H, W, 3) uint8`` region at ``location`` of ``size``; pixels beyond the image are white."""
        img = wsi["image"]
        h, w = (int(s) for s in size)
        y0, x0 = (int(s) for s in location)
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        ys, xs, ye, xe = max(y0, 0), max(x0, 0), min(y0 + h, img.shape[0]), min(x0 + w, img.shape[1])
        if ys < ye and xs < xe:
            out[ys - y0 : ye - y0, xs - x0 : xe - x0] = img[ys:ye, xs:xe]
        return out

    def _get_patch(
        self, wsi: dict, location: tuple[int, int], size: tuple[int, int], level: int, dtype: Any, mode: str
    ) -> np.ndarray:
        patch = self.read_region(wsi, location, size).astype(dtype, copy=False)
        return np.moveaxis(patch, -1, self.channel_dim)



def make_reader(path: str | os.PathLike, backend: str = "tifffile", level: int = 0) -> BaseWSIReader:
    """The reader for ``path``: Pillow for PNG/JPEG; for TIFF/SVS the tifffile region reader, or MONAI's
    cuCIM / OpenSlide backend when ``backend`` names one (and it is installed).

    Raises:
        ValueError: for an unsupported file extension or backend.
    """
    suffix = Path(str(path)).suffix.lower()
    if suffix in WHOLE_IMAGE_SUFFIXES:
        return PILImageReader(level=level, channel_dim=0)
    if suffix not in SLIDE_SUFFIXES:
        raise ValueError(f"{path}: unsupported extension {suffix!r}; expected one of {', '.join(SUPPORTED_SUFFIXES)}.")
    name = str(backend).lower()
    if name == "tifffile":
        return TiffRegionReader(level=level, channel_dim=0)
    if name in ("cucim", "openslide"):
        return WSIReader(backend=name, level=level, channel_dim=0)
    raise ValueError(f"unknown slide backend {backend!r} (key 'slide_backend'); expected tifffile, cucim or openslide.")


def level_mpp(reader: BaseWSIReader, wsi: Any, level: int) -> float | None:
    """The µm per pixel of ``level`` (geometric mean of y and x) as the file states it, ``None`` when unstated."""
    try:
        y, x = reader.get_mpp(wsi, level)
    except (ValueError, KeyError, NotImplementedError):
        return None
    return math.sqrt(float(y) * float(x)) if y and x else None


def implausible_resolution(reader: BaseWSIReader, wsi: Any, plausible: Sequence[float] = PLAUSIBLE_MPP) -> str | None:
    """Why the level-0 resolution that ``wsi`` states is not believed (outside ``plausible`` µm per pixel), as
    one sentence; ``None`` when it is plausible or not stated. :func:`choose_level` ignores such a resolution."""
    mpp = level_mpp(reader, wsi, 0)
    if mpp is None or plausible[0] <= mpp <= plausible[1]:
        return None
    return (
        f"the file states {mpp:.4g} µm/px ({25400.0 / mpp:.4g} dpi), outside the {plausible[0]:g}-"
        f"{plausible[1]:g} µm/px of microscopy images (a screen or print dpi?): resolution treated as unknown, "
        "inferred as stored (set --level to choose a pyramid level, or correct the file's resolution)"
    )


def choose_level(
    reader: BaseWSIReader, wsi: Any, target_mpp: float | None = None, level: int | None = None
) -> tuple[int, float | None]:
    """The pyramid level to infer at and its µm per pixel (``None`` when the file records no resolution, or an
    implausible one: :func:`implausible_resolution`).

    ``level`` (when not ``None``) wins. Otherwise the level whose resolution is closest to ``target_mpp`` in
    log scale (ties go to the finer level); without a resolution, or without ``target_mpp``, level 0.

    Raises:
        ValueError: for a level beyond the file's levels.
    """
    n = reader.get_level_count(wsi)
    trusted = implausible_resolution(reader, wsi) is None

    def mpp_of(k: int) -> float | None:
        return level_mpp(reader, wsi, k) if trusted else None

    if level is not None:
        if not 0 <= int(level) < n:
            raise ValueError(
                f"{reader.get_file_path(wsi)}: --level {level} requested, the file has levels 0..{n - 1}."
            )
        return int(level), mpp_of(int(level))
    mpps = [mpp_of(k) for k in range(n)]
    if target_mpp is None or mpps[0] is None:
        return 0, mpps[0]
    dist = [abs(math.log(m / float(target_mpp))) if m else math.inf for m in mpps]
    best = min(range(n), key=lambda k: (round(dist[k], 6), k))
    return best, mpps[best]


class ResampledLevelReader(BaseWSIReader):
    """A pyramid level of another reader resampled by ``zoom``, presented as level 0 of a MONAI WSI backend.

    Slides rarely store exactly the training resolution (e.g. a 0.2525 µm/px level for a model trained at
    0.25). When the nearest level is off by more than a few percent, the workflow wraps the reader in this
    class: the splitter, the merger and the outputs then work in pixels of the resampled grid, whose µm per
    pixel is the target's. Windows are resampled on the fly from a source region a few pixels larger, with
    linear interpolation at pixel centres (``scipy.ndimage.affine_transform``; MONAI's readers read levels
    as stored); when shrinking (``zoom < 1``) the source is first smoothed with a Gaussian against aliasing.
    The whole level is never resampled at once.

    Levels: 0 is the resampled grid; ``1 + k`` is the base reader's level ``k`` as stored (so that thumbnails
    are read from a coarse level); downsample ratios are relative to level 0 (so they are not integers).

    Args:
        reader: the base reader (any of this module's readers or MONAI's cuCIM / OpenSlide readers).
        source_level: the base reader's level that is resampled.
        zoom: output pixels per source pixel (``source mpp / target mpp``), > 0.
    """

    backend = "resampled"

    def __init__(self, reader: BaseWSIReader, source_level: int, zoom: float, **kwargs: Any) -> None:
        super().__init__(level=0, channel_dim=getattr(reader, "channel_dim", 0), **kwargs)
        if not (zoom > 0 and math.isfinite(zoom)):
            raise ValueError(f"zoom must be a positive number, got {zoom}.")
        self.base = reader
        self.source_level = int(source_level)
        self.zoom = float(zoom)
        self.supported_suffixes = list(getattr(reader, "supported_suffixes", []))

    def read(self, data: Any, **kwargs: Any) -> Any:
        return self.base.read(data, **kwargs)

    def get_level_count(self, wsi: Any) -> int:  # type: ignore[override]
        return 1 + int(self.base.get_level_count(wsi))

    def get_size(self, wsi: Any, level: int) -> tuple[int, int]:
        if level == 0:
            h, w = self.base.get_size(wsi, self.source_level)
            return max(1, round(int(h) * self.zoom)), max(1, round(int(w) * self.zoom))
        return tuple(int(v) for v in self.base.get_size(wsi, level - 1))  # type: ignore[return-value]

    def downsample_to_base(self, wsi: Any) -> float:
        """Base level-0 pixels per pixel of the resampled grid (level 0 of this reader)."""
        return float(self.base.get_downsample_ratio(wsi, self.source_level)) / self.zoom

    def get_downsample_ratio(self, wsi: Any, level: int) -> float:
        if level == 0:
            return 1.0
        return float(self.base.get_downsample_ratio(wsi, level - 1)) / self.downsample_to_base(wsi)

    def get_mpp(self, wsi: Any, level: int) -> tuple[float, float]:
        if level == 0:
            y, x = self.base.get_mpp(wsi, self.source_level)
            return float(y) / self.zoom, float(x) / self.zoom
        return self.base.get_mpp(wsi, level - 1)

    def get_power(self, wsi: Any, level: int) -> float:
        return self.base.get_power(wsi, self.source_level if level == 0 else level - 1)

    def get_file_path(self, wsi: Any) -> str:
        return self.base.get_file_path(wsi)

    def read_region(self, wsi: Any, location: tuple[int, int], size: tuple[int, int], level: int = 0) -> np.ndarray:
        """The ``(H, W, 3) uint8`` region at ``location`` of ``size`` (pixels of ``level``); white beyond the image."""
        if level != 0:
            return read_region(self.base, wsi, location, size, level - 1)
        h, w = (int(v) for v in size)
        y0, x0 = (int(v) for v in location)
        z = self.zoom
        # output pixel i (centre i + 0.5) samples the source at (i + 0.5) / z - 0.5
        blur = 0.5 * math.sqrt(1.0 / z**2 - 1.0) if z < 1 else 0.0
        pad = 2 + math.ceil(3 * blur)
        sy, sx = math.floor((y0 + 0.5) / z - 0.5) - pad, math.floor((x0 + 0.5) / z - 0.5) - pad
        sh, sw = math.ceil(h / z) + 2 * pad + 2, math.ceil(w / z) + 2 * pad + 2
        src = read_region(self.base, wsi, (sy, sx), (sh, sw), self.source_level).astype(np.float32)
        if blur > 0:
            src = gaussian_filter(src, sigma=(blur, blur, 0), mode="nearest")
        offset = ((y0 + 0.5) / z - 0.5 - sy, (x0 + 0.5) / z - 0.5 - sx, 0.0)
        out = affine_transform(src, (1.0 / z, 1.0 / z, 1.0), offset=offset, output_shape=(h, w, 3), order=1,
                               mode="nearest", prefilter=False)
        out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
        big_h, big_w = self.get_size(wsi, 0)  # beyond the resampled grid: white, as the other readers pad
        out[: max(0, -y0)] = 255
        out[max(0, big_h - y0) :] = 255
        out[:, : max(0, -x0)] = 255
        out[:, max(0, big_w - x0) :] = 255
        return out

    def _get_patch(
        self, wsi: Any, location: tuple[int, int], size: tuple[int, int], level: int, dtype: Any, mode: str
    ) -> np.ndarray:
        ratio = self.get_downsample_ratio(wsi, level)  # MONAI passes ``location`` in level-0 pixels
        loc = tuple(int(round(v / ratio)) for v in location)
        patch = self.read_region(wsi, loc, size, level).astype(dtype, copy=False)
        return np.moveaxis(patch, -1, self.channel_dim)


def read_region(reader: BaseWSIReader, wsi: Any, location: tuple[int, int], size: tuple[int, int], level: int) -> np.ndarray:
    """The ``(H, W, 3) uint8`` region at ``location`` (pixels of ``level``) of ``size`` from any reader: the
    readers of this module read directly; MONAI's cuCIM/OpenSlide readers go through ``get_data``."""
    if hasattr(reader, "read_region"):
        return reader.read_region(wsi, location, size, level)
    ratio = reader.get_downsample_ratio(wsi, level)
    loc0 = tuple(int(round(v * ratio)) for v in location)
    patch, _ = reader.get_data(wsi, location=loc0, size=size, level=level)
    return np.moveaxis(np.asarray(patch), reader.channel_dim, -1).astype(np.uint8)


def read_thumbnail(reader: BaseWSIReader, wsi: Any, level: int, max_size: int = 2048) -> tuple[np.ndarray, int]:
    """An RGB thumbnail of ``level`` whose longer side is at most ``max_size``, and its integer factor ``f``
    (thumbnail pixel ``(i, j)`` covers pixels ``[i f, (i + 1) f) x [j f, (j + 1) f)`` of ``level``).

    Read from the coarsest pyramid level that is still at least as fine as the thumbnail, block by block (so
    memory stays bounded), and reduced by block averaging (scikit-image ``downscale_local_mean``).
    """
    h, w = reader.get_size(wsi, level)
    f = max(1, math.ceil(max(h, w) / max_size))
    th, tw = math.ceil(h / f), math.ceil(w / f)
    base = reader.get_downsample_ratio(wsi, level)
    src = level
    for k in range(reader.get_level_count(wsi)):
        r = reader.get_downsample_ratio(wsi, k) / base
        if r <= f * 1.01 and r > reader.get_downsample_ratio(wsi, src) / base:
            src = k
    g = f / (reader.get_downsample_ratio(wsi, src) / base)  # source pixels per thumbnail pixel
    if abs(g - round(g)) < 1e-3:  # pyramid levels: an integer factor, block averaging
        g = max(1, int(round(g)))
    out = np.full((th, tw, 3), 255, dtype=np.uint8)
    block = max(1, int(2048 // g))  # thumbnail pixels per block side
    for t0 in range(0, th, block):
        for u0 in range(0, tw, block):
            bh, bw = min(block, th - t0), min(block, tw - u0)
            if isinstance(g, int):
                region = read_region(reader, wsi, (t0 * g, u0 * g), (bh * g, bw * g), src)
                small = downscale_local_mean(region.astype(np.float32), (g, g, 1)) if g > 1 else region
            else:  # a resampled grid (ResampledLevelReader) over stored levels: a non-integer factor

                y0, x0 = round(t0 * g), round(u0 * g)
                region = read_region(reader, wsi, (y0, x0), (round((t0 + bh) * g) - y0, round((u0 + bw) * g) - x0), src)
                small = resize(region.astype(np.float32), (bh, bw), anti_aliasing=g > 1, preserve_range=True)
            out[t0 : t0 + bh, u0 : u0 + bw] = np.clip(np.asarray(small) + 0.5, 0, 255).astype(np.uint8)[:bh, :bw]
    return out, f
