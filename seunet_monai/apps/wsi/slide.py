"""One input after its windows have run: everything its outputs, figures and summary are made from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from monai.data.wsi_reader import BaseWSIReader

from .accumulator import SlideAccumulator
from .readers import read_region
from .resolution import ResolutionPlan
from .splitter import TissueWSISplitter

__all__ = ["InferredSlide"]


@dataclass
class InferredSlide:
    """An inferred input (built by :meth:`~seunet_monai.apps.wsi.workflow.SlideInferenceWorkflow.infer_one`).

    Attributes:
        path: the input file.
        wsi: the opened file (of ``base_reader``).
        base_reader: the file's reader.
        plan: the resolution it was inferred at (level of ``base_reader``, resampling, warnings).
        reader: the reader of the inference grid (``base_reader``, or a resampled level of it).
        level: the level of ``reader`` inferred.
        mpp: µm per pixel of the inference grid (``None``: unknown).
        size: ``(H, W)`` of the inference grid.
        downsample: level-0 pixels of the file per pixel of the inference grid.
        image: an ordinary image (``NAME_mask.png``, full-resolution overlay), not a slide.
        instances: its nuclei are separated into instances (an image or a slide segmented by a 2-class nucleus
            model).
        thumbnail: ``(h, w, 3) uint8`` overview of the grid, ``factor`` pixels per thumbnail pixel.
        factor: grid pixels per thumbnail pixel.
        tissue: boolean tissue mask ``(h, w)`` at thumbnail resolution.
        detector: how the tissue was detected (``tissue_mask``, or the brightness fallback).
        accumulator: the class-id mask and the per-region statistics.
        splitter: the windows (``locations``, ``num_patches`` run of ``num_locations``).
        patch_size: window size per axis.
        window_log_scales: ``log ŝ`` of every window run (empty without a scale-fusion calibration).
    """

    path: Path
    wsi: Any
    base_reader: BaseWSIReader
    plan: ResolutionPlan
    reader: BaseWSIReader
    level: int
    mpp: float | None
    size: tuple[int, int]
    downsample: float
    image: bool
    instances: bool
    thumbnail: np.ndarray
    factor: int
    tissue: np.ndarray
    detector: str
    accumulator: SlideAccumulator
    splitter: TissueWSISplitter
    patch_size: tuple[int, ...]
    window_log_scales: list[float]

    def read_region(self, location: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        """The ``(h, w, 3) uint8`` region of the inference grid at ``location`` of ``size``."""
        return read_region(self.reader, self.wsi, location, size, self.level)
