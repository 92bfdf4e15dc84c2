"""The one path from a network to per-head class probabilities ``(B, Ω, C, *spatial)``, whole image or by windows.

Every prediction of the package starts from :func:`head_probabilities`, run by a MONAI inferer, and is fused
afterwards (:func:`seunet_monai.fusion.strategies.fuse`), so windows blend per-head probabilities, never fused ones:

- tensors (validation and evaluation: :class:`HeadsInferer` in the bundle's configs; the scale sweep,
  :class:`seunet_monai.evaluation.sweep.ScaleSweep`; the scale-fusion calibration): :func:`infer_heads` with
  :class:`~monai.inferers.SimpleInferer` (whole image) or :class:`~monai.inferers.SlidingWindowInferer`;
- volumes (``variants/3d/inference.json``): :class:`HeadsInferer` with a 3D
  :class:`~monai.inferers.SlidingWindowInferer`, the heads then fused by the network's fusion
  (:class:`seunet_monai.transforms.post.Fused`) before MONAI's writer;
- images and slides read from files (``run inferring``): MONAI's :class:`~monai.inferers.PatchInferer` over the
  windows of one slide level (:class:`seunet_monai.apps.wsi.inferers.SlideInferer`), the network call fusing each
  window's :func:`head_probabilities` (:class:`seunet_monai.apps.wsi.inferers.HeadsPatchPredictor`).

- :func:`head_probabilities`: one forward pass: ``softmax(forward_heads(x), 2)`` for a
  :class:`~seunet_monai.networks.base.MultiHeadNetwork`, or ``softmax(network(x), 1)`` as one head for a plain
  network (e.g. MONAI's ``BasicUNet``).
- :func:`infer_heads`: that pass run by a MONAI inferer (default whole image), in any number of spatial dimensions.
  The heads are flattened into channels ``(B, Ω·C, *spatial)`` while the inferer runs, so
  :class:`monai.inferers.SlidingWindowInferer` stitches them like any channel-first output. A sliding window larger
  than the image along an axis is cut to the image (:func:`fit_window`): MONAI would pad the image with zeros up to
  the window (a black border unlike H&E background); cut to the image, the window covers it exactly once and
  nothing is padded.
- :class:`HeadsInferer`: :func:`infer_heads` as a MONAI inferer (what ``SupervisedEvaluator`` calls), keeping the
  input's metadata as MONAI's inferers do.
- :func:`sweep_window`: the sweep's and the calibration's rule: whole image up to a pixel budget, else windows.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer, SimpleInferer, SlidingWindowInferer
from monai.utils import convert_to_tensor

from seunet_monai.errors import DataError
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.distributed import unwrap

__all__ = [
    "MIN_WINDOW",
    "WHOLE_IMAGE_PIXELS",
    "HeadsInferer",
    "fit_window",
    "head_probabilities",
    "infer_heads",
    "predict_heads",
    "sweep_window",
]

#: whole-image budget of the scale sweep and the calibration (pixels of one rescaled image): 2048², sized for 16 GB
#: of memory with the paper-size SEUNet (the measurement: ``bundle/docs/README.md``, "scale sweep")
WHOLE_IMAGE_PIXELS = 2048 * 2048
#: smallest sliding window of the sweep: windows much smaller than the receptive field of the large-σ heads change
#: their probabilities
MIN_WINDOW = 512


def head_probabilities(network: torch.nn.Module, x: torch.Tensor, aux: bool = False) -> torch.Tensor:
    """Per-head class probabilities ``(B, Ω, C, *spatial)`` of ``network`` on ``x`` ``(B, C_in, *spatial)``.

    - a :class:`~seunet_monai.networks.base.MultiHeadNetwork` (SEUNet and the baselines):
      ``softmax(forward_heads(x), dim=2)`` in any mode; for a network with ``aux_channels = A`` the class part
      only, or with ``aux`` its ``A`` extra maps (sigmoid) after the classes, ``(B, Ω, C + A, *spatial)``
      (:meth:`~seunet_monai.networks.base.MultiHeadNetwork.head_outputs`);
    - a plain network returning logits ``(B, C, *spatial)``: one head, ``softmax(network(x), 1).unsqueeze(1)``.

    Raises:
        ValueError: when the output does not have the expected layout.
    """
    net = unwrap(network)
    if isinstance(net, MultiHeadNetwork):
        return net.head_outputs(net.forward_heads(x), aux=aux)
    out = network(x)
    out = out[0] if isinstance(out, (tuple, list)) else out
    if out.ndim != x.ndim:
        raise ValueError(
            f"head_probabilities: expected logits (B, C, *spatial) from {type(net).__name__}, got {tuple(out.shape)}."
        )
    return torch.softmax(out, dim=1).unsqueeze(1)


def fit_window(inferer: Inferer, spatial_shape: Sequence[int]) -> Inferer:
    """``inferer`` itself, or, for a :class:`~monai.inferers.SlidingWindowInferer` whose window is larger than the
    image along some axis, a copy whose window is cut to the image there (non-positive ``roi_size`` entries mean
    the whole axis, as in MONAI)."""
    roi = getattr(inferer, "roi_size", None)
    if not isinstance(inferer, SlidingWindowInferer) or roi is None:
        return inferer
    shape = [int(n) for n in spatial_shape]
    roi = [int(roi)] * len(shape) if isinstance(roi, int) else [int(r) for r in roi]
    fitted = [n if r <= 0 else min(r, n) for r, n in zip(roi, shape)]
    if fitted == roi:
        return inferer
    out = copy.copy(inferer)
    out.roi_size = tuple(fitted)
    out.roi_weight_map = None  # a cached map is for the configured window
    return out


def infer_heads(
    network: torch.nn.Module | Callable[..., Any],
    inputs: torch.Tensor,
    inferer: Inferer | None = None,
    *args: Any,
    aux: bool = False,
    **kwargs: Any,
) -> torch.Tensor:
    """Per-head probabilities ``(B, Ω, C, *spatial)`` of ``inputs`` ``(B, C_in, *spatial)``, run by ``inferer``.

    Args:
        network: see :func:`head_probabilities` (call it under ``torch.no_grad()`` and in eval mode).
        inputs: the batch.
        inferer: a MONAI inferer (default :class:`~monai.inferers.SimpleInferer`: the whole image); a sliding
            window is cut to the image where it is larger (:func:`fit_window`).
        args: further positional arguments of the inferer's network call.
        aux: also the network's extra maps after the classes (:func:`head_probabilities`).
        kwargs: further keyword arguments of the inferer's network call.

    Returns:
        a plain tensor (no ``MetaTensor``) where the inferer puts its output (``SlidingWindowInferer``: ``device``).
    """
    heads: list[tuple[int, int]] = []

    def flat(x: torch.Tensor, *a: Any, **k: Any) -> torch.Tensor:
        p = head_probabilities(network, x, aux)  # type: ignore[arg-type]
        heads.append((int(p.shape[1]), int(p.shape[2])))
        return p.flatten(1, 2)

    inferer = fit_window(inferer if inferer is not None else SimpleInferer(), inputs.shape[2:])
    out = inferer(inputs, flat, *args, **kwargs)
    if isinstance(out, (tuple, list, dict)):
        raise ValueError("infer_heads: the inferer returned several outputs; expected one tensor.")
    out = convert_to_tensor(out, track_meta=False)
    omega, classes = heads[0]
    return out.reshape(out.shape[0], omega, classes, *out.shape[2:])


def predict_heads(
    network: torch.nn.Module,
    image: torch.Tensor,
    inferer: Inferer | None,
    device: torch.device | str,
    aux: bool = False,
) -> torch.Tensor:
    """Per-head probabilities ``(1, Ω, C, *spatial)`` (float) of one image ``(C_in, *spatial)`` run on ``device``
    by ``inferer`` (``None``: whole) through :func:`infer_heads`, without gradients (a window larger than the
    image is cut to it: no zero padding). Call it with the network in eval mode (scale sweep, calibration).
    ``aux``: also the network's extra maps, ``(1, Ω, C + A, *spatial)`` (:func:`head_probabilities`)."""
    with torch.no_grad():
        return infer_heads(network, image.unsqueeze(0).to(device), inferer, aux=aux).float()


