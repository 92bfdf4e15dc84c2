"""The files of ``run inferring``: their names, the inputs they come from, and their staging folders.

Per input ``NAME.EXT`` (``NAME`` the file name without its whole image suffix: ``a.ome.tif`` gives ``a``) the
outputs are ``NAME + key`` for the keys of :data:`OUTPUT_FILES` (:func:`output_names`). They are written into a
staging folder ``output_dir/.NAME.partial/`` marked by :data:`PARTIAL_MARKER` (:func:`make_staging`) and renamed
into place at the end, the summary last (:func:`commit_staging`), so that an interrupted input leaves no partial
output. :func:`check_output_paths` refuses, before any work, an output folder that is the input folder or a file,
an output path that is an input, and two inputs whose outputs would have the same name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from seunet_monai.errors import ConfigValueError, ExistingPathError, MissingPathError

from .readers import SUPPORTED_SUFFIXES

__all__ = [
    "OUTPUT_FILES",
    "PARTIAL_MARKER",
    "check_output_paths",
    "commit_staging",
    "discard_staging",
    "list_inputs",
    "make_staging",
    "output_names",
    "output_stem",
    "staging_folder",
]

#: The file marking a staging folder as ours (safe to delete).
PARTIAL_MARKER = ".seunet_partial"

OUTPUT_FILES = {
    "_mask.tif": "class id per pixel (0 background, 1 nucleus, ...) at the inference resolution: tiled, pyramidal "
    "OME-TIFF with its resolution (opens in QuPath, Fiji, napari)",
    "_instances.tif": "nucleus model: nucleus instance id per pixel (uint32, 0 background, 1..N one per nucleus, "
    "touching nuclei separated), same geometry, tiling, pyramid and resolution as NAME_mask.tif",
    ".geojson": "one polygon per object (nucleus model: per separated nucleus) with its class and measurements "
    "(area, perimeter, equivalent diameter, eccentricity, solidity, mean nucleus probability, mean haematoxylin OD), "
    "in level-0 pixels (QuPath: File > Import objects)",
    "_overlay.png": "images: the image at full resolution with every object (every separated nucleus) outlined; "
    "slides: the tissue (blue outline) and the objects (yellow), cropped to the tissue",
    "_regions.png": "slides: full-resolution crops of representative tissue regions (dense, typical, sparse in "
    "objects) with the objects (every separated nucleus) outlined; positions in the summary's 'regions'",
    "_heads.png": "map of the winning scale group (PDist) per region of tissue, with each head's σ",
    "_scale.png": "map of the estimated scale relative to the training data per region (one estimate per window)",
    "_mask.png": "images: the class ids as a palette PNG (pixel value = class id; background black, nuclei yellow)",
    "_summary.json": "counts, areas, density, tissue, resolution, winning heads, estimated scale, regions and what "
    "made the outputs; written last, it marks a finished input",
}
"""What every output ``NAME + key`` of an input holds (also listed in each summary's ``outputs``)."""

_MULTI_SUFFIXES = (".ome.tif", ".ome.tiff")


def output_stem(path: str | os.PathLike) -> str:
    """``NAME`` of the outputs of input ``path``: the file name without its whole image suffix (``a.ome.tif``,
    ``a.tiff``, ``a.svs``, ``a.png`` all give ``a``); other dots stay (``TCGA-01.2.svs`` gives ``TCGA-01.2``)."""
    name = Path(path).name
    for suffix in _MULTI_SUFFIXES + SUPPORTED_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def output_names(stem: str, image: bool | None = None, instances: bool = True) -> list[str]:
    """File names written for input ``stem`` (:data:`OUTPUT_FILES`): an ordinary image's (``image=True``: with
    ``NAME_mask.png``), a slide's (``False``: with ``NAME_regions.png``) or every name either may have (``None``);
    both with ``NAME_instances.tif`` unless ``instances`` is false (a model without a single nucleus class).
    The summary comes last (it marks a finished input)."""
    without = () if instances else ("_instances.tif",)
    skip = {True: ("_regions.png", *without), False: ("_mask.png", *without), None: ()}[image]
    return [stem + suffix for suffix in OUTPUT_FILES if suffix not in skip]


def list_inputs(input_dir: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """``(supported, unsupported)`` files of ``input_dir`` (not recursive, hidden files ignored), sorted.

    Raises:
        MissingPathError: when ``input_dir`` is not a folder.
    """
    folder = Path(os.path.expanduser(str(input_dir)))
    if not folder.is_dir():
        raise MissingPathError(f"input_dir {str(folder)!r} is not a folder (set --input_dir to a folder of images).")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    ok = [p for p in files if p.suffix.lower() in SUPPORTED_SUFFIXES]
    return ok, [p for p in files if p not in ok]


def check_output_paths(inputs: Sequence[Path], input_dir: Path, output_dir: Path) -> None:
    """Refuse an output folder that is a file or the input folder, an output path that is an input file, and two
    inputs whose outputs would have the same name (whatever ``--overwrite`` says).

    Raises:
        ConfigValueError: naming the clash and the fix.
    """
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigValueError(f"output_dir {str(output_dir)!r} is a file, not a folder: choose another --output_dir.")
    owner: dict[str, Path] = {}
    for p in inputs:
        for name in output_names(output_stem(p)):
            if name in owner:
                raise ConfigValueError(
                    f"inputs {owner[name].name!r} and {p.name!r} would both write {name!r} in "
                    f"{str(output_dir)!r}: rename one of them, or segment them into different --output_dir."
                )
            owner[name] = p
    if output_dir.exists() and output_dir.resolve() == input_dir.resolve():
        raise ConfigValueError(
            f"output_dir {str(output_dir)!r} is the input folder; outputs are never written among the "
            "inputs (whatever --overwrite says): choose another --output_dir."
        )
    real_inputs = {p.resolve() for p in inputs}
    for p in inputs:
        for name in output_names(output_stem(p)):
            target = output_dir / name
            same = target.exists() and any(os.path.samefile(target, q) for q in inputs)
            if same or target.resolve() in real_inputs:
                raise ConfigValueError(
                    f"output {str(target)!r} is an input file; outputs never replace inputs (whatever "
                    "--overwrite says): choose another --output_dir."
                )


def staging_folder(output_dir: Path, path: Path) -> Path:
    """``output_dir/.NAME.partial``: where the outputs of input ``path`` are written before they are final."""
    return output_dir / f".{output_stem(path)}.partial"


def make_staging(output_dir: Path, path: Path) -> Path:
    """A new, empty, marked staging folder for input ``path`` (an earlier one of ours is removed first).

    Raises:
        ExistingPathError: when the folder exists without our marker.
    """
    staging = staging_folder(output_dir, path)
    if staging.exists():
        if not (staging / PARTIAL_MARKER).is_file():
            raise ExistingPathError(f"{staging} exists and was not written by this workflow; remove or rename it.")
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    (staging / PARTIAL_MARKER).write_text("staging folder of an unfinished slide; safe to delete\n")
    return staging


def discard_staging(output_dir: Path, path: Path) -> None:
    """Remove the staging folder of input ``path`` when it is ours."""
    staging = staging_folder(output_dir, path)
    if (staging / PARTIAL_MARKER).is_file():
        shutil.rmtree(staging, ignore_errors=True)


def commit_staging(staging: Path, output_dir: Path, names: Sequence[str]) -> None:
    """Rename the staged outputs ``names`` into ``output_dir`` in order (the summary last), then remove ``staging``."""
    for name in names:
        os.replace(staging / name, output_dir / name)
    shutil.rmtree(staging)
