"""Image files of the data pipeline: which files are images, listing them, reading images and labels, writing
PNGs (atomically, through :mod:`seunet_monai.runtime.files`), and the ``PILReader`` converter.

Readers return numpy arrays: :func:`read_rgb` always gives ``(H, W, 3) uint8`` (grey-scale expanded,
alpha dropped, and says which conversion happened), :func:`read_label` gives an ``(H, W)`` integer mask.
Unreadable files raise :class:`seunet_monai.errors.ImageReadError` (a ``ValueError`` and a
:class:`seunet_monai.errors.DataError`) naming the file.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from seunet_monai.errors import DataError, ImageReadError, MissingPathError
from seunet_monai.runtime.files import atomic_write_bytes

__all__ = [
    "IMAGE_SUFFIXES",
    "TIFF_SUFFIXES",
    "atomic_save_png",
    "check_decodes",
    "describe_conversion",
    "list_images",
    "read_label",
    "read_rgb",
    "to_rgb",
]

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
"""Image files of a dataset or an inference folder (case-insensitive): what :func:`list_images` picks up."""
TIFF_SUFFIXES = (".tif", ".tiff")
"""Image files read with ``tifffile`` (the others with Pillow)."""

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


def atomic_save_png(path: PathLike, array: np.ndarray) -> Path:
    """Save an image or a label as PNG, atomically.

    Args:
        path: destination file (``.png``).
        array: ``(H, W)`` grey/label or ``(H, W, 3)`` RGB / ``(H, W, 4)`` RGBA, dtype ``uint8`` or ``uint16``
            (an integer array whose values fit in ``uint8``/``uint16`` is cast, anything else refused;
            a ``bool`` mask is saved as 0/1).

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        ValueError: for an unsupported shape or dtype, or values that do not fit.
    """
    arr = np.asarray(array)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"atomic_save_png({path}): expected (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}.")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype not in (np.uint8, np.uint16):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"atomic_save_png({path}): expected an integer array, got dtype {arr.dtype}.")
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"atomic_save_png({path}): values in [{lo}, {hi}] do not fit in uint8/uint16.")
        arr = arr.astype(np.uint8 if hi <= 255 else np.uint16)
    if arr.dtype == np.uint16 and arr.ndim == 3:
        raise ValueError(f"atomic_save_png({path}): 16-bit PNG is supported for (H, W) labels only.")
    img = Image.fromarray(np.ascontiguousarray(arr))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------------------------- reading
def _read_tiff(path: Path) -> tuple[np.ndarray, int | None]:
    """The full-resolution image of a TIFF and the bits per sample it states (``None`` when it states none).

    A pyramid (one full-size page plus reduced-resolution pages or SubIFDs, as in SVS or OME files) gives its
    full-size level. A multi-page TIFF with several full-size pages (a stack, e.g. one channel or one focal
    plane per page) is refused: which page is "the image" is ambiguous.
    """
    with tifffile.TiffFile(str(path)) as tif:
        first = tif.pages[0]
        full = [p for p in tif.pages if getattr(p, "shape", None) == first.shape]
        if len(full) > 1:
            raise ImageReadError(
                f"image file {path}: multi-page TIFF with {len(full)} full-size pages of shape {first.shape} "
                "(a stack, not a pyramid); save each image as its own file (one page, RGB)."
            )
        arr = first.asarray()
        bits = int(first.bitspersample) if first.bitspersample else None
        max_tag = first.tags.get("MaxSampleValue")
        if max_tag is not None:
            value = np.max(np.atleast_1d(max_tag.value))
            if 0 < value < 2 ** (bits or 16) - 1:
                bits = int(value).bit_length()
    return arr, bits


def _read_array(path: Path) -> tuple[np.ndarray, int | None]:
    """Read the first image of a PNG/JPEG/TIFF file as a numpy array (palette images expanded), and the bits
    per sample the file states (TIFF ``BitsPerSample`` / ``MaxSampleValue``; ``None`` otherwise)."""
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    bits = None
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            arr, bits = _read_tiff(path)
        else:
            with Image.open(path) as img:
                img.load()
                if img.mode == "P":
                    img = img.convert("RGBA" if "transparency" in img.info else "RGB")
                elif img.mode in ("LA", "PA"):
                    img = img.convert("RGBA")
                elif img.mode == "CMYK":
                    img = img.convert("RGB")
                elif img.mode == "1":
                    img = img.convert("L")
                arr = np.asarray(img)
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder error becomes one clear error naming the file
        raise ImageReadError(f"cannot read image file {path}: {type(e).__name__}: {e}") from e
    return np.asarray(arr), bits


def _to_uint8(arr: np.ndarray, path: Path, bits: int | None = None) -> tuple[np.ndarray, str | None, str | None]:
    """``(image, dtype conversion, scaling)``: 8-bit values and how they were obtained.

    Integer images of more than 8 bits keep their 8 most significant bits of the depth the file states
    (``bits``, e.g. 12 for a 12-bit TIFF stored in 16-bit words: ``value >> 4``), else of the dtype's depth.
    """
    if arr.dtype == np.uint8:
        return arr, None, None
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255, "bool->uint8", "False/True -> 0/255"
    if arr.dtype == np.uint16:
        depth = bits if bits is not None and 8 < bits <= 16 else 16
        shift = depth - 8
        out = np.clip(arr >> shift, 0, 255).astype(np.uint8)
        return out, "uint16->uint8", f"{depth}-bit values >> {shift} (x 255/{2**depth - 1}, truncated)"
    if np.issubdtype(arr.dtype, np.floating):
        hi = float(np.nanmax(arr)) if arr.size else 0.0
        scale = 255.0 if hi <= 1.0 else 1.0
        how = "[0, 1] x 255" if scale == 255.0 else "values kept, clipped to [0, 255]"
        return np.clip(np.rint(np.nan_to_num(arr) * scale), 0, 255).astype(np.uint8), f"{arr.dtype}->uint8", how
    raise ImageReadError(f"image file {path}: unsupported dtype {arr.dtype} (expected uint8, uint16 or float).")


def describe_conversion(info: dict[str, Any]) -> str | None:
    """One line saying what :func:`read_rgb` did to an image (layout and bit depth), ``None`` when nothing.

    Example: ``"grey->rgb; uint16->uint8: 12-bit values >> 4 (x 255/4095, truncated)"``.
    """
    parts = [info["conversion"]] if info.get("conversion") else []
    if info.get("dtype"):
        parts.append(f"{info['dtype']}: {info['scaling']}" if info.get("scaling") else info["dtype"])
    return "; ".join(parts) or None


def read_rgb(path: PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an RGB image (PNG, JPEG, TIFF...) as ``(H, W, 3) uint8``.

    TIFF files (``.tif``/``.tiff``) are read with tifffile (the full-size page of a single image or a pyramid;
    a stack of several full-size pages is refused), the rest with Pillow. Grey-scale images are replicated to
    three channels, RGBA images lose their alpha channel, 16-bit words keep the 8 most significant bits of the
    depth the file states (a 12-bit TIFF: ``value >> 4``; otherwise 16 bits: ``value >> 8``) and float images
    in [0, 1] are scaled to [0, 255]. :func:`describe_conversion` turns ``info`` into one line for logs and
    reports.

    Args:
        path: the image file.

    Returns:
        ``(image, info)`` where ``info`` has ``"path"``, ``"original_shape"``, ``"original_dtype"``,
        ``"bits_per_sample"`` (as the file states it, else ``None``), ``"conversion"``: ``None``,
        ``"grey->rgb"`` or ``"rgba->rgb"``, ``"dtype"`` (e.g. ``"uint16->uint8"`` when the dtype was
        converted, else ``None``) and ``"scaling"`` (how the values were mapped, else ``None``).

    Raises:
        FileNotFoundError: when the file does not exist.
        ImageReadError: when the file cannot be decoded or its layout is not an image (message names the file).
    """
    path = Path(path)
    arr, bits = _read_array(path)
    info: dict[str, Any] = {
        "path": str(path),
        "original_shape": tuple(int(s) for s in arr.shape),
        "original_dtype": str(arr.dtype),
        "bits_per_sample": bits,
        "conversion": None,
        "dtype": None,
        "scaling": None,
    }
    # channel-first TIFFs (3, H, W) / (4, H, W) are transposed to channel-last
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
        info["conversion"] = "grey->rgb"
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
        info["conversion"] = "rgba->rgb"
    elif not (arr.ndim == 3 and arr.shape[2] == 3):
        raise ImageReadError(
            f"image file {path}: unsupported shape {arr.shape} (expected (H, W), (H, W, 3) or (H, W, 4))."
        )
    arr, info["dtype"], info["scaling"] = _to_uint8(arr, path, bits)
    return np.ascontiguousarray(arr), info


