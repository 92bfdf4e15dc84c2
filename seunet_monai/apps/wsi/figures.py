"""Pictures of slide inference that a pathologist can read.

- ``NAME_overlay.png``: an ordinary image at full resolution with the outline of every predicted object; a slide's
  overview, its thumbnail cropped to the tissue, with tissue and object outlines.
- ``NAME_regions.png`` (slides): full-resolution crops of a few representative tissue regions (dense, typical and
  sparse in objects), side by side, each labelled with its position.
- ``NAME_heads.png`` and ``NAME_scale.png``: maps over the tissue of the winning scale group and of the estimated
  scale (:mod:`~.maps`).

:func:`write_figures` writes those of one inferred input and returns the regions it cropped.

Outlines are at least 2 pixels wide, in the Okabe-Ito colours (distinguishable with the common colour-vision
deficiencies).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import binary_erosion, maximum_filter, minimum_filter, uniform_filter

from .accumulator import RawMask
from .maps import window_map, write_head_map, write_scale_map
from .slide import InferredSlide

__all__ = [
    "OKABE_ITO",
    "REGION_SIZE",
    "TISSUE_COLOUR",
    "draw_instance_outlines",
    "draw_outlines",
    "pick_regions",
    "tissue_box",
    "write_figures",
    "write_image_overlay",
    "write_region_crops",
    "write_slide_overview",
]

#: Okabe-Ito colours for the classes 1, 2, ... (yellow, sky blue, vermillion, bluish green, reddish purple, orange).
OKABE_ITO = [(240, 228, 66), (86, 180, 233), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0)]
#: Outline of the detected tissue (Okabe-Ito blue).
TISSUE_COLOUR = (0, 114, 178)
#: Side (pixels of the inference level) of the full-resolution crops of ``NAME_regions.png``.
REGION_SIZE = 512


def _class_colour(c: int) -> tuple[int, int, int]:
    return OKABE_ITO[(c - 1) % len(OKABE_ITO)]


def draw_outlines(rgb: np.ndarray, mask: np.ndarray, colour: Sequence[int], width: int = 2) -> np.ndarray:
    """Paint the outline of the ``True`` regions of ``mask`` into ``rgb`` (in place; returned): the pixels of a
    region within ``width`` pixels (8-connected) of its edge; the image border is not an edge."""
    region = np.asarray(mask, dtype=bool)
    inner = binary_erosion(region, structure=np.ones((3, 3), dtype=bool), iterations=max(int(width), 1), border_value=1)
    rgb[region & ~inner] = colour
    return rgb


def _save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    with open(path, "wb") as f:
        Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(f, format="PNG")


def draw_instance_outlines(rgb: np.ndarray, labels: np.ndarray, colour: Sequence[int], width: int = 2) -> np.ndarray:
    """Paint the outline of every instance of ``labels`` (``(H, W)``, 0 = background) into ``rgb`` (in place;
    returned): its pixels within ``width`` pixels (8-connected) of a pixel of another label or of the
    background, so that touching instances show the cut between them; the image border is not an edge."""
    size = 2 * max(int(width), 1) + 1
    lo = minimum_filter(labels, size=size, mode="nearest")
    hi = maximum_filter(labels, size=size, mode="nearest")
    rgb[(labels > 0) & ((lo != labels) | (hi != labels))] = colour
    return rgb


def write_image_overlay(
    path: str | os.PathLike,
    image: np.ndarray,
    mask: np.ndarray,
    num_classes: int,
    width: int = 2,
    instances: np.ndarray | None = None,
) -> None:
    """The image at full resolution with every predicted object outlined (class ``c`` in ``OKABE_ITO[c - 1]``).

    Args:
        path: the PNG file.
        image: ``(H, W, 3) uint8``.
        mask: class ids ``(H, W)``, 0 for background.
        num_classes: number of classes, background included.
        width: outline width in pixels (at least 2 for readability).
        instances: optional nucleus instance labels ``(H, W)``; when given, class 1 is outlined instance by
            instance (:func:`draw_instance_outlines`) instead of from ``mask``.
    """
    out = np.array(image[..., :3], dtype=np.uint8)
    for c in range(1, max(int(num_classes), 2)):
        if c == 1 and instances is not None:
            draw_instance_outlines(out, np.asarray(instances), _class_colour(c), width)
        else:
            draw_outlines(out, mask == c, _class_colour(c), width)
    _save_png(path, out)


def tissue_box(tissue: np.ndarray, margin: float = 0.05) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of the tissue in ``tissue`` (a boolean map), widened by ``margin`` of its size on
    every side and clipped to the map; the whole map when there is no tissue."""
    h, w = tissue.shape
    rows, cols = np.flatnonzero(tissue.any(1)), np.flatnonzero(tissue.any(0))
    if rows.size == 0:
        return 0, h, 0, w
    dy = math.ceil(margin * (rows[-1] + 1 - rows[0]))
    dx = math.ceil(margin * (cols[-1] + 1 - cols[0]))
    return max(0, rows[0] - dy), min(h, rows[-1] + 1 + dy), max(0, cols[0] - dx), min(w, cols[-1] + 1 + dx)