class HeadsInferer(Inferer):
    """A MONAI inferer giving per-head probabilities ``(B, Ω, C, *spatial)``: :func:`infer_heads` with another
    inferer (default :class:`~monai.inferers.SimpleInferer`) doing the work (windowing, stitching).

    A :class:`~monai.data.MetaTensor` input gives a ``MetaTensor`` output carrying the input's metadata (affine,
    file name), as MONAI's :class:`~monai.inferers.SlidingWindowInferer` does, so that MONAI's writers
    (``SaveImaged``) place the prediction like the input.

    Args:
        spatial_dims: number of spatial dimensions of the inputs (2: images, 3: volumes); ``None``: any. An input
            of another dimensionality is refused in one line naming its file.
        inferer: the inferer doing the actual work, e.g. a :class:`~monai.inferers.SlidingWindowInferer` whose
            ``roi_size`` has ``spatial_dims`` entries.
        aux: also the network's extra maps after the classes, ``(B, Ω, C + A, *spatial)`` (:func:`head_probabilities`;
            :class:`~seunet_monai.transforms.separation.SplitSeparationd` moves them to their own key).

    Example::

        inferer = HeadsInferer(3, SlidingWindowInferer(roi_size=(160, 160, 160), overlap=0.25, mode="gaussian"))
        probs = inferer(volume, network)  # (B, Ω, C, X, Y, Z), then fused: network.fuse_heads(probs)
    """

    def __init__(self, spatial_dims: int | None = None, inferer: Inferer | None = None, aux: bool = False) -> None:
        super().__init__()
        if spatial_dims is not None and (isinstance(spatial_dims, bool) or int(spatial_dims) < 1):
            raise ValueError(f"HeadsInferer: spatial_dims must be a positive number or None, got {spatial_dims!r}.")
        self.spatial_dims = None if spatial_dims is None else int(spatial_dims)
        self.inferer = inferer if inferer is not None else SimpleInferer()
        self.aux = bool(aux)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """Per-head probabilities ``(B, Ω, C, *spatial)`` of ``inputs`` ``(B, C_in, *spatial)`` (see the class).

        Raises:
            seunet_monai.errors.DataError: ``inputs`` does not have ``spatial_dims`` spatial dimensions.
        """
        if self.spatial_dims is not None and inputs.ndim != self.spatial_dims + 2:
            name = inputs.meta.get("filename_or_obj") if isinstance(inputs, MetaTensor) else None
            name = name[0] if isinstance(name, (list, tuple)) and name else name
            what = f"{name} has" if name else "the input has"
            raise DataError(
                f"{what} {inputs.ndim - 2} spatial dimensions (shape {tuple(inputs.shape)}, batch and channel "
                f"first); this inferer expects {self.spatial_dims}."
            )
        out = infer_heads(network, inputs, self.inferer, *args, aux=self.aux, **kwargs)
        if isinstance(inputs, MetaTensor):
            out = MetaTensor(out).copy_meta_from(inputs, copy_attr=False)
        return out