def read_label(path: PathLike) -> np.ndarray:
    """Read an integer label mask as ``(H, W)``.

    A label saved with three identical channels (some tools write grey masks as RGB) is accepted and
    reduced to one channel; genuinely coloured masks are refused.

    Args:
        path: the label file (PNG or TIFF).

    Returns:
        ``(H, W)`` integer array (the file's own integer dtype; ``bool`` becomes ``uint8``).

    Raises:
        FileNotFoundError: when the file does not exist.
        ImageReadError: when it cannot be decoded, is not integer, or is not a single-channel mask.
    """
    path = Path(path)
    arr, _ = _read_array(path)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        rgb = arr[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise ImageReadError(f"label file {path}: expected a single-channel integer mask, got shape {arr.shape}.")
        arr = rgb[..., 0]
    if arr.ndim != 2:
        raise ImageReadError(f"label file {path}: expected an (H, W) mask, got shape {arr.shape}.")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ImageReadError(f"label file {path}: expected integer class ids, got dtype {arr.dtype}.")
    return np.ascontiguousarray(arr)


def check_decodes(path: PathLike, where: str = "") -> None:
    """Decode an image file once with Pillow (as the bundle's ``PILReader`` will), so that a damaged or truncated
    file stops a run naming it: MONAI's ``LoadImage`` reports it as "cannot find a suitable reader", with the
    tracebacks of every reader it tried.

    Args:
        path: the image file.
        where: where it is listed (e.g. ``"training[3]"``), for the message.

    Raises:
        DataError: naming the file.
    """
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as e:
        listed = f" ({where})" if where else ""
        raise DataError(
            f"image file {str(path)!r}{listed} cannot be decoded ({type(e).__name__}: {e}): it is damaged or "
            "truncated; replace it or prepare the dataset again."
        ) from e


def to_rgb(image: Any) -> Any:
    """Convert a PIL image to 8-bit RGB (a ``PILReader`` ``converter``): grey-scale, palette and RGBA inputs
    are converted (alpha dropped) and logged; 16-bit and float images are refused.

    Raises:
        DataError: (a ``ValueError``) for modes without a faithful 8-bit RGB conversion, naming the file.
    """
    mode = getattr(image, "mode", "RGB")
    if mode == "RGB":
        return image
    name = getattr(image, "filename", "") or "<image>"
    if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise DataError(
            f"image {name!r} has PIL mode {mode!r} (16-bit or float grey-scale); expected 8-bit RGB (grey/RGBA are "
            "converted). Convert it to 8-bit RGB first, e.g. with scripts/prepare_monuseg.py --images, which scales "
            "by the bit depth and reports the conversion."
        )
    logger.info(f"image {name!r}: converting PIL mode {mode!r} to RGB.")
    return image.convert("RGB")


def list_images(
    input_dir: str | os.PathLike, suffixes: Sequence[str] = IMAGE_SUFFIXES, what: str = "image"
) -> list[dict[str, str]]:
    """Every image file of ``input_dir`` (not recursive), sorted, as ``[{"image": path}, ...]``.

    Args:
        input_dir: folder of images to segment.
        suffixes: file endings to pick up (case-insensitive).
        what: what the files are, for the messages (``"image"``, ``"volume"``).

    Raises:
        FileNotFoundError: when ``input_dir`` is not a folder.
        ValueError: when it holds no image with one of ``suffixes``.
    """
    folder = Path(os.path.expanduser(str(input_dir)))
    if not folder.is_dir():
        raise MissingPathError(f"input_dir {str(folder)!r} is not a folder (set --input_dir to a folder of {what}s).")
    ends = tuple(s.lower() for s in suffixes)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(ends))
    if not files:
        raise DataError(f"input_dir {str(folder)!r} holds no {what} file ending in {', '.join(ends)}.")
    return [{"image": str(p.resolve())} for p in files]
