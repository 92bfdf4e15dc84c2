"""At which resolution an input is inferred: the pyramid level, its µm per pixel, and whether it is resampled.

- :func:`level_mpp`, :func:`implausible_resolution`, :func:`choose_level`: what a file states, whether it is
  believed (:data:`PLAUSIBLE_MPP`) and the level closest to a target resolution.
- :class:`ResolutionPolicy`: the run's settings (``target_mpp``, ``level``, ``mpp``, ``resample_tolerance``,
  ``max_resample_zoom``), checked once; :meth:`ResolutionPolicy.plan` turns one opened input into a
  :class:`ResolutionPlan`: the level, its µm per pixel and where that came from (``"file"``, ``"--mpp"`` or
  ``"none"``), the resampling to ``target_mpp`` (when the level is more than ``resample_tolerance`` off it and
  the level was not forced) and the warnings for the log and the summary. :meth:`ResolutionPlan.grid` gives the
  reader, level and µm per pixel of the grid the network then sees (a
  :class:`~.resampled_reader.ResampledLevelReader` when resampled).

The rules in words: ``bundle/docs/README.md`` (Inference, "Resolution").
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai.data.wsi_reader import BaseWSIReader

from seunet_monai.errors import ConfigValueError

from .resampled_reader import ResampledLevelReader

__all__ = [
    "PLAUSIBLE_MPP",
    "ResolutionPlan",
    "ResolutionPolicy",
    "choose_level",
    "implausible_resolution",
    "level_mpp",
    "training_mpp",
]

PLAUSIBLE_MPP = (0.05, 10.0)
"""Level-0 resolutions (µm per pixel) taken as a microscope's: from below the optical limit to a 1x scan. A file
stating one outside this range (typically a screen or print dpi: 72-600 dpi is 353-42 µm/px, or a default
pixels-per-centimetre tag) is treated as of unknown resolution (:func:`implausible_resolution`)."""


def training_mpp(metadata_file: str | os.PathLike, key: str = "training_mpp") -> float | None:
    """The resolution (µm per pixel) the model was trained at, from the bundle's ``metadata.json`` (``None``
    when the key is absent)."""
    value = json.loads(Path(metadata_file).read_text()).get(key)
    return float(value) if value else None


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
            raise ValueError(f"{reader.get_file_path(wsi)}: --level {level} requested, the file has levels 0..{n - 1}.")
        return int(level), mpp_of(int(level))
    mpps = [mpp_of(k) for k in range(n)]
    if target_mpp is None or mpps[0] is None:
        return 0, mpps[0]
    dist = [abs(math.log(m / float(target_mpp))) if m else math.inf for m in mpps]
    best = min(range(n), key=lambda k: (round(dist[k], 6), k))
    return best, mpps[best]


def _positive(value: Any, message: str) -> float | None:
    """``value`` as a finite float > 0 (``None`` stays ``None``).

    Raises:
        ConfigValueError: with ``message`` (formatted with ``value``) otherwise.
    """
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigValueError(message.format(value=value))
    return number


@dataclass
class ResolutionPlan:
    """How one input is inferred (:meth:`ResolutionPolicy.plan`).

    Attributes:
        level: the level of the file's reader that is read.
        mpp: its µm per pixel as used (``None``: unknown, inferred as stored).
        source: where ``mpp`` comes from: ``"file"``, ``"--mpp"`` or ``"none"``.
        resampled: ``None``, or ``{"source_level", "source_mpp", "zoom", "method"}`` when windows are resampled
            to ``target_mpp``.
        target_mpp: the resolution resampled to.
        warnings: sentences for the log and the summary's ``resolution.warnings``.
    """

    level: int
    mpp: float | None
    source: str
    resampled: dict | None = None
    target_mpp: float | None = None
    warnings: list[str] = field(default_factory=list)

    def grid(self, reader: BaseWSIReader) -> tuple[BaseWSIReader, int, float | None]:
        """``(reader, level, µm per pixel)`` of the grid inferred on: ``reader`` at :attr:`level` as stored, or a
        :class:`~.resampled_reader.ResampledLevelReader` of it (level 0, ``target_mpp``) when resampled."""
        if self.resampled:
            return ResampledLevelReader(reader, self.level, self.resampled["zoom"]), 0, self.target_mpp
        return reader, self.level, self.mpp


class ResolutionPolicy:
    """The run's resolution settings (see the module docstring).

    Args:
        target_mpp: resolution (µm per pixel) to infer at, > 0; picks the closest pyramid level.
        level: pyramid level to infer at (overrides ``target_mpp``; a warning when it is off ``target_mpp``).
        mpp: declared resolution (µm per pixel of level 0) of inputs whose file states none; a file stating one
            more than ``resample_tolerance`` off it is refused.
        resample_tolerance: relative difference from ``target_mpp`` beyond which windows are resampled (>= 0).
        max_resample_zoom: largest enlargement per side when resampling (>= 1); beyond it the resolution is
            treated as unknown, with a warning.

    Raises:
        ConfigValueError: for a setting out of its range (one line naming the key).
    """

    def __init__(
        self,
        target_mpp: float | None = None,
        level: int | None = None,
        mpp: float | None = None,
        resample_tolerance: float = 0.05,
        max_resample_zoom: float = 4.0,
    ) -> None:
        self.target_mpp = _positive(
            target_mpp,
            "target_mpp must be a positive resolution in µm per pixel (e.g. 0.25), got {value!r}; fix --target_mpp, "
            "or set --level to choose a pyramid level instead.",
        )
        self.mpp = _positive(
            mpp, "mpp must be a positive resolution in µm per pixel (e.g. 0.25), got {value!r}; fix --mpp."
        )
        self.level = None if level is None else int(level)
        if self.level is not None and self.level < 0:
            raise ConfigValueError(f"level must be a pyramid level >= 0 (0 is the full resolution), got {level!r}.")
        self.resample_tolerance = float(resample_tolerance)
        if not self.resample_tolerance >= 0:
            raise ConfigValueError(f"resample_tolerance must be >= 0, got {resample_tolerance!r}.")
        self.max_resample_zoom = float(max_resample_zoom)
        if not self.max_resample_zoom >= 1:
            raise ConfigValueError(f"max_resample_zoom must be >= 1, got {max_resample_zoom!r}.")

    def plan(self, name: str, reader: BaseWSIReader, wsi: Any) -> ResolutionPlan:
        """The :class:`ResolutionPlan` of the input ``name`` opened as ``wsi`` by ``reader``.

        Raises:
            ConfigValueError: when ``mpp`` contradicts the resolution the file states.
            ValueError: for a ``level`` beyond the file's levels.
        """
        level, stated = choose_level(reader, wsi, self.target_mpp, self.level)
        warnings = [w for w in (implausible_resolution(reader, wsi),) if w]
        mpp, source = self._declared(name, reader, wsi, level, stated)
        resampled = self._resampling(level, mpp)
        if resampled and resampled["zoom"] > self.max_resample_zoom:
            h, w = (round(int(v) * resampled["zoom"]) for v in reader.get_size(wsi, level))
            warnings.append(
                f"level {level} is {mpp:.4g} µm/px: resampling it to target_mpp {self.target_mpp:g} would enlarge it "
                f"{resampled['zoom']:.3g}x per side to {h} x {w} px, beyond max_resample_zoom "
                f"{self.max_resample_zoom:g}: resolution treated as unknown, inferred as stored (set --level, "
                "--target_mpp or correct the file's resolution)"
            )
            mpp, resampled, source = None, None, "none"
        elif (
            self.level is not None
            and mpp
            and self.target_mpp
            and abs(mpp / self.target_mpp - 1) > self.resample_tolerance
        ):
            ratio = mpp / self.target_mpp
            warnings.append(
                f"--level {level} is {mpp:.4g} µm/px, {max(ratio, 1 / ratio):.3g}x "
                f"{'coarser' if ratio > 1 else 'finer'} than target_mpp {self.target_mpp:g} (the resolution the model "
                f"was trained at): objects look {'smaller' if ratio > 1 else 'larger'} than in training and the "
                "results are unreliable; leave --level unset to infer at target_mpp"
            )
        return ResolutionPlan(level, mpp, source, resampled, self.target_mpp, warnings)

    def _declared(
        self, name: str, reader: BaseWSIReader, wsi: Any, level: int, mpp: float | None
    ) -> tuple[float | None, str]:
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
                    f"{name}: --mpp {self.mpp:g} contradicts the file's own resolution {stated:.4g} µm/px; --mpp "
                    "only declares the resolution of files without one: remove it, or correct the file."
                )
            return mpp, "file"
        return self.mpp * float(reader.get_downsample_ratio(wsi, level)), "--mpp"

    def _resampling(self, level: int, mpp: float | None) -> dict | None:
        """How ``level`` is resampled to ``target_mpp``: ``None`` when it is within ``resample_tolerance`` of it,
        when the level was forced (``level``) or when a resolution is unknown."""
        if self.level is not None or not mpp or not self.target_mpp:
            return None
        zoom = float(mpp) / self.target_mpp
        if abs(zoom - 1.0) <= self.resample_tolerance:
            return None
        return {
            "source_level": int(level),
            "source_mpp": float(mpp),
            "zoom": zoom,
            "method": "linear at pixel centres, Gaussian pre-smoothing when shrinking, per window",
        }