def write_slide_overview(
    path: str | os.PathLike,
    thumbnail: np.ndarray,
    tissue: np.ndarray,
    foreground: np.ndarray,
    box: tuple[int, int, int, int],
    min_size: int = 1024,
    width: int = 2,
) -> None:
    """The thumbnail cropped to ``box`` (:func:`tissue_box`), enlarged by an integer factor (nearest neighbour) to
    a longer side of at least ``min_size``, with the tissue (blue) and the predicted objects (yellow: where at
    least half of a thumbnail pixel's pixels are non-background) outlined.

    Args:
        path: the PNG file.
        thumbnail: ``(h, w, 3) uint8``.
        tissue: boolean tissue map ``(h, w)``.
        foreground: fraction of non-background pixels per thumbnail pixel ``(h, w)``.
        box: ``(y0, y1, x0, x1)`` of the crop.
        min_size: the longer side of the picture is enlarged to at least this.
        width: outline width in pixels of the picture.
    """
    y0, y1, x0, x1 = box
    k = max(1, math.ceil(min_size / max(y1 - y0, x1 - x0, 1)))

    def up(a: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(a[y0:y1, x0:x1], k, axis=0), k, axis=1)

    out = up(thumbnail[..., :3]).copy()
    draw_outlines(out, up(foreground >= 0.5), _class_colour(1), width)
    draw_outlines(out, up(tissue), TISSUE_COLOUR, width)
    _save_png(path, out)


def pick_regions(
    foreground: np.ndarray,
    tissue: np.ndarray,
    cells: int,
    quantiles: Sequence[float] = (0.95, 0.5, 0.1),
    min_tissue: float = 0.5,
) -> list[tuple[int, int]]:
    """Top-left corners (thumbnail pixels) of up to ``len(quantiles)`` non-overlapping ``cells`` x ``cells``
    windows on the tissue, whose object fraction is at the given quantiles over all such windows (dense, typical,
    sparse): representative regions to look at in full resolution.

    Args:
        foreground: fraction of non-background pixels per thumbnail pixel ``(h, w)``.
        tissue: boolean tissue map ``(h, w)``.
        cells: window side in thumbnail pixels.
        quantiles: object-fraction quantiles of the windows to pick, in order.
        min_tissue: smallest tissue fraction of a candidate window.
    """
    h, w = tissue.shape
    c = max(1, min(int(cells), h, w))
    # mean over the window whose top-left corner is (y, x): a centred box filter shifted by half a window
    fg = uniform_filter(np.where(tissue, foreground, 0.0).astype(np.float64), size=c, mode="constant")
    ts = uniform_filter(tissue.astype(np.float64), size=c, mode="constant")
    shift = c // 2
    ys, xs = np.mgrid[0 : h - c + 1, 0 : w - c + 1]
    fg_w, ts_w = fg[ys + shift, xs + shift], ts[ys + shift, xs + shift]
    ok = ts_w >= min_tissue
    if not ok.any():
        return []
    cand_y, cand_x, score = ys[ok], xs[ok], fg_w[ok] / ts_w[ok]
    order = np.argsort(score, kind="stable")
    picked: list[tuple[int, int]] = []
    for q in quantiles:
        target = np.quantile(score, q)
        # candidates by closeness to the quantile; the first that overlaps no window already picked
        for i in order[np.argsort(np.abs(score[order] - target), kind="stable")]:
            y, x = int(cand_y[i]), int(cand_x[i])
            if all(abs(y - py) >= c or abs(x - px) >= c for py, px in picked):
                picked.append((y, x))
                break
    return picked


