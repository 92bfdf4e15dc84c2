"""Inference over one slide level, patch by patch, in bounded memory: the network call and MONAI's ``PatchInferer``.

The package has one inference path from a network to per-head probabilities,
:func:`seunet_monai.inferers.head_probabilities`, run by a MONAI inferer: whole images and sliding windows of
tensors in validation, evaluation, the scale sweep and the calibration (:mod:`seunet_monai.inferers`), and, here,
patches read from a file. For slides (and every image the inference workflow segments):

- :class:`SlideInferer`: a MONAI :class:`~monai.inferers.Inferer` configured once (window, overlap, batch, the
  per-window image transform) that runs :class:`monai.inferers.PatchInferer` over one opened slide with a
  :class:`~.splitter.TissueWSISplitter` (windows that touch tissue only) and a :class:`~.merger.BandMerger`
  (Gaussian blending, finished rows streamed to a sink). Per-head channels are blended from window interiors:
  half the overlap of each inner window edge is left out.
- :class:`PatchPreprocessing`: the per-window image transform (stain normalisation), then ``uint8 -> [0, 1]``.
- :class:`HeadsPatchPredictor`: the network call: the per-head probabilities, fused as the network's eval mode
  fuses them (with the network's extra maps, e.g. the nucleus separation map, fused with the same head weights),
  plus each head's margin ``D_k = p_max - p_second`` (Algorithm 1), as one ``(B, C + A + Ω, h, w)`` output
  (``PatchInferer`` uses one merger class for all outputs).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.inferers import Inferer, PatchInferer

from seunet_monai.data.stain.reference import stain_transform
from seunet_monai.fusion.heads import head_margins
from seunet_monai.fusion.scale import estimate_log_scale, resolve_profile
from seunet_monai.fusion.strategies import fuse
from seunet_monai.inferers import head_probabilities
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.checks import as_flag
from seunet_monai.runtime.distributed import unwrap

from .merger import BandMerger
from .splitter import TissueWSISplitter, window_parameters

__all__ = ["HeadsPatchPredictor", "PatchPreprocessing", "SlideInferer", "patch_stain_transform"]


class SlideInferer(Inferer):
    """Patch-wise inference over one level of an opened slide (see the module docstring).

    Args:
        roi_size: window size in pixels of the inference level (one per axis, or one for both).
        overlap: relative (float in [0, 1)) or absolute (int) overlap of neighbouring windows.
        sw_batch_size: windows per network call.
        image_transform: applied to each window ``(3, h, w)`` uint8 before the network, e.g. a stain normaliser
            (:func:`seunet_monai.data.stain.reference.stain_transform` with ``channel_dim=0``); ``None`` skips it.
        device: where the network runs.
        progress: show a progress bar over the windows that run.

    Example::

        splitter = inferer.splitter(reader, level, location_filter)
        inferer(path, HeadsPatchPredictor(network), splitter=splitter, sink=accumulator, head_channels_from=C)
    """

    def __init__(
        self,
        roi_size: Sequence[int] | int,
        overlap: float | Sequence[float] = 0.25,
        sw_batch_size: int = 1,
        image_transform: Callable | None = None,
        device: torch.device | str = "cpu",
        progress: bool = False,
    ) -> None:
        super().__init__()
        self.roi_size = roi_size
        self.overlap = overlap
        self.sw_batch_size = int(sw_batch_size)
        self.image_transform = image_transform
        self.preprocessing = PatchPreprocessing(image_transform, device)
        self.progress = as_flag(progress, "progress")

    def window(self, spatial_dims: int = 2) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        """Per-axis ``(window size, overlap)`` (:func:`~.splitter.window_parameters`)."""
        return window_parameters(self.roi_size, self.overlap, spatial_dims)

    def splitter(
        self, reader: Any, level: int, location_filter: Callable[[Sequence[int]], bool] | None = None
    ) -> TissueWSISplitter:
        """The splitter of one slide read by ``reader`` at ``level`` (``location_filter``: windows to run)."""
        return TissueWSISplitter(
            self.roi_size,
            self.overlap,
            reader=reader,
            level=level,
            location_filter=location_filter,
            progress=self.progress,
        )

    def __call__(  # type: ignore[override]
        self,
        inputs: Any,
        network: Callable[[torch.Tensor], torch.Tensor],
        splitter: TissueWSISplitter,
        sink: Any,
        head_channels_from: int | None = None,
    ) -> Any:
        """Run ``network`` over the windows of the slide at ``inputs`` that ``splitter`` yields.

        Args:
            inputs: the slide's path.
            network: the per-window call, e.g. :class:`HeadsPatchPredictor`.
            splitter: from :meth:`splitter`.
            sink: receives the finished rows (:class:`~.merger.BandMerger`).
            head_channels_from: first per-head output channel (blended from window interiors); ``None``: none.

        Returns:
            what the merger's ``finalize`` returns (``sink.result()`` when the sink has one).
        """
        patch_size, overlap = splitter.window()
        border = [int(o * p if isinstance(o, float) else o) // 2 for o, p in zip(overlap, patch_size)]
        inferer = PatchInferer(
            splitter,
            merger_cls=BandMerger,
            batch_size=self.sw_batch_size,
            preprocessing=self.preprocessing,
            sink=sink,
            head_channels_from=head_channels_from,
            head_border=border,
        )
        return inferer(inputs, network)


def patch_stain_transform(stain_norm: str, stain_reference: str | os.PathLike) -> Callable | None:
    """The per-window stain normaliser of inference, or ``None`` (:func:`seunet_monai.data.stain.reference.stain_transform`
    on channel-first windows)."""
    return stain_transform(stain_norm, stain_reference, channel_dim=0)


class PatchPreprocessing:
    """``PatchInferer`` preprocessing: an optional per-patch image transform, then ``uint8 -> [0, 1]`` floats.

    Args:
        image_transform: applied to each patch ``(3, h, w)`` uint8 (channel first), e.g. a stain normaliser from
            :func:`seunet_monai.data.stain.reference.load_stain_reference` with ``channel_dim=0``; ``None`` skips it.
        device: where the network runs.
    """

    def __init__(self, image_transform: Callable | None = None, device: torch.device | str = "cpu") -> None:
        self.image_transform = image_transform
        self.device = torch.device(device)

    def __call__(self, patches: torch.Tensor) -> torch.Tensor:
        if self.image_transform is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # low-tissue patches come back unchanged, by design
                patches = torch.stack(
                    [torch.as_tensor(np.asarray(self.image_transform(p.cpu().numpy()))) for p in patches]
                )
        return patches.to(self.device, torch.float32) / 255.0


class HeadsPatchPredictor:
    """Network call for :class:`~monai.inferers.PatchInferer`: fused probabilities and per-head margins.

    Per-head probabilities come from :func:`seunet_monai.inferers.head_probabilities` (``forward_heads`` and a
    softmax over classes for multi-head networks; a plain network is one head). They are fused as the network's
    eval-mode ``forward`` fuses them (:meth:`~seunet_monai.networks.base.MultiHeadNetwork.fuse_heads`); the ``A``
    extra maps of a network with ``aux_channels`` (a sigmoid each) are fused with the head weights of that class
    fusion (:func:`seunet_monai.fusion.auxiliary.fuse_auxiliary`).

    Args:
        network: the segmentation network (put in eval mode by the caller).
        amp: autocast on CUDA.

    Returns (when called on ``x`` ``(B, 3, h, w)``):
        ``(B, C + A + Ω, h, w)`` float32 on the CPU: ``C`` fused class probabilities, the ``A`` fused extra maps
        (:attr:`aux_channels`; none for most networks), then the Ω head margins.
    """

    def __init__(self, network: torch.nn.Module, amp: bool = False) -> None:
        self.network = network
        self.amp = bool(amp)
        net = unwrap(network)
        #: ``A``: the network's extra maps after the classes (0 for a network without any)
        self.aux_channels = int(net.aux_channels) if isinstance(net, MultiHeadNetwork) else 0
        #: ``log ŝ`` of every window run (a slide region), when the network's scale fusion is calibrated
        self.window_log_scales: list[float] = []

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """Per-head probabilities ``(B, Ω, C + A, h, w)``: the classes, then the :attr:`aux_channels` extra maps
        (:func:`seunet_monai.inferers.head_probabilities`, the package's one path; ``softmax`` and ``sigmoid`` run
        in float32 under autocast)."""
        return head_probabilities(self.network, x, aux=self.aux_channels > 0).float()

    def _record_scales(self, probs: torch.Tensor) -> None:
        """Estimate each window's scale relative to training from its heads (the ``scale`` fusion's estimator)."""
        net = unwrap(self.network)
        if probs.shape[1] > 1 and resolve_profile(net) is not None:
            self.window_log_scales.extend(float(v) for v in estimate_log_scale(probs.float().cpu(), net))

    def fused(self, probs: torch.Tensor) -> torch.Tensor:
        """Fused probabilities ``(B, C + A, h, w)`` of per-head ones ``(B, Ω, C + A, h, w)``, as the network's eval
        mode fuses them."""
        net = unwrap(self.network)
        if isinstance(net, MultiHeadNetwork):
            return net.fuse_heads(probs)  # "scale" reads the network's fusion_* calibration buffers
        return fuse(probs, "mean")  # a plain network: one head

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=self.amp and x.device.type == "cuda"):
            probs = self.heads(x)
        classes = probs[:, :, : probs.shape[2] - self.aux_channels]
        self._record_scales(classes)
        return torch.cat([self.fused(probs), head_margins(classes)], dim=1).float().cpu()
