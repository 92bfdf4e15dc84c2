"""``run inferring``: segment every image and slide of a folder, one input at a time, in bounded memory.

:class:`SlideInferenceWorkflow` is the loop over the inputs of ``input_dir``; per input it runs the windows
(:func:`~.pipeline.infer_input`: the file, its resolution, its tissue, the windows that touch it) and writes the
outputs (:mod:`~.outputs`: names and staging; :mod:`~.objects`, :mod:`~.figures`, :mod:`~.summary`). Its settings
are checked by :mod:`~.settings`.

Contract of a run:

- outputs of an input appear whole or not at all: they are staged in ``output_dir/.NAME.partial/`` and renamed
  into place at the end, the summary last;
- re-running continues: an input whose outputs are finished is skipped (``--overwrite true`` redoes it);
  outputs present without their summary, that no interrupted run of ours left, are refused unless
  ``--overwrite true``; finished outputs whose recorded provenance (:mod:`~.provenance`) differs from this run's
  are refused, naming the differences, unless ``--overwrite true``;
- outputs never land among the inputs nor replace one, and two inputs never write the same name (whatever
  ``--overwrite`` says);
- the output folder is locked for the run (:func:`seunet_monai.runtime.run_lock.lock_run_folders`): a second
  run into it is refused at once, naming the first one's pid;
- an input that cannot be segmented is named in the log and gets no output; the others are done, then the run
  fails naming every failed input.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from seunet_monai.checkpoint import check_state_dict, load_network
from seunet_monai.errors import ConfigValueError, ExistingPathError, InferenceError
from seunet_monai.runtime.checks import as_flag
from seunet_monai.runtime.distributed import unwrap
from seunet_monai.runtime.run_lock import lock_run_folders
from seunet_monai.transforms.instances import NucleusInstances

from .figures import write_figures
from .inferers import SlideInferer
from .objects import write_components, write_nuclei
from .outputs import (
    PARTIAL_MARKER,
    check_output_paths,
    commit_staging,
    discard_staging,
    list_inputs,
    make_staging,
    output_names,
    output_stem,
    staging_folder,
)
from .pipeline import infer_input
from .provenance import check_recorded, input_file_record, read_recorded, run_record
from .readers import SUPPORTED_SUFFIXES
from .resolution import ResolutionPolicy
from .settings import check_geojson_simplify, check_separation, class_names_for, warn_deprecated
from .summary import head_sigmas, slide_summary
from .writers import write_mask_tiff, write_palette_png

__all__ = ["SlideInferenceWorkflow"]

logger = logging.getLogger(__name__)


class SlideInferenceWorkflow:
    """Segment the images and slides of ``input_dir`` into ``output_dir`` (see the module docstring).

    Args:
        input_dir: folder of ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff`` (plain, tiled, pyramidal, OME) and
            ``.svs`` files; other files are named and skipped.
        output_dir: folder of the outputs (created).
        network: the segmentation network (SEUNet or any network returning class logits).
        inferer: the windows and their per-window image transform (:class:`~.inferers.SlideInferer`).
        checkpoint: weights loaded into ``network`` first (``None``: keep the network's weights).
        target_mpp: resolution (µm per pixel) to infer at, > 0; picks the closest pyramid level.
        level: pyramid level to infer at (overrides ``target_mpp``; a warning when it is off ``target_mpp``).
        tissue_mask: ``"otsu"`` or ``"none"``.
        slide_backend: ``"tifffile"`` (default), ``"cucim"`` or ``"openslide"`` for TIFF/SVS files.
        overwrite: redo slides whose outputs exist, replacing them.
        watershed: deprecated, ignored (a warning when true): the nuclei of images and slides are separated by
            :class:`~seunet_monai.transforms.instances.NucleusInstances` (``marker_h_um``, ``min_nucleus_area_um2``).
        watershed_min_distance: deprecated, ignored (a warning when set), as ``watershed``.
        separation: the network's separation map, ``"boundary"`` or ``"centre"``
            (:mod:`seunet_monai.transforms.separation`): a network with ``aux_channels`` predicts it, and its fused
            map guides the separation of touching nuclei; ``None`` (default) for a network without one.
        mpp: declared resolution (µm per pixel of level 0) of inputs whose file states none (e.g. MoNuSeg's
            TIFFs, PNGs); used as a file's own. An input whose file states a resolution more than
            ``resample_tolerance`` off ``mpp`` fails with one line naming both (the file's tags are never
            silently overridden). ``None``: inputs without a resolution are inferred as stored, with the
            training resolution ``target_mpp`` (else :data:`~.objects.ASSUMED_MPP`) assumed for the sizes of the
            instance post-processing only (areas then in px², no density; the summary's ``resolution.source`` is
            ``"none"`` and ``nuclei.instance_mpp_source`` says what was assumed).
        geojson_simplify: tolerance (pixels of the inference level) of the polygon simplification in the GeoJSON;
            0 = exact pixel outlines.
        min_nucleus_area_um2: nuclei smaller than this (µm²) are not exported.
        marker_h_um: drop of the distance to the background (µm) that separates two nuclei.
        instance_margin: models of other classes: rows read below each band of the mask at once when listing its
            connected components (objects that reach further are followed until whole:
            :func:`~.instances.iter_instances`).
        class_names: name per class (default ``background``, ``Nucleus`` for two classes).
        thumbnail_size: longer side of the overview thumbnail (tissue detection, overlay).
        png_max_pixels: largest single-level image treated as an image (``NAME_mask.png``, full-resolution overlay).
        resample_tolerance: when the chosen level's µm per pixel differs from ``target_mpp`` by more than this
            relative amount (default 5%), windows are resampled to exactly ``target_mpp``
            (:class:`~.resampled_reader.ResampledLevelReader`; ``resolution.resampled`` in the summary). A forced
            ``level`` is never resampled.
        max_resample_zoom: largest enlargement (per side) of the chosen level when resampling to ``target_mpp``
            (default 4: the resampled image at most 16 times the stored pixels). Beyond it (e.g. 144-dpi tags
            read as 176 µm/px) the resolution is treated as unknown, with a warning, and the level used as stored.
        bundle_version: the bundle's version, recorded in each summary's ``provenance``.
        scale_reference: deprecated, ignored (a warning when set): the summary's estimated scale is the calibrated
            one of the ``scale`` fusion (``None`` for a network without a calibration: ``run calibrating``).
        amp: mixed precision on CUDA.
        progress: progress bar over the inputs (the windows' bar is the inferer's).

    Raises:
        ConfigValueError: for a setting out of its range (one line naming the key), or a ``separation`` that does
            not match the network (a map predicted and not named, or named and not predicted).
    """

    COMPARED = ("model_sha256", "fusion", "stain_normalisation", "settings", "input_file")
    """Provenance entries that must match for finished outputs to count as this run's (``provenance`` in the
    summary also records the model's path and the bundle version, which may differ)."""

    def __init__(
        self,
        input_dir: str | os.PathLike,
        output_dir: str | os.PathLike,
        network: torch.nn.Module,
        inferer: SlideInferer,
        checkpoint: str | os.PathLike | None = None,
        target_mpp: float | None = None,
        level: int | None = None,
        tissue_mask: str = "otsu",
        slide_backend: str = "tifffile",
        overwrite: bool = False,
        watershed: bool = False,
        watershed_min_distance: int | None = None,
        separation: str | None = None,
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
        self.inferer = inferer
        self.checkpoint = checkpoint
        self.resolution = ResolutionPolicy(target_mpp, level, mpp, resample_tolerance, max_resample_zoom)
        self.geojson_simplify = check_geojson_simplify(geojson_simplify)
        self.instances = NucleusInstances(min_nucleus_area_um2=min_nucleus_area_um2, marker_h_um=marker_h_um)
        self.tissue_method = str(tissue_mask)
        self.slide_backend = slide_backend
        self.overwrite = as_flag(overwrite, "overwrite")
        warn_deprecated(watershed, watershed_min_distance, scale_reference)
        self.instance_margin = int(instance_margin)
        self.thumbnail_size = int(thumbnail_size)
        self.png_max_pixels = int(png_max_pixels)
        self.bundle_version = bundle_version
        self.amp = as_flag(amp, "amp")
        self.progress = as_flag(progress, "progress")
        self.num_classes = int(getattr(unwrap(network), "out_channels", None) or len(class_names or []) or 2)
        self.separation = check_separation(network, separation)
        self.class_names = class_names_for(self.num_classes, class_names)
        self._settings: dict[str, Any] | None = None

    @property
    def target_mpp(self) -> float | None:
        """The resolution (µm per pixel) inputs are inferred at (:class:`~.resolution.ResolutionPolicy`)."""
        return self.resolution.target_mpp

    # ------------------------------------------------------------------ finished outputs and what made them
    def _status(self, path: Path) -> str:
        """``"todo"``, ``"done"`` (all outputs present) or ``"interrupted"`` (our staging folder is there)."""
        stem = output_stem(path)
        if (staging_folder(self.output_dir, path) / PARTIAL_MARKER).is_file():
            return "interrupted"
        present = [n for n in output_names(stem) if (self.output_dir / n).exists()]
        nucleus_model = self.num_classes == 2
        if any(
            all((self.output_dir / n).exists() for n in output_names(stem, image, nucleus_model))
            for image in (True, False)
        ):
            recorded = read_recorded(self.output_dir / output_names(stem, False)[-1])
            check_recorded(path.name, self.output_dir, recorded, self._provenance(path), self.COMPARED)
            return "done"
        if present and not self.overwrite:
            raise ExistingPathError(
                f"output {str(self.output_dir / present[0])!r} exists but the outputs of {path.name} are not those "
                f"of a finished run (incomplete, or not ours); pass --overwrite true to replace them, or choose "
                "another --output_dir."
            )
        return "todo"

    def _run_settings(self) -> dict[str, Any]:
        """The input-independent part of the provenance (computed once per run, as read back from a summary)."""
        if self._settings is None:
            res = self.resolution
            settings = {
                "target_mpp": res.target_mpp,
                "level": res.level,
                "resample_tolerance": res.resample_tolerance,
                "max_resample_zoom": res.max_resample_zoom,
                "tissue_mask": self.tissue_method,
                "roi_size": self.inferer.roi_size,
                "overlap": self.inferer.overlap,
                "separation": self.separation,
                "mpp": res.mpp,
                "geojson_simplify": self.geojson_simplify,
                "min_nucleus_area_um2": self.instances.min_nucleus_area_um2,
                "marker_h_um": self.instances.marker_h_um,
                "class_names": self.class_names,
            }
            self._settings = run_record(
                self.network, self.checkpoint, self.bundle_version, self.inferer.image_transform, settings
            )
        return self._settings

    def _provenance(self, path: Path) -> dict[str, Any]:
        """What makes the outputs of ``path``: :meth:`_run_settings` and the input file's size and mtime."""
        return {**self._run_settings(), "input_file": input_file_record(path)}

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, list[str]]:
        """Segment every input; returns ``{"done", "skipped", "failed", "unsupported"}`` lists of file names.

        Raises:
            InferenceError: at the end, when some inputs failed (each is named in the log and the message).
        """
        inputs, unsupported = list_inputs(self.input_dir)
        for p in unsupported:
            logger.warning(
                f"{p.name}: unsupported file type {p.suffix or '(none)'!r}, skipped "
                f"(supported: {', '.join(SUPPORTED_SUFFIXES)})."
            )
        if not inputs:
            raise ConfigValueError(
                f"input_dir {str(self.input_dir)!r} holds no image ({', '.join(SUPPORTED_SUFFIXES)})."
            )
        check_output_paths(inputs, self.input_dir, self.output_dir)
        lock = lock_run_folders([self.output_dir], clash="mix their outputs", keys="--output_dir")
        try:
            return self._run(inputs, unsupported)
        finally:
            lock.release()

    def _run(self, inputs: list[Path], unsupported: list[Path]) -> dict[str, list[str]]:
        status = {p: ("todo" if self.overwrite else self._status(p)) for p in inputs}
        if self.checkpoint is not None:
            check_state_dict(self.network, self.checkpoint)
            load_network(self.network, self.checkpoint)
        self.network.eval()
        stain = self._run_settings()["stain_normalisation"]
        reference = f" to the reference {stain['reference']}" if stain.get("reference") else ""
        logger.info(f"stain normalisation: {stain['method']}{reference}")
        report: dict[str, list[str]] = {
            "done": [],
            "skipped": [],
            "failed": [],
            "unsupported": [p.name for p in unsupported],
        }
        for p in tqdm(inputs, desc="slides", unit="slide", disable=not self.progress):
            if status[p] == "done":
                logger.info(f"{p.name}: outputs present from a finished run, skipped (--overwrite true redoes it).")
                report["skipped"].append(p.name)
                continue
            try:
                line = self.infer_one(p)
            except (ValueError, OSError, RuntimeError) as e:
                logger.error(f"{p.name}: failed, no output written: {type(e).__name__}: {e}")
                discard_staging(self.output_dir, p)
                report["failed"].append(p.name)
                continue
            logger.info(line)
            report["done"].append(p.name)
        logger.info(
            f"inference: {len(report['done'])} done, {len(report['skipped'])} skipped (finished before), "
            f"{len(report['failed'])} failed, {len(unsupported)} unsupported -> {self.output_dir}"
        )
        if report["failed"]:
            raise InferenceError(
                f"{len(report['failed'])} input(s) could not be segmented: {', '.join(report['failed'])} "
                "(see the log above for each reason)."
            )
        return report

    # ------------------------------------------------------------------ one input
    def infer_one(self, path: Path) -> str:
        """Segment one image or slide and write its outputs; returns the log line."""
        start = time.perf_counter()
        staging = make_staging(self.output_dir, path)
        slide = infer_input(
            path,
            staging,
            self.network,
            self.inferer,
            self.resolution,
            self.num_classes,
            slide_backend=self.slide_backend,
            tissue_mask=self.tissue_method,
            thumbnail_size=self.thumbnail_size,
            png_max_pixels=self.png_max_pixels,
            amp=self.amp,
        )
        acc, size = slide.accumulator, slide.size
        stem = output_stem(path)
        names = output_names(stem, slide.image, slide.instances)
        write_mask_tiff(staging / f"{stem}_mask.tif", acc.mask, mpp=slide.mpp, pyramid=max(size) > 2048)
        labels = None
        if slide.instances:
            nuclei, labels = write_nuclei(
                staging,
                stem,
                slide,
                self.instances,
                self.class_names,
                self.geojson_simplify,
                self.target_mpp,
                separation=self.separation,
            )
        else:
            nuclei = write_components(
                staging / f"{stem}.geojson",
                stem,
                slide,
                self.num_classes,
                self.class_names,
                self.geojson_simplify,
                self.instance_margin,
            )
        regions = write_figures(
            staging, stem, slide, self.num_classes, head_sigmas(self.network, acc.num_heads), labels
        )
        if slide.image:
            write_palette_png(staging / f"{stem}_mask.png", acc.mask.read_rows(0, size[0]), self.num_classes)
        summary = slide_summary(
            slide,
            names,
            nuclei,
            regions,
            self.network,
            self.class_names,
            self.tissue_method,
            self.target_mpp,
            self._provenance(path),
            start,
        )
        with open(staging / names[-1], "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        for raw in (acc.mask, acc.probability, acc.separation, labels):
            if raw is not None:
                raw.path.unlink()
        commit_staging(staging, self.output_dir, names)
        res = f"{slide.mpp:.3f} µm/px" if slide.mpp else "resolution unknown"
        if slide.plan.resampled:
            res += f", resampled from {slide.plan.mpp:.3f}"
        return (
            f"{path.name}: level {slide.level} ({res}), {slide.splitter.num_patches}/"
            f"{slide.splitter.num_locations} patches, {nuclei['count']} objects, tissue "
            f"{summary['tissue']['fraction']:.1%}, {summary['wall_time_s']:.1f} s -> {self.output_dir / names[0]}"
        )