def write_region_crops(
    path: str | os.PathLike,
    crops: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    labels: Sequence[str],
    num_classes: int,
    width: int = 2,
    gap: int = 16,
    instances: Sequence[np.ndarray] | None = None,
) -> None:
    """Full-resolution crops side by side, objects outlined as in :func:`write_image_overlay`, each with its
    ``label`` written above it.

    Args:
        path: the PNG file.
        crops: ``(h, w, 3) uint8`` images.
        masks: their class ids ``(h, w)``.
        labels: one line of text per crop.
        num_classes: number of classes, background included.
        width: outline width in pixels.
        gap: white pixels between crops and above them for the labels (at least 16).
        instances: optional nucleus instance labels ``(h, w)`` per crop; when given, class 1 is outlined instance
            by instance.
    """
    gap = max(int(gap), 16)
    if not crops:  # no tissue: a picture that says so
        picture = Image.new("RGB", (512, 64), (255, 255, 255))
        ImageDraw.Draw(picture).text((8, 24), "no tissue region to show", fill=(0, 0, 0))
        with open(path, "wb") as f:
            picture.save(f, format="PNG")
        return
    h = max(c.shape[0] for c in crops)
    total = sum(c.shape[1] for c in crops) + gap * (len(crops) - 1)
    canvas = np.full((h + gap, total, 3), 255, dtype=np.uint8)
    x = 0
    for k, (crop, mask) in enumerate(zip(crops, masks)):
        out = np.array(crop[..., :3], dtype=np.uint8)
        for c in range(1, max(int(num_classes), 2)):
            if c == 1 and instances is not None:
                draw_instance_outlines(out, np.asarray(instances[k]), _class_colour(c), width)
            else:
                draw_outlines(out, mask == c, _class_colour(c), width)
        canvas[gap : gap + out.shape[0], x : x + out.shape[1]] = out
        x += out.shape[1] + gap
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    x = 0
    for crop, label in zip(crops, labels):
        draw.text((x + 2, 2), label, fill=(0, 0, 0))
        x += crop.shape[1] + gap
    with open(path, "wb") as f:
        picture.save(f, format="PNG")


def write_figures(
    staging: Path,
    stem: str,
    slide: InferredSlide,
    num_classes: int,
    head_sigmas: Sequence[float] | None,
    instances: RawMask | None = None,
) -> list[dict]:
    """The pictures of one input into ``staging``: ``NAME_overlay.png``, ``NAME_regions.png`` (slides),
    ``NAME_heads.png`` and ``NAME_scale.png``; with the nucleus ``instances`` (labels of the inference grid), an
    image's overlay and a slide's region crops outline the nuclei one by one.

    Returns:
        the regions of ``NAME_regions.png``: ``{"y", "x", "height", "width"}`` in pixels of the inference level
        and ``"level0_yx"`` (empty for an image).
    """
    size, factor, tissue, acc = slide.size, slide.factor, slide.tissue, slide.accumulator
    box = tissue_box(tissue)
    foreground = acc.foreground_fraction()
    regions: list[dict] = []
    if slide.image:
        labels = None if instances is None else instances.read_rows(0, size[0])
        write_image_overlay(
            staging / f"{stem}_overlay.png",
            slide.read_region((0, 0), size),
            acc.mask.read_rows(0, size[0]),
            num_classes,
            instances=labels,
        )
    else:
        write_slide_overview(staging / f"{stem}_overlay.png", slide.thumbnail, tissue, foreground, box)
        crop = [min(REGION_SIZE, int(s)) for s in size]
        crops, masks, labels, nuclei = [], [], [], []
        ds = slide.downsample
        for k, (ty, tx) in enumerate(pick_regions(foreground, tissue, math.ceil(max(crop) / factor))):
            y, x = min(ty * factor, size[0] - crop[0]), min(tx * factor, size[1] - crop[1])
            crops.append(slide.read_region((y, x), (crop[0], crop[1])))
            masks.append(acc.mask.read_block(y, x, crop[0], crop[1]))
            if instances is not None:
                nuclei.append(instances.read_block(y, x, crop[0], crop[1]))
            labels.append(f"region {k + 1}: x {round(x * ds)}, y {round(y * ds)} (level 0)")
            regions.append(
                {"y": y, "x": x, "height": crop[0], "width": crop[1], "level0_yx": [round(y * ds), round(x * ds)]}
            )
        write_region_crops(
            staging / f"{stem}_regions.png",
            crops,
            masks,
            labels,
            num_classes,
            instances=nuclei if instances is not None else None,
        )
    write_head_map(staging / f"{stem}_heads.png", acc.winner_map(), tissue, box, factor, head_sigmas, slide.path.name)
    scales = np.exp(np.asarray(slide.window_log_scales, dtype=np.float64))
    locations = slide.splitter.locations(str(slide.path)) if scales.size else []
    note = ""
    if len(locations) != scales.size or not scales.size:
        scales, locations = np.zeros(0), []
        note = "no per-window scale estimate: the model has no scale-fusion calibration (run calibrating)"
    values = window_map(locations, scales, slide.patch_size, factor, tissue.shape)
    write_scale_map(staging / f"{stem}_scale.png", values, tissue, box, factor, slide.path.name, note)
    return regions
