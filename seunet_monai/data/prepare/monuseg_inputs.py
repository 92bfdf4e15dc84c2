"""The inputs of the MoNuSeg preparation (:mod:`~seunet_monai.data.prepare.monuseg`): labelled images found in the
official layout or in flat folders, their labels read, and each one checked before anything is written.

Official layout (either part may be absent)::

    SRC/MoNuSegTrainingData/Tissue Images/*.tif   SRC/MoNuSegTrainingData/Annotations/*.xml
    SRC/MoNuSegTestData/*.tif + *.xml (side by side)

Flat folders: ``--images`` (every image in the training part), ``--annotations`` (Aperio XML) and ``--masks``
(binary PNG masks, used where an image has no XML). Images and labels are matched by file stem; an image
without labels (or, in the official layout, the reverse) is a bad file naming it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.measure import label as connected_components

from seunet_monai.data.annotations import annotation_warning, parse_aperio_xml, rasterise_regions, read_png_mask
from seunet_monai.data.io import IMAGE_SUFFIXES
from seunet_monai.data.prepare.common import BadFileLog, read_image
from seunet_monai.errors import PreparationError

__all__ = [
    "TRAIN_DIR",
    "TEST_DIR",
    "LabelledImage",
    "find_monuseg_pairs",
    "find_flat_items",
    "ImageLabels",
    "read_labels",
    "check_item",
]

TRAIN_DIR = "MoNuSegTrainingData"
TEST_DIR = "MoNuSegTestData"


@dataclass
class LabelledImage:
    """One image and its label source: the Aperio XML when there is one, else a binary PNG mask.

    Attributes:
        stem: the file stem (the image's name in the dataset).
        image: the image file.
        xml: its Aperio XML, or ``None``.
        part: ``"train"`` or ``"test"`` (the official layout's part; flat folders: ``"train"``).
        mask: its binary PNG mask (used when there is no XML), or ``None``.
    """

    stem: str
    image: Path
    xml: Path | None
    part: str
    mask: Path | None = None

    @property
    def label_source(self) -> str:
        """``"xml"`` or ``"png"``."""
        return "xml" if self.xml is not None else "png"

    @property
    def label_file(self) -> Path:
        """The XML, or else the PNG mask."""
        return self.xml if self.xml is not None else self.mask  # type: ignore[return-value]


def _files(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    """``{stem: file}`` of the files of ``folder`` with one of ``suffixes``.

    Raises:
        PreparationError: for two files of one stem (``X.tif`` and ``X.png``): which one is meant is unknown.
    """
    out: dict[str, Path] = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes:
                if p.stem in out:
                    raise PreparationError(
                        f"{folder}: {out[p.stem].name} and {p.name} have the same name {p.stem!r} (images and labels "
                        "are matched by name): move one of them out of the folder."
                    )
                out[p.stem] = p
    return out


def find_monuseg_pairs(src: str | os.PathLike, log: BadFileLog) -> list[LabelledImage]:
    """Match the images and annotations of the official MoNuSeg layout under ``src`` by stem.

    Args:
        src: the extracted dataset folder.
        log: where unmatched files go (raise, or record with ``skip_bad``).

    Returns:
        matched pairs, training part first, each part sorted by stem.

    Raises:
        PreparationError: when ``src`` holds neither ``MoNuSegTrainingData`` nor ``MoNuSegTestData``, or
            (without ``skip_bad``) for an image without annotation or the reverse.
    """
    src = Path(src)
    train_root, test_root = src / TRAIN_DIR, src / TEST_DIR
    if not train_root.is_dir() and not test_root.is_dir():
        raise PreparationError(
            f"{src}: expected the official MoNuSeg layout with {TRAIN_DIR}/ and/or {TEST_DIR}/ inside, found neither."
        )
    parts = []
    if train_root.is_dir():
        img_dir, xml_dir = train_root / "Tissue Images", train_root / "Annotations"
        for d in (img_dir, xml_dir):
            if not d.is_dir():
                raise PreparationError(f"{d}: folder missing (expected {TRAIN_DIR}/Tissue Images and /Annotations).")
        parts.append(("train", _files(img_dir, IMAGE_SUFFIXES), _files(xml_dir, (".xml",))))
    if test_root.is_dir():
        parts.append(("test", _files(test_root, IMAGE_SUFFIXES), _files(test_root, (".xml",))))
    pairs = []
    for part, images, xmls in parts:
        for stem in sorted(set(images) | set(xmls)):
            if stem not in xmls:
                log.bad(images[stem], f"{images[stem]}: image without an annotation XML of the same name")
            elif stem not in images:
                log.bad(xmls[stem], f"{xmls[stem]}: annotation XML without an image of the same name")
            else:
                pairs.append(LabelledImage(stem, images[stem], xmls[stem], part))
    stems = [p.stem for p in pairs]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise PreparationError(f"{src}: image name(s) {dup} appear in both the training and the test part.")
    return pairs


def find_flat_items(
    images: str | os.PathLike,
    annotations: str | os.PathLike | None,
    masks: str | os.PathLike | None,
    log: BadFileLog,
) -> list[LabelledImage]:
    """Match flat folders of images, Aperio XML and binary PNG masks by stem (all in the training part).

    The label source of an image is its XML when there is one, else its PNG mask; an image with neither goes
    to ``log`` (an error, or skipped with ``skip_bad``). Annotations or masks without an image are ignored.

    Args:
        images: folder of ``.tif``/``.tiff``/``.png`` images.
        annotations: folder of ``.xml`` files, or ``None``.
        masks: folder of ``.png`` masks (values {0, 1} or {0, 255}), or ``None``.
        log: where images without labels go.

    Raises:
        PreparationError: a given folder is missing, or holds no image.
    """
    folders = {"--images": images, "--annotations": annotations, "--masks": masks}
    for flag, folder in folders.items():
        if folder is not None and not Path(folder).is_dir():
            raise PreparationError(f"{flag} {folder}: folder not found.")
    found = _files(Path(images), IMAGE_SUFFIXES)
    if not found:
        raise PreparationError(f"--images {images}: no .tif, .tiff or .png image in this folder.")
    xmls = _files(Path(annotations), (".xml",)) if annotations is not None else {}
    pngs = _files(Path(masks), (".png",)) if masks is not None else {}
    pairs = []
    for stem, path in found.items():
        if stem not in xmls and stem not in pngs:
            log.bad(path, f"{path}: image without an annotation XML or a PNG mask of the same name")
            continue
        pairs.append(LabelledImage(stem, path, xmls.get(stem), "train", None if stem in xmls else pngs[stem]))
    return pairs


@dataclass
class ImageLabels:
    """The masks of one image (``binary`` ``(H, W)`` uint8 0/1, ``instance`` ``(H, W)`` int32 ids) and the counts
    of :mod:`~seunet_monai.data.annotations` (a PNG mask: its nuclei as ``regions``, the other counts 0)."""

    binary: np.ndarray
    instance: np.ndarray
    regions: int
    skipped_regions: int
    empty_regions: int
    clipped_vertices: int
    microns_per_pixel: float | None


def read_labels(pair: LabelledImage, shape: Sequence[int]) -> ImageLabels:
    """Binary and instance masks of one image from its label source (XML polygons, or a PNG mask).

    A PNG mask has no instances: its connected components (8-connectivity) stand in for them.
    """
    if pair.xml is not None:
        ann = parse_aperio_xml(pair.xml)
        if len(ann.regions) > 65535:
            raise PreparationError(f"{pair.xml}: {len(ann.regions)} regions do not fit a 16-bit instance mask.")
        binary, instance, stats = rasterise_regions(ann.regions, shape)
        return ImageLabels(
            binary,
            instance,
            len(ann.regions),
            ann.skipped_regions,
            stats.empty_regions,
            stats.clipped_vertices,
            ann.microns_per_pixel,
        )

    binary = read_png_mask(pair.mask)  # type: ignore[arg-type]
    if binary.shape != tuple(shape[:2]):
        raise PreparationError(
            f"{pair.mask}: mask size {binary.shape[0]}x{binary.shape[1]} differs from its image "
            f"{pair.image} ({shape[0]}x{shape[1]})."
        )
    instance = connected_components(binary, connectivity=2).astype(np.int32)
    if instance.max() > 65535:
        raise PreparationError(f"{pair.mask}: {instance.max()} nuclei do not fit a 16-bit instance mask.")
    return ImageLabels(binary, instance, int(instance.max()), 0, 0, 0, None)


def check_item(pair: LabelledImage, tile: int, log: BadFileLog, strict: bool = False) -> tuple[bool, str | None]:
    """Parse the label source and decode the image of one labelled image.

    Args:
        pair: the labelled image.
        tile: training images smaller than the tile are bad files.
        log: where bad files go.
        strict: a suspicious annotation is a bad file.

    Returns:
        ``(usable, warning)``: a bad file goes to ``log`` (``usable`` False); ``warning`` is the
        :func:`~seunet_monai.data.annotations.annotation_warning` of the pair (a bad file with ``strict``).
    """
    ann = None
    if pair.xml is not None:
        try:
            ann = parse_aperio_xml(pair.xml)
        except PreparationError as e:
            log.bad(pair.xml, str(e))
            return False, None
    try:
        image, _ = read_image(pair.image)
        if pair.part == "train" and (image.shape[0] < tile or image.shape[1] < tile):
            raise PreparationError(
                f"{pair.image}: image {image.shape[0]}x{image.shape[1]} is smaller than the tile {tile}x{tile}."
            )
    except PreparationError as e:
        log.bad(pair.image, str(e))
        return False, None
    if ann is not None:
        warning = annotation_warning(ann.regions, image.shape, pair.label_file, pair.image)
    else:
        try:
            labels = read_labels(pair, image.shape)
        except PreparationError as e:
            log.bad(pair.mask, str(e))  # type: ignore[arg-type]
            return False, None
        warning = None if labels.regions else annotation_warning([], image.shape, pair.label_file, pair.image)
    if warning is not None and strict:
        log.bad(pair.label_file, f"{warning} (refused by --strict)")
        return False, None
    return True, warning
