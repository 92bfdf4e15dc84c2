"""The windows of one slide level, filtered by tissue before they are read: a MONAI ``WSISlidingWindowSplitter``.

:class:`TissueWSISplitter` yields ``(patch (1, 3, ph, pw), location)`` for :class:`monai.inferers.PatchInferer`,
in row-major order of the top-left corners (pixels of ``level``), on MONAI's grid (``iter_patch_position`` over the
input padded at its end to whole steps, as ``WSISlidingWindowSplitter`` pads). It differs from MONAI's splitter in
three ways: ``location_filter(location)`` decides *before* a patch is read (MONAI reads every patch, then calls
``filter_fn(patch, location)``); the slide is opened once and kept (or handed over already open,
:meth:`TissueWSISplitter.set_slide`); and a progress bar counts the patches that run. Padding beyond the image is
the reader's: the readers of this package pad with white.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from monai.data.utils import iter_patch_position
from monai.inferers import WSISlidingWindowSplitter
from monai.utils import ensure_tuple_rep
from tqdm.auto import tqdm

from seunet_monai.runtime.checks import as_flag

__all__ = ["TissueWSISplitter", "window_parameters"]


def window_parameters(
    patch_size: Sequence[int] | int, overlap: Sequence[float] | float | Sequence[int] | int, spatial_dims: int
) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    """Per-axis ``(patch_size, overlap)`` of a sliding-window splitter, as MONAI's ``SlidingWindowSplitter`` reads
    its arguments (a scalar applies to every axis; no overlap along an axis whose patch size is 0, the whole axis).

    MONAI computes these in a private method of the splitter; this is the same rule, so that the workflow (tissue
    filter, blending border) and the splitter agree on the windows without calling into MONAI's private members.

    Raises:
        ValueError: when the overlap is larger than the patch along an axis.
    """
    patch = tuple(int(p) for p in ensure_tuple_rep(patch_size, spatial_dims))
    over = ensure_tuple_rep(overlap, spatial_dims)
    over = tuple(o if p else type(over[0])(0) for o, p in zip(over, patch))
    if any(o > p for o, p in zip(over, patch)):
        raise ValueError(f"`overlap` ({over}) cannot be larger than patch size ({patch}).")
    return patch, over


class TissueWSISplitter(WSISlidingWindowSplitter):
    """Sliding-window splitter over one level of a slide that skips non-tissue locations before reading.

    Args:
        patch_size: patch size in pixels of ``level``.
        overlap: relative (float in [0, 1)) or absolute (int) overlap of neighbouring patches.
        reader: a MONAI ``BaseWSIReader`` instance whose ``level`` is ``level`` (it must pad out-of-image
            regions: the readers of this package pad with white).
        level: the pyramid level the patches are read from.
        location_filter: ``f(location) -> bool`` on the top-left corner (pixels of ``level``); ``None`` keeps all.
        progress: show a progress bar (tqdm) over the patches that run.
        device: where patches are put (default: CPU).

    Attributes:
        num_locations: windows of the grid at the last :meth:`locations` (every location).
        num_patches: windows kept by ``location_filter`` (those that run).
    """

    def __init__(
        self,
        patch_size: Sequence[int] | int,
        overlap: float | Sequence[float] = 0.25,
        reader: Any = None,
        level: int = 0,
        location_filter: Callable[[Sequence[int]], bool] | None = None,
        progress: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        with warnings.catch_warnings():  # MONAI warns that non-cuCIM/OpenSlide backends read whole levels;
            warnings.simplefilter("ignore")  # the readers used here read regions.
            super().__init__(
                patch_size, overlap=overlap, pad_mode="constant", device=device, reader=reader, level=level
            )
        self.level = int(level)
        self.location_filter = location_filter
        self.progress = as_flag(progress, "progress")
        self.slide: tuple[str, Any] | None = None
        self.num_locations = 0
        self.num_patches = 0

    def set_slide(self, inputs: Any, wsi: Any) -> None:
        """Use ``wsi``, the slide at ``inputs`` already opened by the reader, instead of reading the file again."""
        self.slide = (str(inputs), wsi)

    def open(self, inputs: Any) -> Any:
        """The opened slide at ``inputs`` (read once, then kept)."""
        if self.slide is None or self.slide[0] != str(inputs):
            self.slide = (str(inputs), self.reader.read(inputs))
        return self.slide[1]

    def get_input_shape(self, inputs: Any) -> tuple:
        return tuple(self.reader.get_size(self.open(inputs), self.level))

    def window(self, spatial_dims: int = 2) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        """Per-axis ``(patch_size, overlap)`` (:func:`window_parameters`)."""
        return window_parameters(self.patch_size, self.overlap, spatial_dims)

    def locations(self, inputs: Any) -> list[tuple[int, ...]]:
        """Top-left corners (pixels of ``level``) of the patches that will run, in row-major order."""
        padded = tuple(int(s) for s in self.get_padded_shape(inputs))
        patch_size, overlap = self.window(len(padded))
        every = list(iter_patch_position(padded, patch_size, (0,) * len(padded), overlap, False))
        self.num_locations = len(every)
        keep = [
            tuple(int(v) for v in loc) for loc in every if self.location_filter is None or self.location_filter(loc)
        ]
        self.num_patches = len(keep)
        return keep

    def __call__(self, inputs: Any) -> Iterable[tuple[torch.Tensor, Sequence[int]]]:
        """Yield ``(patch (1, 3, ph, pw) uint8, location)`` for every kept location of the slide at ``inputs``."""
        if not isinstance(inputs, (str, bytes)) and isinstance(inputs, Sequence):
            inputs = inputs[0]
        wsi = self.open(inputs)
        ratio = self.reader.get_downsample_ratio(wsi, self.level)
        patch_size = self.window(len(self.get_input_shape(inputs)))[0]
        locations = self.locations(inputs)
        bar = tqdm(locations, desc="patches", unit="patch", disable=not self.progress, leave=False, mininterval=2.0)
        for location in bar:
            location_0 = tuple(round(v * ratio) for v in location)  # MONAI readers take level-0 locations
            patch, _ = self.reader.get_data(wsi=wsi, location=location_0, size=patch_size, level=self.level)
            yield torch.as_tensor(patch[None], device=self.device), location
