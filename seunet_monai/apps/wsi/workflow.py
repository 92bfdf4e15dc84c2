"""``run inferring``: segment every image and slide of a folder, one slide at a time, in bounded memory.

Per input ``NAME.EXT`` (``EXT`` the whole image suffix: ``a.ome.tif`` gives ``a``) the outputs are those of
:data:`OUTPUT_FILES`: ``NAME_mask.tif``, ``NAME.geojson``, ``NAME_overlay.png``, ``NAME_heads.png``,
``NAME_scale.png``, ``NAME_summary.json``, and ``NAME_mask.png`` for ordinary images of at most
``png_max_pixels`` or ``NAME_regions.png`` for slides (:mod:`~seunet_monai.apps.wsi.figures`). They are written
into a staging folder ``output_dir/.NAME.partial/`` and renamed into place at the end, the summary last, so an
interrupted slide leaves no partial output. Re-running continues: a slide whose summary (and other outputs)
exist is skipped (``--overwrite true`` redoes it); outputs present without their summary, that no interrupted
run of ours left, are refused unless ``--overwrite true``. An output folder equal to the input folder, or an
output path that is an input file, is refused whatever ``overwrite`` says, and so are two inputs whose outputs
would have the same name (``a.png`` and ``a_overlay.png``).

The output folder is locked for the run (:func:`seunet_monai.runtime.run_lock.lock_run_folders`, as training locks its
folders): a second run into it is refused at once, naming the first one's pid. Each summary records what made
the outputs (``provenance``: model file and its SHA-256, bundle version, fusion, stain normalisation and its
reference, tissue detection, windows, watershed, target resolution or level, and the input file's size and
modification time); finished outputs whose recorded settings or input differ from the current run's are
refused, naming the differences, unless ``--overwrite true``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from seunet_monai.checkpoint import check_state_dict, load_network
from seunet_monai.data.stain.reference import stain_transform
from seunet_monai.errors import ConfigValueError, ExistingPathError, InferenceError, MissingPathError, SeunetError
from seunet_monai.evaluation.nucleus_measurements import nucleus_measurements
from seunet_monai.fusion.scale import log_sigma_estimate
from seunet_monai.networks.base import last_layer_log_sigmas
from seunet_monai.runtime.checks import as_flag
from seunet_monai.runtime.distributed import unwrap
from seunet_monai.runtime.run_lock import lock_run_folders
from seunet_monai.transforms.instances import NucleusInstances

from .accumulator import RawMask, SlideAccumulator
from .figures import (
    pick_regions,
    tissue_box,
    window_map,
    write_head_map,
    write_image_overlay,
    write_region_crops,
    write_scale_map,
    write_slide_overview,
)
from .inferers import HeadsPatchPredictor
from .instances import iter_instances, iter_label_instances
from .readers import (
    SUPPORTED_SUFFIXES,
    WHOLE_IMAGE_SUFFIXES,
    ResampledLevelReader,
    choose_level,
    implausible_resolution,
    level_mpp,
    make_reader,
    read_region,
    read_thumbnail,
)
from .tissue import TissueLocationFilter, detect_tissue, is_colourless
from .writers import GeoJSONWriter, write_mask_tiff, write_palette_png

__all__ = [
    "SlideInferenceWorkflow",
    "bundle_version",
    "list_inputs",
    "output_names",
    "patch_stain_transform",
    "training_mpp",
]

logger = logging.getLogger(__name__)

PARTIAL_MARKER = ".seunet_partial"


def training_mpp(metadata_file: str | os.PathLike, key: str = "training_mpp") -> float | None:
    """The resolution (µm per pixel) the model was trained at, from the bundle's ``metadata.json`` (``None``
    when the key is absent)."""
    value = json.loads(Path(metadata_file).read_text()).get(key)
    return float(value) if value else None


def bundle_version(metadata_file: str | os.PathLike) -> str | None:
    """The bundle's ``version`` from its ``metadata.json`` (``None`` when absent), recorded in the summaries."""
    value = json.loads(Path(metadata_file).read_text()).get("version")
    return None if value is None else str(value)


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _differences(old: Any, new: Any, key: str = "") -> list[str]:
    """``"key: old -> new"`` for every leaf of two JSON-like records that differs (dicts compared key by key; long
    values shortened)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(k), new.get(k), f"{key}.{k}" if key else str(k))]

    def short(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."

    return [] if old == new else [f"{key}: {short(old)} -> {short(new)}"]


def patch_stain_transform(stain_norm: str, stain_reference: str | os.PathLike) -> Callable | None:
    """Per-patch stain normaliser of inference or ``None`` (:func:`seunet_monai.data.stain.reference.stain_transform`
    on channel-first patches)."""
    return stain_transform(stain_norm, stain_reference, channel_dim=0)



def _scale_histogram(scales: np.ndarray) -> dict[str, int]:
    """Counts of per-window scale estimates in octave-quarter bins ``2^(k/4)`` (the sweep's scales)."""
    k = np.rint(4.0 * np.log2(scales)).astype(int)
    return {f"{2.0 ** (v / 4.0):.3g}": int((k == v).sum()) for v in sorted(set(k.tolist()))}


OUTPUT_FILES = {
    "_mask.tif": "class id per pixel (0 background, 1 nucleus, ...) at the inference resolution: tiled, pyramidal "
    "OME-TIFF with its resolution (opens in QuPath, Fiji, napari)",
    "_instances.tif": "images: nucleus instance id per pixel (uint32, 0 background, 1..N one per nucleus, touching "
    "nuclei separated), same geometry, tiling, pyramid and resolution as NAME_mask.tif",
    ".geojson": "one polygon per object (images: per separated nucleus) with its class and measurements (area, "
    "perimeter, equivalent diameter, eccentricity, solidity, mean nucleus probability, mean haematoxylin OD), in "
    "level-0 pixels (QuPath: File > Import objects)",
    "_overlay.png": "images: the image at full resolution with every object (every separated nucleus) outlined; slides: the tissue (blue "
    "outline) and the objects (yellow), cropped to the tissue",
    "_regions.png": "slides: full-resolution crops of representative tissue regions (dense, typical, sparse in "
    "objects) with the objects outlined; positions in the summary's 'regions'",
    "_heads.png": "map of the winning scale group (PDist) per region of tissue, with each head's σ",
    "_scale.png": "map of the estimated scale relative to the training data per region (one estimate per window)",
    "_mask.png": "images: the class ids as a palette PNG (pixel value = class id; background black, nuclei yellow)",
    "_summary.json": "counts, areas, density, tissue, resolution, winning heads, estimated scale, regions and what "
    "made the outputs; written last, it marks a finished input",
}
"""What every output ``NAME + key`` of an input holds (also listed in each summary's ``outputs``)."""

#: µm per pixel assumed for the sizes of the instances of an image of unknown resolution when there is no
#: ``target_mpp`` either: the bundle's training resolution (MoNuSeg, 40x).
ASSUMED_MPP = 0.25

#: Side (pixels of the inference level) of the full-resolution crops of ``NAME_regions.png``.
REGION_SIZE = 512
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
    ``NAME_mask.png``, and ``NAME_instances.tif`` unless ``instances`` is false: a model without a single
    nucleus class), a slide's (``False``: with ``NAME_regions.png``) or every name either may have (``None``).
    The summary comes last (it marks a finished input)."""
    skip = {True: ("_regions.png",) + (() if instances else ("_instances.tif",)),
            False: ("_mask.png", "_instances.tif"), None: ()}[image]
    return [stem + suffix for suffix in OUTPUT_FILES if suffix not in skip]


def list_inputs(input_dir: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """``(supported, unsupported)`` files of ``input_dir`` (not recursive, hidden files ignored), sorted.

    Raises:
        FileNotFoundError: when ``input_dir`` is not a folder.
    """
    folder = Path(os.path.expanduser(str(input_dir)))
    if not folder.is_dir():
        raise MissingPathError(f"input_dir {str(folder)!r} is not a folder (set --input_dir to a folder of images).")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    ok = [p for p in files if p.suffix.lower() in SUPPORTED_SUFFIXES]
    return ok, [p for p in files if p not in ok]


class SlideInferenceWorkflow:
    """Segment the images and slides of ``input_dir`` into ``output_dir`` (see the module docstring).

    Args:
        input_dir: folder of ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff`` (plain, tiled, pyramidal, OME) and
            ``.svs`` files; other files are named and skipped.
        output_dir: folder of the outputs (created).
        network: the segmentation network (SEUNet or any network returning class logits).
        inferer: a callable making a :class:`monai.inferers.PatchInferer` from ``splitter=`` and ``sink=`` (a
            ``_mode_: partial`` config component with ``merger_cls`` :class:`~.inferers.BandMerger`).
        splitter: a callable making a :class:`~.inferers.TissueWSISplitter` from ``reader=``, ``level=`` and
            ``location_filter=`` (partial).
        checkpoint: weights loaded into ``network`` first (``None``: keep the network's weights).
        target_mpp: resolution (µm per pixel) to infer at, > 0; picks the closest pyramid level.
        level: pyramid level to infer at (overrides ``target_mpp``; a warning when it is off ``target_mpp``).
        tissue_mask: ``"otsu"`` or ``"none"``.
        slide_backend: ``"tifffile"`` (default), ``"cucim"`` or ``"openslide"`` for TIFF/SVS files.
        overwrite: redo slides whose outputs exist, replacing them.
        watershed: slides only: split touching objects of the class mask (``peak_local_max`` markers) in the
            GeoJSON; images always get separated instances (:class:`~seunet_monai.transforms.instances.NucleusInstances`).
        watershed_min_distance: watershed marker spacing (pixels of the inference level), slides only.
        mpp: declared resolution (µm per pixel of level 0) of inputs whose file states none (e.g. MoNuSeg's
            TIFFs, PNGs); used as a file's own. An input whose file states a resolution more than
            ``resample_tolerance`` off ``mpp`` fails with one line naming both (the file's tags are never
            silently overridden). ``None``: inputs without a resolution are inferred as stored, with the
            training resolution ``target_mpp`` (else :data:`ASSUMED_MPP`) assumed for the sizes of the instance
            post-processing only (areas then in px², no density; the summary's ``resolution.source`` is
            ``"none"`` and ``nuclei.instance_mpp_source`` says what was assumed).
        geojson_simplify: tolerance (pixels of the inference level) of the polygon simplification in the GeoJSON;
            0 = exact pixel outlines.
        min_nucleus_area_um2: images: instances smaller than this (µm²) are not exported.
        marker_h_um: images: drop of the distance to the background (µm) that separates two nuclei.
        instance_margin: rows read below each band of the mask at once when listing instances (objects that
            reach further are followed until whole: :func:`~.instances.iter_instances`).
        class_names: name per class (default ``background``, ``Nucleus`` for two classes).
        thumbnail_size: longer side of the overview thumbnail (tissue detection, overlay).
        png_max_pixels: largest single-level image treated as an image (``NAME_mask.png``, full-resolution overlay).
        resample_tolerance: when the chosen level's µm per pixel differs from ``target_mpp`` by more than this
            relative amount (default 5%), windows are resampled to exactly ``target_mpp``
            (:class:`~.readers.ResampledLevelReader`; ``resolution.resampled`` in the summary). A forced
            ``level`` is never resampled.
        max_resample_zoom: largest enlargement (per side) of the chosen level when resampling to ``target_mpp``
            (default 4: the resampled image at most 16 times the stored pixels). Beyond it (e.g. 144-dpi tags
            read as 176 µm/px) the resolution is treated as unknown, with a warning, and the level used as stored.
        bundle_version: the bundle's version, recorded in each summary's ``provenance``.
        scale_reference: ``log σ̂`` at the training scale (confidence-weighted last-layer ``log σ``); when given
            the summary has the estimated scale relative to training, else that entry is ``None``.
        amp: mixed precision on CUDA.
        progress: progress bars over slides and patches.
    """

    COMPARED = ("model_sha256", "fusion", "stain_normalisation", "settings", "input_file")
    """Provenance entries that must match for finished outputs to count as this run's (``provenance`` in the
    summary also records the model's path and the bundle version, which may differ)."""

    def __init__(
        self,
        input_dir: str | os.PathLike,
        output_dir: str | os.PathLike,
        network: torch.nn.Module,
        inferer: Callable[..., Any],
        splitter: Callable[..., Any],
        checkpoint: str | os.PathLike | None = None,
        target_mpp: float | None = None,
        level: int | None = None,
        tissue_mask: str = "otsu",
        slide_backend: str = "tifffile",
        overwrite: bool = False,
        watershed: bool = False,
        watershed_min_distance: int = 5,
        mpp: float | None = None,
        geojson_simplify: float = 1.0,
        min_nucleus_area_um2: float = 5.0,
        marker_h_um: float = 0.15,
        instance_margin: int = 128,
        class_names: Sequence[str] | None = None,
        thumbnail_size: int = 1024,
        png_max_pixels: int = 64_000_000,
        resample_tolerance: float = 0.05,
        max_resample_zoom: float = 4.0,
        bundle_version: str | None = None,
        scale_reference: float | None = None,
        amp: bool = False,
        progress: bool = True,
    ) -> None:
        self.input_dir = Path(os.path.expanduser(str(input_dir)))
        self.output_dir = Path(os.path.expanduser(str(output_dir)))
        self.network = network
        self.make_inferer = inferer
        self.make_splitter = splitter
        self.checkpoint = checkpoint
        try:
            self.target_mpp = None if target_mpp is None else float(target_mpp)
        except (TypeError, ValueError):
            self.target_mpp = math.nan
        if self.target_mpp is not None and not (math.isfinite(self.target_mpp) and self.target_mpp > 0):
            raise ConfigValueError(
                f"target_mpp must be a positive resolution in µm per pixel (e.g. 0.25), got {target_mpp!r}; fix "
                "--target_mpp, or set --level to choose a pyramid level instead."
            )
        try:
            self.mpp = None if mpp is None else float(mpp)
        except (TypeError, ValueError):
            self.mpp = math.nan
        if self.mpp is not None and not (math.isfinite(self.mpp) and self.mpp > 0):
            raise ConfigValueError(f"mpp must be a positive resolution in µm per pixel (e.g. 0.25), got {mpp!r}; fix --mpp.")
        try:
            self.geojson_simplify = float(geojson_simplify)
        except (TypeError, ValueError):
            self.geojson_simplify = math.nan
        if not (math.isfinite(self.geojson_simplify) and self.geojson_simplify >= 0):
            raise ConfigValueError(f"geojson_simplify must be a tolerance >= 0 in pixels (0 = off), got {geojson_simplify!r}.")
        self.instances = NucleusInstances(min_nucleus_area_um2=min_nucleus_area_um2, marker_h_um=marker_h_um)
        self.level = None if level is None else int(level)
        if self.level is not None and self.level < 0:
            raise ConfigValueError(f"level must be a pyramid level >= 0 (0 is the full resolution), got {level!r}.")
        self.tissue_method = str(tissue_mask)
        self.slide_backend = slide_backend
        self.overwrite = as_flag(overwrite, "overwrite")
        self.watershed = as_flag(watershed, "watershed")
        self.watershed_min_distance = int(watershed_min_distance)
        self.instance_margin = int(instance_margin)
        self.class_names = list(class_names) if class_names else None
        self.thumbnail_size = int(thumbnail_size)
        self.png_max_pixels = int(png_max_pixels)
        self.resample_tolerance = float(resample_tolerance)
        if not self.resample_tolerance >= 0:
            raise ConfigValueError(f"resample_tolerance must be >= 0, got {resample_tolerance!r}.")
        self.max_resample_zoom = float(max_resample_zoom)
        if not self.max_resample_zoom >= 1:
            raise ConfigValueError(f"max_resample_zoom must be >= 1, got {max_resample_zoom!r}.")
        self.bundle_version = bundle_version
        self.scale_reference = scale_reference
        self.amp = as_flag(amp, "amp")
        self.progress = as_flag(progress, "progress")

    # ------------------------------------------------------------------ checks before any work
    def _check_paths(self, inputs: list[Path]) -> None:
        """Refuse an output folder equal to the input folder or that is a file, an output path that is an input
        file, and two inputs whose outputs would have the same name."""
        if self.output_dir.exists() and not self.output_dir.is_dir():
            raise ConfigValueError(f"output_dir {str(self.output_dir)!r} is a file, not a folder: choose another --output_dir.")
        owner: dict[str, Path] = {}
        for p in inputs:
            for name in output_names(output_stem(p)):
                if name in owner:
                    raise ConfigValueError(
                        f"inputs {owner[name].name!r} and {p.name!r} would both write {name!r} in "
                        f"{str(self.output_dir)!r}: rename one of them, or segment them into different --output_dir."
                    )
                owner[name] = p
        if self.output_dir.exists() and self.output_dir.resolve() == self.input_dir.resolve():
            raise ConfigValueError(
                f"output_dir {str(self.output_dir)!r} is the input folder; outputs are never written among the "
                "inputs (whatever --overwrite says): choose another --output_dir."
            )
        real_inputs = {p.resolve() for p in inputs}
        for p in inputs:
            for name in output_names(output_stem(p)):
                target = self.output_dir / name
                same = target.exists() and any(os.path.samefile(target, q) for q in inputs)
                if same or target.resolve() in real_inputs:
                    raise ConfigValueError(
                        f"output {str(target)!r} is an input file; outputs never replace inputs (whatever "
                        "--overwrite says): choose another --output_dir."
                    )

    def _status(self, path: Path) -> str:
        """``"todo"``, ``"done"`` (all outputs present) or ``"interrupted"`` (our staging folder is there)."""
        stem = output_stem(path)
        staging = self.output_dir / f".{stem}.partial"
        if (staging / PARTIAL_MARKER).is_file():
            return "interrupted"
        present = [n for n in output_names(stem) if (self.output_dir / n).exists()]
        instances = self._num_classes() == 2
        if any(all((self.output_dir / n).exists() for n in output_names(stem, image, instances)) for image in (True, False)):
            self._check_provenance(path)
            return "done"
        if present and not self.overwrite:
            raise ExistingPathError(
                f"output {str(self.output_dir / present[0])!r} exists but the outputs of {path.name} are not those "
                f"of a finished run (incomplete, or not ours); pass --overwrite true to replace them, or choose "
                "another --output_dir."
            )
        return "todo"

    def _check_provenance(self, path: Path) -> None:
        """Refuse finished outputs of ``path`` made with other settings or from another input file."""
        summary_file = self.output_dir / output_names(output_stem(path), False)[-1]
        try:
            recorded = json.loads(summary_file.read_text(encoding="utf-8")).get("provenance")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if not isinstance(recorded, dict):
            diffs = ["no provenance recorded (written by an older version, or not by this workflow)"]
        else:
            current = self._provenance(path)
            diffs = _differences({k: recorded.get(k) for k in self.COMPARED}, {k: current[k] for k in self.COMPARED})
        if diffs:
            raise ExistingPathError(
                f"the finished outputs of {path.name} in {str(self.output_dir)!r} were made with other settings or "
                f"from another input ({'; '.join(diffs)}): pass --overwrite true to redo them, or choose another "
                "--output_dir."
            )

    def _run_settings(self) -> dict[str, Any]:
        """The input-independent part of the provenance (computed once per run)."""
        if getattr(self, "_settings_record", None) is None:
            net = unwrap(self.network)
            transform = self._stain_transform()
            stain = None
            if transform is not None and hasattr(transform, "describe"):
                stain = {k: v for k, v in transform.describe().items() if k != "fallback_count"}
            split = getattr(self.make_splitter, "keywords", {})
            record = {
                "model_file": None if self.checkpoint is None else str(Path(self.checkpoint).expanduser().resolve()),
                "model_sha256": None if self.checkpoint is None else _sha256(Path(self.checkpoint).expanduser()),
                "bundle_version": self.bundle_version,
                "fusion": None if getattr(net, "fusion", None) is None else str(net.fusion),
                "stain_normalisation": stain or {"method": "none"},
                "settings": {
                    "target_mpp": self.target_mpp, "level": self.level, "resample_tolerance": self.resample_tolerance,
                    "max_resample_zoom": self.max_resample_zoom, "tissue_mask": self.tissue_method,
                    "roi_size": split.get("patch_size"), "overlap": split.get("overlap"),
                    "watershed": self.watershed, "watershed_min_distance": self.watershed_min_distance,
                    "mpp": self.mpp, "geojson_simplify": self.geojson_simplify,
                    "min_nucleus_area_um2": self.instances.min_nucleus_area_um2,
                    "marker_h_um": self.instances.marker_h_um,
                    "class_names": self._names(),
                },
            }
            self._settings_record = json.loads(json.dumps(record, default=str))  # as read back from a summary
        return self._settings_record

    def _provenance(self, path: Path) -> dict[str, Any]:
        """What makes the outputs of ``path``: :meth:`_run_settings` and the input file's size and mtime."""
        stat = path.stat()
        return {**self._run_settings(),
                "input_file": {"name": path.name, "size_bytes": int(stat.st_size), "mtime_ns": int(stat.st_mtime_ns)}}

    def _stain_transform(self) -> Any:
        """The per-patch image transform of the inferer's preprocessing (the stain normaliser), or ``None``."""
        pre = getattr(self.make_inferer, "keywords", {}).get("preprocessing")
        return getattr(pre, "image_transform", None)

    def _load_weights(self) -> None:
        if self.checkpoint is None:
            return

        check_state_dict(self.network, self.checkpoint)
        load_network(self.network, self.checkpoint)

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, list[str]]:
        """Segment every input; returns ``{"done", "skipped", "failed", "unsupported"}`` lists of file names.

        Raises:
            RuntimeError: at the end, when some inputs failed (each is named in the log and the message).
        """
        inputs, unsupported = list_inputs(self.input_dir)
        for p in unsupported:
            logger.warning(f"{p.name}: unsupported file type {p.suffix or '(none)'!r}, skipped "
                           f"(supported: {', '.join(SUPPORTED_SUFFIXES)}).")
        if not inputs:
            raise ConfigValueError(f"input_dir {str(self.input_dir)!r} holds no image ({', '.join(SUPPORTED_SUFFIXES)}).")
        self._check_paths(inputs)
        lock = lock_run_folders([self.output_dir], clash="mix their outputs", keys="--output_dir")
        try:
            return self._run(inputs, unsupported)
        finally:
            lock.release()

    def _run(self, inputs: list[Path], unsupported: list[Path]) -> dict[str, list[str]]:
        status = {p: ("todo" if self.overwrite else self._status(p)) for p in inputs}
        self._load_weights()
        self.network.eval()
        stain = self._run_settings()["stain_normalisation"]
        reference = f" to the reference {stain['reference']}" if stain.get("reference") else ""
        logger.info(f"stain normalisation: {stain['method']}{reference}")
        report: dict[str, list[str]] = {"done": [], "skipped": [], "failed": [], "unsupported": [p.name for p in unsupported]}
        for p in tqdm(inputs, desc="slides", unit="slide", disable=not self.progress):
            if status[p] == "done":
                logger.info(f"{p.name}: outputs present from a finished run, skipped (--overwrite true redoes it).")
                report["skipped"].append(p.name)
                continue
            try:
                line = self.infer_one(p)
            except (ValueError, OSError, RuntimeError) as e:
                logger.error(f"{p.name}: failed, no output written: {type(e).__name__}: {e}")
                self._discard(p)
                report["failed"].append(p.name)
                continue
            logger.info(line)
            report["done"].append(p.name)
        logger.info(f"inference: {len(report['done'])} done, {len(report['skipped'])} skipped (finished before), "
                    f"{len(report['failed'])} failed, {len(unsupported)} unsupported -> {self.output_dir}")
        if report["failed"]:
            raise InferenceError(f"{len(report['failed'])} input(s) could not be segmented: {', '.join(report['failed'])} "
                               "(see the log above for each reason).")
        return report

    def _staging(self, path: Path) -> Path:
        staging = self.output_dir / f".{output_stem(path)}.partial"
        if staging.exists():
            if not (staging / PARTIAL_MARKER).is_file():
                raise ExistingPathError(f"{staging} exists and was not written by this workflow; remove or rename it.")
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        (staging / PARTIAL_MARKER).write_text("staging folder of an unfinished slide; safe to delete\n")
        return staging

    def _discard(self, path: Path) -> None:
        staging = self.output_dir / f".{output_stem(path)}.partial"
        if (staging / PARTIAL_MARKER).is_file():
            shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, staging: Path, names: list[str]) -> None:
        """Rename the staged outputs into place, the summary last, then remove the staging folder."""
        for name in names:
            os.replace(staging / name, self.output_dir / name)
        shutil.rmtree(staging)

    # ------------------------------------------------------------------ one slide
    def infer_one(self, path: Path) -> str:
        """Segment one image or slide and write its outputs; returns the log line."""
        start = time.perf_counter()
        staging = self._staging(path)
        reader = make_reader(path, self.slide_backend)
        try:
            wsi = reader.read(str(path))
        except SeunetError:  # already one line naming the file and the fix
            raise
        except Exception as e:  # noqa: BLE001 - any decoder error: one message naming the file
            raise ValueError(f"cannot open {path.name} as an image or slide: {type(e).__name__}: {e}") from e
        level, mpp = choose_level(reader, wsi, self.target_mpp, self.level)
        reader.level = level
        warnings = [w for w in (implausible_resolution(reader, wsi),) if w]
        mpp, source = self._declared_resolution(path, reader, wsi, level, mpp)
        resampled = self._resampling(level, mpp)
        if resampled and resampled["zoom"] > self.max_resample_zoom:
            h, w = (round(int(v) * resampled["zoom"]) for v in reader.get_size(wsi, level))
            warnings.append(
                f"level {level} is {mpp:.4g} µm/px: resampling it to target_mpp {self.target_mpp:g} would enlarge it "
                f"{resampled['zoom']:.3g}x per side to {h} x {w} px, beyond max_resample_zoom {self.max_resample_zoom:g}: "
                "resolution treated as unknown, inferred as stored (set --level, --target_mpp or correct the file's "
                "resolution)"
            )
            mpp, resampled, source = None, None, "none"
        elif self.level is not None and mpp and self.target_mpp and abs(mpp / self.target_mpp - 1) > self.resample_tolerance:
            ratio = mpp / self.target_mpp
            warnings.append(
                f"--level {level} is {mpp:.4g} µm/px, {max(ratio, 1 / ratio):.3g}x {'coarser' if ratio > 1 else 'finer'} "
                f"than target_mpp {self.target_mpp:g} (the resolution the model was trained at): objects look "
                f"{'smaller' if ratio > 1 else 'larger'} than in training and the results are unreliable; leave --level "
                "unset to infer at target_mpp"
            )
        for message in warnings:
            logger.warning(f"{path.name}: {message}.")
        base, base_level, base_mpp = reader, level, mpp
        if resampled:  # the nearest level is off the target: windows are resampled to exactly target_mpp
            reader, level, mpp = ResampledLevelReader(base, base_level, resampled["zoom"]), 0, self.target_mpp
        size = tuple(int(v) for v in reader.get_size(wsi, level))
        small = path.suffix.lower() in WHOLE_IMAGE_SUFFIXES or (base.get_level_count(wsi) == 1 and size[0] * size[1] <= self.png_max_pixels)
        separate = small and self._num_classes() == 2  # separated nucleus instances (images of a nucleus model)
        thumb, factor = read_thumbnail(reader, wsi, level, self.thumbnail_size)
        tissue = detect_tissue(thumb, self.tissue_method)
        detector = self.tissue_method
        if self.tissue_method == "otsu" and tissue.any() and is_colourless(thumb):
            detector = "otsu on brightness (colourless image)"
            logger.warning(f"{path.name}: no colour (a grey-scale image?): tissue detected from brightness, not "
                           "from H&E colour saturation; check the overlay.")
        self._fit_stains(thumb, None if factor == 1 else tissue)
        probability = RawMask(staging / "probability.raw", size, np.float32) if separate else None
        acc = SlideAccumulator(RawMask(staging / "mask.raw", size), self._num_classes(), factor, probability)
        splitter = self.make_splitter(reader=reader, level=level)
        splitter._opened = (str(path), wsi)  # the slide is open already
        if self.tissue_method != "none":
            roi = splitter._get_valid_shape_parameters(size)[0]
            splitter.location_filter = TissueLocationFilter(tissue, factor, roi)
        patch_size, overlap = splitter._get_valid_shape_parameters(size)[:2]
        # per-head values only from window interiors: half the overlap of each window border left out (BandMerger)
        border = [int(o * p if isinstance(o, float) else o) // 2 for o, p in zip(overlap, patch_size)]
        inferer = self.make_inferer(splitter=splitter, sink=acc, head_channels_from=self._num_classes(),
                                    head_border=border)
        predictor = HeadsPatchPredictor(self.network, amp=self.amp)
        inferer(str(path), predictor)
        self._window_log_scales = predictor.window_log_scales
        stem = output_stem(path)
        names = output_names(stem, small, separate)
        ds = reader.downsample_to_base(wsi) if resampled else float(reader.get_downsample_ratio(wsi, level))
        write_mask_tiff(staging / f"{stem}_mask.tif", acc.mask, mpp=mpp, pyramid=max(size) > 2048)
        labels = None
        if separate:
            nuclei, labels = self._write_instances(staging, stem, acc, reader, wsi, level, size, ds, mpp)
        else:
            nuclei = self._write_geojson(staging / f"{stem}.geojson", acc, ds, mpp, stem)
        regions = self._write_figures(staging, stem, path, reader, wsi, level, size, thumb, factor, tissue, acc,
                                      splitter, patch_size, small, ds, labels)
        del labels
        if small:
            write_palette_png(staging / f"{stem}_mask.png", acc.mask.read_rows(0, size[0]), self._num_classes())
        summary = self._summary(path, base, wsi, base_level, mpp, size, factor, tissue, acc, nuclei, splitter, start,
                                names, ds, resampled)
        summary["regions"] = regions
        summary["resolution"]["warnings"] = warnings
        summary["resolution"]["source"] = source
        if warnings and not mpp:
            summary["resolution"]["note"] = "resolution not used (see warnings): inferred as stored"
        summary["tissue"]["detector"] = detector
        summary["provenance"] = self._provenance(path)
        with open(staging / names[-1], "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        (staging / "mask.raw").unlink()
        if probability is not None:
            probability.path.unlink()
        self._commit(staging, names)
        res = f"{mpp:.3f} µm/px" if mpp else "resolution unknown"
        if resampled:
            res += f", resampled from {base_mpp:.3f}"
        return (f"{path.name}: level {level} ({res}), {splitter.num_patches}/{splitter.num_locations} patches, "
                f"{nuclei['count']} objects, tissue {summary['tissue']['fraction']:.1%}, "
                f"{summary['wall_time_s']:.1f} s -> {self.output_dir / names[0]}")

    # ------------------------------------------------------------------ helpers
    def _num_classes(self) -> int:
        net = unwrap(self.network)
        return int(getattr(net, "out_channels", None) or len(self.class_names or []) or 2)

    def _names(self) -> list[str]:
        c = self._num_classes()
        if self.class_names:
            return self.class_names
        return ["background", "Nucleus"] if c == 2 else [f"class{k}" for k in range(c)]

    def _head_sigmas(self, num_heads: int) -> list[float] | None:
        if num_heads == 0:
            return None
        net = unwrap(self.network)
        log_sigmas, source = last_layer_log_sigmas(net, num_heads)
        return None if source == "head index" else [float(v) for v in log_sigmas.exp()]

    def _write_figures(self, staging: Path, stem: str, path: Path, reader: Any, wsi: Any, level: int,
                       size: tuple[int, ...], thumb: np.ndarray, factor: int, tissue: np.ndarray, acc: SlideAccumulator,
                       splitter: Any, patch_size: Sequence[int], image: bool, ds: float,
                       instances: np.ndarray | None = None) -> list[dict]:
        """The pictures of one input (:mod:`~seunet_monai.apps.wsi.figures`; an image's overlay outlines its
        ``instances`` when given); returns the regions of ``NAME_regions.png`` (pixels of the inference level,
        and of level 0)."""
        num_classes = self._num_classes()
        box = tissue_box(tissue)
        foreground = acc.foreground_fraction()
        regions: list[dict] = []
        if image:
            write_image_overlay(staging / f"{stem}_overlay.png", read_region(reader, wsi, (0, 0), size, level),
                                acc.mask.read_rows(0, size[0]), num_classes, instances=instances)
        else:
            write_slide_overview(staging / f"{stem}_overlay.png", thumb, tissue, foreground, box)
            crop = [min(REGION_SIZE, int(s)) for s in size]
            crops, masks, labels = [], [], []
            for k, (ty, tx) in enumerate(pick_regions(foreground, tissue, math.ceil(max(crop) / factor))):
                y, x = min(ty * factor, size[0] - crop[0]), min(tx * factor, size[1] - crop[1])
                crops.append(read_region(reader, wsi, (y, x), (crop[0], crop[1]), level))
                masks.append(acc.mask.read_block(y, x, crop[0], crop[1]))
                labels.append(f"region {k + 1}: x {round(x * ds)}, y {round(y * ds)} (level 0)")
                regions.append({"y": y, "x": x, "height": crop[0], "width": crop[1],
                                "level0_yx": [round(y * ds), round(x * ds)]})
            write_region_crops(staging / f"{stem}_regions.png", crops, masks, labels, num_classes)
        write_head_map(staging / f"{stem}_heads.png", acc.winner_map(), tissue, box, factor,
                       self._head_sigmas(acc.num_heads), path.name)
        scales = np.exp(np.asarray(getattr(self, "_window_log_scales", []), dtype=np.float64))
        locations = splitter.locations(str(path)) if scales.size else []
        note = ""
        if len(locations) != scales.size or not scales.size:
            scales, locations = np.zeros(0), []
            note = "no per-window scale estimate: the model has no scale-fusion calibration (run calibrating)"
        write_scale_map(staging / f"{stem}_scale.png", window_map(locations, scales, patch_size, factor, tissue.shape),
                        tissue, box, factor, path.name, note)
        return regions

    def _declared_resolution(self, path: Path, reader: Any, wsi: Any, level: int,
                             mpp: float | None) -> tuple[float | None, str]:
        """The µm per pixel of ``level`` and where it comes from: ``"file"``, ``"--mpp"`` (declared, the file
        states none) or ``"none"``.

        Raises:
            ConfigValueError: when ``--mpp`` contradicts the resolution the file states.
        """
        if self.mpp is None:
            return mpp, ("file" if mpp else "none")
        if mpp is not None:
            stated = level_mpp(reader, wsi, 0) or mpp
            if abs(stated / self.mpp - 1.0) > self.resample_tolerance:
                raise ConfigValueError(
                    f"{path.name}: --mpp {self.mpp:g} contradicts the file's own resolution {stated:.4g} µm/px; --mpp "
                    "only declares the resolution of files without one: remove it, or correct the file."
                )
            return mpp, "file"
        return self.mpp * float(reader.get_downsample_ratio(wsi, level)), "--mpp"

    def _write_instances(self, staging: Path, stem: str, acc: SlideAccumulator, reader: Any, wsi: Any, level: int,
                         size: tuple[int, ...], ds: float, mpp: float | None) -> tuple[dict, np.ndarray]:
        """Separated nuclei of an image: ``NAME_instances.tif`` and ``NAME.geojson`` with the per-nucleus
        measurements; returns the summary's ``nuclei`` entry (count and areas of the instances) and the labels
        ``(H, W)``."""
        pixel = mpp or self.target_mpp or ASSUMED_MPP
        mask = acc.mask.read_rows(0, size[0])
        onehot = np.stack([mask != 1, mask == 1]).astype(np.float32)
        labels = np.asarray(self.instances(onehot, pixel_size_um=pixel))[0]
        del onehot
        write_mask_tiff(staging / f"{stem}_instances.tif", labels, mpp=mpp, pyramid=max(size) > 2048)
        probability = acc.probability.read_rows(0, size[0]) if acc.probability is not None else None
        image = np.moveaxis(read_region(reader, wsi, (0, 0), size, level), -1, 0)
        table = nucleus_measurements(labels, probability, image, pixel_size_um=mpp)
        rows = {int(k): i for i, k in enumerate(table["label"])}
        names = (("perimeter_px", "Perimeter px", ds), ("perimeter_um", "Perimeter µm", None),
                 ("equivalent_diameter_px", "Equivalent diameter px", ds),
                 ("equivalent_diameter_um", "Equivalent diameter µm", None), ("eccentricity", "Eccentricity", None),
                 ("solidity", "Solidity", None), ("mean_probability", "Nucleus probability mean", None),
                 ("mean_haematoxylin_od", "Haematoxylin OD mean", None))
        writer = GeoJSONWriter(staging / f"{stem}.geojson", self._names(), scale=ds, mpp=mpp, namespace=stem,
                               simplify=self.geojson_simplify)
        try:
            for inst in iter_label_instances(labels, class_id=1):
                i = rows[inst.label]
                writer.add(inst, {name: float(table[col][i]) * (scale or 1.0)
                                  for col, name, scale in names if col in table})
        finally:
            writer.close()
        areas = np.asarray(writer.areas_px, dtype=np.float64) * ((mpp**2) if mpp else 1.0)
        stats = {k: (float(getattr(np, k)(areas)) if areas.size else None) for k in ("mean", "median", "std", "min", "max")}
        return {"count": writer.count, "area_unit": "µm^2" if mpp else "px^2 (inference level)", "area": stats,
                "objects": "separated instances (NAME_instances.tif: marker-controlled watershed of the nucleus mask, "
                           f"objects under {self.instances.min_nucleus_area_um2:g} µm² left out)",
                "instance_mpp": float(pixel),
                "instance_mpp_source": "the image's resolution (resolution.source says where it came from)" if mpp else
                f"assumed: the training resolution {pixel:g} µm/px (the image states none; give --mpp)"}, labels

    def _write_geojson(self, target: Path, acc: SlideAccumulator, ds: float, mpp: float | None, stem: str) -> dict:
        writer = GeoJSONWriter(target, self._names(), scale=ds, mpp=mpp, namespace=stem, simplify=self.geojson_simplify)
        try:
            for inst in iter_instances(acc.mask, self._num_classes(), margin=self.instance_margin,
                                       watershed=self.watershed, min_distance=self.watershed_min_distance):
                writer.add(inst)
        finally:
            writer.close()
        areas = np.asarray(writer.areas_px, dtype=np.float64) * ((mpp**2) if mpp else 1.0)
        stats = {k: (float(getattr(np, k)(areas)) if areas.size else None) for k in ("mean", "median", "std", "min", "max")}
        return {"count": writer.count, "area_unit": "µm^2" if mpp else "px^2 (inference level)", "area": stats,
                "objects": "connected components of the class mask" + (" split by watershed" if self.watershed else "")}

    def _fit_stains(self, thumb: np.ndarray, tissue: np.ndarray | None) -> None:
        """Fix the stain normaliser's source stains for this input from its thumbnail (the whole image when it
        is small, as the preparation normalises whole images; tissue pixels of a slide's thumbnail otherwise),
        so that all windows are normalised alike and the stains are fitted once, not per window."""
        pre = getattr(self.make_inferer, "keywords", {}).get("preprocessing")
        transform = getattr(pre, "image_transform", None)
        if hasattr(transform, "fit_source") and not transform.fit_source(thumb, mask=tissue):
            logger.info("stain normalisation: too little tissue to fit the input's stains; fitting per window")

    def _scale_entry(self, acc: SlideAccumulator, mpp: float | None) -> dict:
        entry: dict[str, Any] = {
            "resolution_relative_to_training": (self.target_mpp / mpp) if (mpp and self.target_mpp) else None,
            "estimated_log_sigma": None,
            "estimated_scale_relative_to_training": None,
        }
        conf = acc.head_confidence()
        if conf is None:
            return entry
        net = unwrap(self.network)
        log_sigmas, _ = last_layer_log_sigmas(net, acc.num_heads)
        est = float(log_sigma_estimate(conf, log_sigmas.numpy()))
        entry["estimated_log_sigma"] = est
        entry["head_confidence"] = [float(v) for v in conf]
        regions = np.exp(np.asarray(getattr(self, "_window_log_scales", []), dtype=np.float64))
        if regions.size:  # the calibrated estimator of the "scale" fusion, one estimate per window run
            q = np.percentile(regions, [10, 25, 50, 75, 90])
            entry["estimated_scale_relative_to_training"] = float(q[2])
            entry["per_region"] = {
                "source": "scale fusion calibration (model.pt fusion_* buffers), one estimate per window",
                "windows": int(regions.size),
                "percentiles": {p: float(v) for p, v in zip(("p10", "p25", "median", "p75", "p90"), q)},
                "histogram": _scale_histogram(regions),
            }
        elif self.scale_reference is not None:
            entry["estimated_scale_relative_to_training"] = float(math.exp(est - float(self.scale_reference)))
        else:
            entry["note"] = ("uncalibrated: set scale_reference (log σ̂ of the test split at scale 1) to get the "
                             "estimated scale relative to training")
        return entry

    def _resampling(self, level: int, mpp: float | None) -> dict | None:
        """How the chosen level is resampled to ``target_mpp``: ``None`` when it is within ``resample_tolerance``
        of it, when the level was forced (``level``) or when a resolution is unknown."""
        if self.level is not None or not mpp or not self.target_mpp:
            return None
        zoom = float(mpp) / self.target_mpp
        if abs(zoom - 1.0) <= self.resample_tolerance:
            return None
        return {"source_level": int(level), "source_mpp": float(mpp), "zoom": zoom,
                "method": "linear at pixel centres, Gaussian pre-smoothing when shrinking, per window"}

    def _summary(self, path, reader, wsi, level, mpp, size, factor, tissue, acc, nuclei, splitter, start, names,
                 ds, resampled) -> dict:
        cell_area = (factor * mpp) ** 2 * 1e-6 if mpp else None  # mm² per thumbnail pixel
        tissue_px = int(tissue.sum())
        tissue_mm2 = tissue_px * cell_area if cell_area else None
        omega = acc.num_heads

        def dist(counts):
            if counts is None or counts.sum() == 0:
                return None
            return {f"head{k + 1}": float(v) for k, v in enumerate(counts / counts.sum())}

        return {
            "input": str(path),
            "outputs": names,
            "output_files": {n: OUTPUT_FILES[n[len(output_stem(path)) :]] for n in names},
            "size_level0": [int(v) for v in reader.get_size(wsi, 0)],
            "level": int(level),
            "size": list(size),
            "downsample": float(ds),
            "resolution": {"mpp": mpp, "target_mpp": self.target_mpp, "known": mpp is not None,
                           "resampled": resampled or False,
                           **({} if mpp else {"note": "no resolution metadata: inferred at full resolution (level 0)"})},
            "tissue": {"method": self.tissue_method, "fraction": float(tissue.mean()) if tissue.size else 0.0,
                       "area_mm2": tissue_mm2},
            "nuclei": {**nuclei, "density_per_mm2": (nuclei["count"] / tissue_mm2) if tissue_mm2 else None},
            "class_pixels": {n: int(v) for n, v in zip(self._names(), acc.class_pixels)},
            "winning_heads": {"num_heads": omega, "head_sigmas": self._head_sigmas(omega),
                              "inferred_pixels": dist(acc.winner_pixels), "object_pixels": dist(acc.winner_foreground)},
            "scale": self._scale_entry(acc, mpp),
            "patches": {"run": splitter.num_patches, "total": splitter.num_locations},
            "wall_time_s": round(time.perf_counter() - start, 3),
        }
