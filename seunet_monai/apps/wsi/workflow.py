"""``run inferring``: segment every image and slide of a folder, one slide at a time, in bounded memory.

Per input ``NAME`` the outputs are ``NAME_mask.tif``, ``NAME.geojson``, ``NAME_overlay.png``,
``NAME_summary.json`` and, for ordinary images of at most ``png_max_pixels``, ``NAME.png``. They are written
into a staging folder ``output_dir/.NAME.partial/`` and renamed into place at the end, the summary last, so an
interrupted slide leaves no partial output. Re-running continues: a slide whose summary (and other outputs)
exist is skipped (``--overwrite true`` redoes it); outputs present without their summary, that no interrupted
run of ours left, are refused unless ``--overwrite true``. An output folder equal to the input folder, or an
output path that is an input file, is refused whatever ``overwrite`` says.
"""

from __future__ import annotations

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

from .accumulator import RawMask, SlideAccumulator
from seunet_monai.errors import ConfigValueError, ExistingPathError, MissingPathError, SeunetError, as_flag
from seunet_monai.networks.utils import unwrap

from .inferers import HeadsPatchPredictor
from .instances import iter_instances
from .readers import (
    IMAGE_SUFFIXES,
    SUPPORTED_SUFFIXES,
    ResampledLevelReader,
    choose_level,
    make_reader,
    read_thumbnail,
)
from .tissue import TissueLocationFilter, detect_tissue
from .writers import GeoJSONWriter, write_mask_tiff, write_overlay, write_palette_png

__all__ = ["SlideInferenceWorkflow", "list_inputs", "output_names", "patch_stain_transform", "training_mpp"]

logger = logging.getLogger(__name__)

PARTIAL_MARKER = ".seunet_partial"


def training_mpp(metadata_file: str | os.PathLike, key: str = "training_mpp") -> float | None:
    """The resolution (µm per pixel) the model was trained at, from the bundle's ``metadata.json`` (``None``
    when the key is absent)."""
    value = json.loads(Path(metadata_file).read_text()).get(key)
    return float(value) if value else None


def patch_stain_transform(stain_norm: str, stain_reference: str | os.PathLike) -> Callable | None:
    """The per-patch stain normaliser of inference, or ``None`` (:func:`seunet_monai.data.stain.stain_transform`
    on channel-first patches)."""
    from seunet_monai.data.stain import stain_transform

    return stain_transform(stain_norm, stain_reference, channel_dim=0)


class InferenceError(SeunetError, RuntimeError):
    """Some inputs could not be segmented (the others were); the message names them."""


def _scale_histogram(scales: np.ndarray) -> dict[str, int]:
    """Counts of per-window scale estimates in octave-quarter bins ``2^(k/4)`` (the sweep's scales)."""
    k = np.rint(4.0 * np.log2(scales)).astype(int)
    return {f"{2.0 ** (v / 4.0):.3g}": int((k == v).sum()) for v in sorted(set(k.tolist()))}


