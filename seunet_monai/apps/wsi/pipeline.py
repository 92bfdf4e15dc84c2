"""One input of ``run inferring``, up to its finished windows: open the file, pick the resolution
(:mod:`~.resolution`), detect the tissue on a thumbnail (:mod:`~.tissue`), fix the stains and run the windows that
touch tissue (:class:`~.inferers.SlideInferer`) into raw files (:mod:`~.accumulator`).

:func:`infer_input` returns the :class:`~.slide.InferredSlide` that the outputs are written from.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from seunet_monai.errors import SeunetError

from .accumulator import RawMask, SlideAccumulator
from .inferers import HeadsPatchPredictor, SlideInferer
from .readers import WHOLE_IMAGE_SUFFIXES, make_reader, read_thumbnail
from .resolution import ResolutionPolicy
from .slide import InferredSlide
from .tissue import TissueLocationFilter, detect_tissue, is_colourless

__all__ = ["fit_stains", "infer_input"]

logger = logging.getLogger(__name__)


def infer_input(
    path: Path,
    staging: str | os.PathLike,
    network: torch.nn.Module,
    inferer: SlideInferer,
    resolution: ResolutionPolicy,
    num_classes: int,
    slide_backend: str = "tifffile",
    tissue_mask: str = "otsu",
    thumbnail_size: int = 1024,
    png_max_pixels: int = 64_000_000,
    amp: bool = False,
) -> InferredSlide:
    """Open ``path``, pick its resolution, detect its tissue and run its windows (the class mask, and for a
    nucleus model the nucleus probability and the network's separation map, go to raw files in ``staging``).

    Args:
        path: the image or slide.
        staging: folder of the raw files (``mask.raw``, ``probability.raw``, ``separation.raw``).
        network: the segmentation network, in eval mode with its weights loaded.
        inferer: the windows and their per-window image transform.
        resolution: the level and µm per pixel to infer at.
        num_classes: classes of the network, background included (2: a nucleus model, whose nuclei are separated).
        slide_backend: reader of TIFF/SVS files (:func:`~.readers.make_reader`).
        tissue_mask: ``"otsu"`` or ``"none"`` (:func:`~.tissue.detect_tissue`).
        thumbnail_size: longer side of the thumbnail (tissue detection, overview).
        png_max_pixels: largest single-level image treated as an image rather than a slide.
        amp: mixed precision on CUDA.

    Raises:
        ValueError: when the file cannot be opened, or for a level beyond its levels.
        ConfigValueError: when the declared ``mpp`` contradicts the file's resolution.
    """
    staging = Path(staging)
    base = make_reader(path, slide_backend)
    try:
        wsi = base.read(str(path))
    except SeunetError:  # already one line naming the file and the fix
        raise
    except Exception as e:  # noqa: BLE001 - any decoder error: one message naming the file
        raise ValueError(f"cannot open {path.name} as an image or slide: {type(e).__name__}: {e}") from e
    plan = resolution.plan(path.name, base, wsi)
    base.level = plan.level
    for message in plan.warnings:
        logger.warning(f"{path.name}: {message}.")
    reader, level, mpp = plan.grid(base)
    size = tuple(int(v) for v in reader.get_size(wsi, level))
    image = path.suffix.lower() in WHOLE_IMAGE_SUFFIXES or (
        base.get_level_count(wsi) == 1 and size[0] * size[1] <= png_max_pixels
    )
    separate = num_classes == 2  # separated nucleus instances (a nucleus model: images and slides)
    thumb, factor = read_thumbnail(reader, wsi, level, thumbnail_size)
    tissue = detect_tissue(thumb, tissue_mask)
    detector = tissue_mask
    if tissue_mask == "otsu" and tissue.any() and is_colourless(thumb):
        detector = "otsu on brightness (colourless image)"
        logger.warning(
            f"{path.name}: no colour (a grey-scale image?): tissue detected from brightness, not "
            "from H&E colour saturation; check the overlay."
        )
    fit_stains(inferer, thumb, None if factor == 1 else tissue)
    predictor = HeadsPatchPredictor(network, amp=amp)
    aux = predictor.aux_channels
    probability = RawMask(staging / "probability.raw", size, np.float32) if separate else None
    separation = RawMask(staging / "separation.raw", size, np.float32) if separate and aux else None
    mask = RawMask(staging / "mask.raw", size)
    acc = SlideAccumulator(mask, num_classes, factor, probability, aux_channels=aux, separation=separation)
    patch_size = inferer.window()[0]
    location_filter = None if tissue_mask == "none" else TissueLocationFilter(tissue, factor, patch_size)
    splitter = inferer.splitter(reader, level, location_filter)
    splitter.set_slide(str(path), wsi)  # the slide is open already
    inferer(str(path), predictor, splitter=splitter, sink=acc, head_channels_from=num_classes + aux)
    ds = reader.downsample_to_base(wsi) if plan.resampled else float(reader.get_downsample_ratio(wsi, level))
    return InferredSlide(
        path,
        wsi,
        base,
        plan,
        reader,
        level,
        mpp,
        size,
        ds,
        image,
        separate,
        thumb,
        factor,
        tissue,
        detector,
        acc,
        splitter,
        patch_size,
        predictor.window_log_scales,
    )


def fit_stains(inferer: SlideInferer, thumb: np.ndarray, tissue: np.ndarray | None) -> None:
    """Fix the stain normaliser's source stains for this input from its thumbnail (the whole image when it
    is small, as the preparation normalises whole images; tissue pixels of a slide's thumbnail otherwise),
    so that all windows are normalised alike and the stains are fitted once, not per window."""
    transform = inferer.image_transform
    if hasattr(transform, "fit_source") and not transform.fit_source(thumb, mask=tissue):
        logger.info("stain normalisation: too little tissue to fit the input's stains; fitting per window")