def sweep_window(
    spatial_shape: Sequence[int],
    max_pixels: int | None,
    roi_size: Sequence[int],
    min_window: int = MIN_WINDOW,
    sw_batch_size: int = 1,
) -> tuple[int, ...] | None:
    """The sweep's rule for one rescaled image: ``None`` (predict it whole) or the sliding-window size per axis.

    An image of at most ``max_pixels`` pixels goes to the network whole (``max_pixels=None``: always). A larger
    one is cut into windows as large as the budget allows for ``sw_batch_size`` windows per call, rounded down to
    a multiple of 16, but at least ``max(roi_size, min_window)`` and at most the image, per axis (no zero padding
    beyond the image).

    Args:
        spatial_shape: the rescaled image's spatial size.
        max_pixels: whole-image budget in pixels (``None``: no limit).
        roi_size: smallest window per axis (the training patch size).
        min_window: smallest window side (512).
        sw_batch_size: windows per network call.
    """
    shape = [int(n) for n in spatial_shape]
    if max_pixels is None or math.prod(shape) <= max_pixels:
        return None
    d = len(shape)
    side = int((max(max_pixels, 0) / max(1, sw_batch_size)) ** (1.0 / d)) // 16 * 16
    return tuple(min(n, max(side, int(r), int(min_window))) for n, r in zip(shape, roi_size))