def output_names(stem: str, with_png: bool) -> list[str]:
    """File names written for input ``stem``; the summary comes last (it marks a finished slide)."""
    names = [f"{stem}_mask.tif", f"{stem}.geojson", f"{stem}_overlay.png"]
    return names + ([f"{stem}.png"] if with_png else []) + [f"{stem}_summary.json"]


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
        target_mpp: resolution (µm per pixel) to infer at; picks the closest pyramid level.
        level: pyramid level to infer at (overrides ``target_mpp``).
        tissue_mask: ``"otsu"`` or ``"none"``.
        slide_backend: ``"tifffile"`` (default), ``"cucim"`` or ``"openslide"`` for TIFF/SVS files.
        overwrite: redo slides whose outputs exist, replacing them.
        watershed: split touching nuclei in the GeoJSON.
        watershed_min_distance: watershed marker spacing (pixels of the inference level).
        instance_margin: rows read below each band of the mask at once when listing instances (objects that
            reach further are followed until whole: :func:`~.instances.iter_instances`).
        class_names: name per class (default ``background``, ``Nucleus`` for two classes).
        thumbnail_size: longer side of the overview thumbnail (tissue detection, overlay).
        png_max_pixels: largest ordinary image that also gets ``NAME.png``.
        resample_tolerance: when the chosen level's µm per pixel differs from ``target_mpp`` by more than this
            relative amount (default 5%), windows are resampled to exactly ``target_mpp``
            (:class:`~.readers.ResampledLevelReader`; ``resolution.resampled`` in the summary). A forced
            ``level`` is never resampled.
        scale_reference: ``log σ̂`` at the training scale (confidence-weighted last-layer ``log σ``); when given
            the summary has the estimated scale relative to training, else that entry is ``None``.
        amp: mixed precision on CUDA.
        progress: progress bars over slides and patches.
    """

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
        instance_margin: int = 128,
        class_names: Sequence[str] | None = None,
        thumbnail_size: int = 1024,
        png_max_pixels: int = 64_000_000,
        resample_tolerance: float = 0.05,
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
        self.target_mpp = float(target_mpp) if target_mpp else None
        self.level = None if level is None else int(level)
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
        self.scale_reference = scale_reference
        self.amp = as_flag(amp, "amp")
        self.progress = as_flag(progress, "progress")

    # ------------------------------------------------------------------ checks before any work
    def _check_paths(self, inputs: list[Path]) -> None:
        """Refuse an output folder equal to the input folder, or an output path that is an input file."""
        if self.output_dir.exists() and self.output_dir.resolve() == self.input_dir.resolve():
            raise ConfigValueError(
                f"output_dir {str(self.output_dir)!r} is the input folder; outputs are never written among the "
                "inputs (whatever --overwrite says): choose another --output_dir."
            )
        real_inputs = {p.resolve() for p in inputs}
        for p in inputs:
            for name in output_names(p.stem, True):
                target = self.output_dir / name
                same = target.exists() and any(os.path.samefile(target, q) for q in inputs)
                if same or target.resolve() in real_inputs:
                    raise ConfigValueError(
                        f"output {str(target)!r} is an input file; outputs never replace inputs (whatever "
                        "--overwrite says): choose another --output_dir."
                    )

    def _status(self, path: Path) -> str:
        """``"todo"``, ``"done"`` (all outputs present) or ``"interrupted"`` (our staging folder is there)."""
        staging = self.output_dir / f".{path.stem}.partial"
        if (staging / PARTIAL_MARKER).is_file():
            return "interrupted"
        names = output_names(path.stem, True)
        present = [n for n in names if (self.output_dir / n).exists()]
        if all((self.output_dir / n).exists() for n in output_names(path.stem, False)):
            return "done"
        if present and not self.overwrite:
            raise ExistingPathError(
                f"output {str(self.output_dir / present[0])!r} exists but the outputs of {path.name} are not those "
                f"of a finished run (incomplete, or not ours); pass --overwrite true to replace them, or choose "
                "another --output_dir."
            )
        return "todo"

    def _load_weights(self) -> None:
        if self.checkpoint is None:
            return
        from seunet_monai.checkpoint import check_state_dict, load_network

        check_state_dict(self.network, self.checkpoint)
        load_network(self.network, self.checkpoint)

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, list[str]]:
        """Segment every input; returns ``{"done", "skipped", "failed", "unsupported"}`` lists of file names.

        Raises:
            RuntimeError: at the end, when some inputs failed (each is named in the log and the message).
        """
        from tqdm.auto import tqdm

        inputs, unsupported = list_inputs(self.input_dir)
        for p in unsupported:
            logger.warning(f"{p.name}: unsupported file type {p.suffix or '(none)'!r}, skipped "
                           f"(supported: {', '.join(SUPPORTED_SUFFIXES)}).")
        if not inputs:
            raise ConfigValueError(f"input_dir {str(self.input_dir)!r} holds no image ({', '.join(SUPPORTED_SUFFIXES)}).")
        stems: dict[str, Path] = {}
        for p in inputs:
            if p.stem in stems:
                raise ConfigValueError(f"inputs {stems[p.stem].name!r} and {p.name!r} would write the same outputs ({p.stem}_*).")
            stems[p.stem] = p
        self._check_paths(inputs)
        status = {p: ("todo" if self.overwrite else self._status(p)) for p in inputs}
        self._load_weights()
        self.network.eval()
        self.output_dir.mkdir(parents=True, exist_ok=True)
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
        staging = self.output_dir / f".{path.stem}.partial"
        if staging.exists():
            if not (staging / PARTIAL_MARKER).is_file():
                raise ExistingPathError(f"{staging} exists and was not written by this workflow; remove or rename it.")
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        (staging / PARTIAL_MARKER).write_text("staging folder of an unfinished slide; safe to delete\n")
        return staging

    def _discard(self, path: Path) -> None:
        staging = self.output_dir / f".{path.stem}.partial"
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
        resampled = self._resampling(level, mpp)
        base, base_level, base_mpp = reader, level, mpp
        if resampled:  # the nearest level is off the target: windows are resampled to exactly target_mpp
            reader, level, mpp = ResampledLevelReader(base, base_level, resampled["zoom"]), 0, self.target_mpp
        size = tuple(int(v) for v in reader.get_size(wsi, level))
        thumb, factor = read_thumbnail(reader, wsi, level, self.thumbnail_size)
        tissue = detect_tissue(thumb, self.tissue_method)
        self._fit_stains(thumb, None if factor == 1 else tissue)
        acc = SlideAccumulator(RawMask(staging / "mask.raw", size), self._num_classes(), factor)
        splitter = self.make_splitter(reader=reader, level=level)
        splitter._opened = (str(path), wsi)  # the slide is open already
        if self.tissue_method != "none":
            roi = splitter._get_valid_shape_parameters(size)[0]
            splitter.location_filter = TissueLocationFilter(tissue, factor, roi)
        inferer = self.make_inferer(splitter=splitter, sink=acc)
        predictor = HeadsPatchPredictor(self.network, amp=self.amp)
        inferer(str(path), predictor)
        self._window_log_scales = predictor.window_log_scales
        small = path.suffix.lower() in IMAGE_SUFFIXES or (base.get_level_count(wsi) == 1 and size[0] * size[1] <= self.png_max_pixels)
        names = output_names(path.stem, small)
        ds = reader.downsample_to_base(wsi) if resampled else float(reader.get_downsample_ratio(wsi, level))
        write_mask_tiff(staging / names[0], acc.mask, mpp=mpp, pyramid=max(size) > 2048)
        nuclei = self._write_geojson(staging / names[1], acc, ds, mpp, path.stem)
        write_overlay(staging / names[2], thumb, tissue, acc.foreground_fraction(), acc.winner_map(),
                      self._head_sigmas(acc.num_heads), title=path.name)
        if small:
            write_palette_png(staging / names[3], acc.mask.read_rows(0, size[0]), self._num_classes())
        summary = self._summary(path, base, wsi, base_level, mpp, size, factor, tissue, acc, nuclei, splitter, start,
                                names, ds, resampled)
        with open(staging / names[-1], "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
        (staging / "mask.raw").unlink()
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
        from seunet_monai.evaluation.scale_estimation import last_layer_log_sigmas

        if num_heads == 0:
            return None
        net = unwrap(self.network)
        log_sigmas, source = last_layer_log_sigmas(net, num_heads)
        return None if source == "head index" else [float(v) for v in log_sigmas.exp()]

    def _write_geojson(self, target: Path, acc: SlideAccumulator, ds: float, mpp: float | None, stem: str) -> dict:
        writer = GeoJSONWriter(target, self._names(), scale=ds, mpp=mpp, namespace=stem)
        try:
            for inst in iter_instances(acc.mask, self._num_classes(), margin=self.instance_margin,
                                       watershed=self.watershed, min_distance=self.watershed_min_distance):
                writer.add(inst)
        finally:
            writer.close()
        areas = np.asarray(writer.areas_px, dtype=np.float64) * ((mpp**2) if mpp else 1.0)
        stats = {k: (float(getattr(np, k)(areas)) if areas.size else None) for k in ("mean", "median", "std", "min", "max")}
        return {"count": writer.count, "area_unit": "µm^2" if mpp else "px^2 (inference level)", "area": stats}

    def _fit_stains(self, thumb: np.ndarray, tissue: np.ndarray | None) -> None:
        """Fix the stain normaliser's source stains for this input from its thumbnail (the whole image when it
        is small, as the preparation normalises whole images; tissue pixels of a slide's thumbnail otherwise),
        so that all windows are normalised alike and the stains are fitted once, not per window."""
        pre = getattr(self.make_inferer, "keywords", {}).get("preprocessing")
        transform = getattr(pre, "image_transform", None)
        if hasattr(transform, "fit_source") and not transform.fit_source(thumb, mask=tissue):
            logger.info("stain normalisation: too little tissue to fit the input's stains; fitting per window")

    def _scale_entry(self, acc: SlideAccumulator, mpp: float | None) -> dict:
        from seunet_monai.evaluation.scale_estimation import last_layer_log_sigmas, log_sigma_estimate

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
