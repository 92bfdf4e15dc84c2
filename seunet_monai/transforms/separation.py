"""Separation targets of touching nuclei, derived from annotated instance labels, and the split of a network's
separation outputs from its class probabilities.

The class mask cannot tell two touching nuclei apart; a *separation* output predicted beside it can. Two
formulations (:data:`SEPARATION_MODES`), each one channel in ``[0, 1]`` per head (``aux_channels = 1`` of the
networks, a sigmoid), trained by :class:`seunet_monai.losses.MultiHeadLoss` and used by
:class:`~seunet_monai.transforms.instances.NucleusInstances` (its ``boundary`` / ``centre`` argument):

- ``"boundary"``: 1 on the pixels of a nucleus that lie within ``width`` pixels (Euclidean) of a pixel of another
  nucleus or of the background, 0 elsewhere (background included). A binary map rather than a third class
  (background / interior / boundary): the class output and its IoU stay exactly the paper's, and both formulations
  share one network, loss and fusion path.
- ``"centre"``: per nucleus, the Euclidean distance of each of its pixels to the nearest pixel outside it (another
  nucleus or the background), divided by the nucleus' largest distance: 1 at its centre, ``1 / max`` on its rim,
  0 on the background. Each nucleus peaks at 1 whatever its size, so one threshold finds one core per nucleus.

Both are computed on the whole tile, before cropping and flipping: pixels beyond the tile's edge are taken as
continuing the nucleus that touches it (a nucleus cut by the tile edge has no boundary and no distance drop
there). Both commute with flips and transpositions of the instance map, and are deterministic.

- :class:`SeparationTarget`: instance labels ``(1, H, W)`` -> target ``(1, H, W)`` float32;
- :class:`SeparationTargetd`: the same in a training pipeline, appended as channel(s) to the class label (so that
  every spatial transform that follows moves target and label together), the instance map removed;
- :class:`SplitSeparationd`: per-head outputs ``(Ω, C + A, *spatial)`` -> ``pred`` ``(Ω, C, *spatial)`` and the
  separation maps ``(Ω, A, *spatial)`` under their own key (evaluation post-processing);
- :func:`separation_channels`: a network's ``aux_channels`` for a formulation (the bundle's ``separation_channels``).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type
from scipy import ndimage as ndi
from skimage.measure import label as connected_components
from skimage.morphology import disk

from seunet_monai.errors import ConfigValueError, DataError

__all__ = [
    "SEPARATION_MODES",
    "SeparationTarget",
    "SeparationTargetd",
    "SplitSeparationd",
    "check_separation_mode",
    "separation_channels",
]

logger = logging.getLogger(__name__)

#: the separation formulations (module docstring)
SEPARATION_MODES = ("boundary", "centre")


def check_separation_mode(mode: str | None, allow_none: bool = True) -> str | None:
    """``mode`` when it is one of :data:`SEPARATION_MODES` (or ``None`` when ``allow_none``).

    Raises:
        ConfigValueError: naming the allowed values.
    """
    if mode is None and allow_none:
        return None
    if mode not in SEPARATION_MODES:
        allowed = (*SEPARATION_MODES, None) if allow_none else SEPARATION_MODES
        raise ConfigValueError(f"separation must be one of {allowed}, got {mode!r}.")
    return str(mode)


def separation_channels(mode: str | None) -> int:
    """The number of separation maps a network predicts for ``mode`` (its ``aux_channels``): 0 for ``None``, 1 for
    each of :data:`SEPARATION_MODES`.

    Raises:
        ConfigValueError: ``mode`` is not one of them (:func:`check_separation_mode`).
    """
    return int(check_separation_mode(mode) is not None)


def _as_labels(instances: Any) -> np.ndarray:
    """Instance labels ``(H, W)`` or ``(1, H, W)`` (any numeric type) as int64 ``(H, W)``."""
    arr = np.asarray(instances.detach().cpu() if isinstance(instances, torch.Tensor) else instances)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"instance labels must be (H, W) or (1, H, W), got shape {arr.shape}.")
    if arr.dtype.kind == "f":
        arr = np.rint(arr)
    if arr.size and arr.min() < 0:
        raise ValueError("instance labels must be >= 0 (0 = background).")
    return arr.astype(np.int64)


def boundary_target(labels: np.ndarray, width: int = 2) -> np.ndarray:
    """``(H, W)`` float32: 1 on nucleus pixels within ``width`` px of another label (module docstring), else 0."""
    footprint = disk(width).astype(bool)
    # a different label in the footprint is either larger or smaller; beyond the tile's edge its edge pixels repeat
    higher = ndi.grey_dilation(labels, footprint=footprint, mode="nearest") != labels
    lower = ndi.grey_erosion(labels, footprint=footprint, mode="nearest") != labels
    return ((labels > 0) & (higher | lower)).astype(np.float32)


def centre_target(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` float32: per nucleus, the distance to its border over its largest distance (module docstring)."""
    out = np.zeros(labels.shape, dtype=np.float32)
    h, w = labels.shape
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        rows, cols = box
        # one pixel of context on every side; beyond the tile edge the nucleus continues (edge padding)
        r0, r1, c0, c1 = max(rows.start - 1, 0), min(rows.stop + 1, h), max(cols.start - 1, 0), min(cols.stop + 1, w)
        inside = labels[r0:r1, c0:c1] == index
        pad = ((int(r0 == 0), int(r1 == h)), (int(c0 == 0), int(c1 == w)))
        dist = ndi.distance_transform_edt(np.pad(inside, pad, mode="edge"))
        dist = dist[pad[0][0] : dist.shape[0] - pad[0][1], pad[1][0] : dist.shape[1] - pad[1][1]]
        values = dist[inside]
        out[r0:r1, c0:c1][inside] = values / values.max()
    return out


class SeparationTarget(Transform):
    """Array transform: instance labels -> the separation target of ``mode`` (module docstring).

    Args:
        mode: ``"boundary"`` or ``"centre"``.
        width: ``"boundary"`` only: the rim width in pixels (>= 1; default 2, 0.5 µm at MoNuSeg's 0.25 µm per
            pixel).

    Input ``(1, H, W)`` or ``(H, W)`` labels (0 = background, any numeric type); output ``(1, H, W)`` float32 in
    ``[0, 1]``, of the input's type (numpy array, tensor, ``MetaTensor`` with the input's metadata).
    """

    def __init__(self, mode: str = "boundary", width: int = 2) -> None:
        self.mode = check_separation_mode(mode, allow_none=False)
        if int(width) != width or int(width) < 1:
            raise ConfigValueError(f"width must be an integer >= 1 (pixels), got {width!r}.")
        self.width = int(width)

    def __call__(self, instances: Any) -> Any:
        labels = _as_labels(instances)
        target = boundary_target(labels, self.width) if self.mode == "boundary" else centre_target(labels)
        out = target[None]
        return (
            convert_to_dst_type(out, instances, dtype=torch.float32)[0] if isinstance(instances, torch.Tensor) else out
        )


class SeparationTargetd(MapTransform):
    """Dictionary transform of a training pipeline: the separation target of the instance labels ``keys``,
    appended as the last channel of ``label_key`` (``(1, H, W)`` class indices -> ``(2, H, W)``: class, target), so
    that crops, flips and zooms that follow move both together; the instance map is then removed.
    :class:`seunet_monai.losses.MultiHeadLoss` with ``aux_channels=1`` reads the label in this layout.

    Args:
        keys: the key of the instance labels ``(1, H, W)`` (one key).
        mode: ``"boundary"`` or ``"centre"``.
        label_key: the key of the class labels ``(1, H, W)`` the target is appended to.
        width: ``"boundary"`` only: rim width in pixels.
        nucleus_class: class index of the nuclei in the label (for ``fallback_to_components``).
        fallback_to_components: for items without ``keys`` (e.g. the synthetic data, which has no instance labels),
            use the 8-connected components of the nucleus class instead, touching nuclei being one object (logged
            once); otherwise such an item is a ``DataError``.
        keep_instances: keep the instance map in the item (it is not moved by transforms that list only image and
            label).
    """

    def __init__(
        self,
        keys: KeysCollection = "instance",
        mode: str = "boundary",
        label_key: str = "label",
        width: int = 2,
        nucleus_class: int = 1,
        fallback_to_components: bool = False,
        keep_instances: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys=True)
        if len(self.keys) != 1:
            raise ConfigValueError(f"SeparationTargetd: give one instance key, got {self.keys}.")
        self.target = SeparationTarget(mode, width)
        self.label_key = label_key
        self.nucleus_class = int(nucleus_class)
        self.fallback_to_components = bool(fallback_to_components)
        self.keep_instances = bool(keep_instances)
        self._warned = False

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        key = self.keys[0]
        if self.label_key not in d:
            raise DataError(f"SeparationTargetd: the item has no {self.label_key!r} key (keys {sorted(map(str, d))}).")
        label = d[self.label_key]
        if key in d:
            instances = d[key]
        elif self.fallback_to_components:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "separation targets: items without %r (instance labels): the connected components of "
                    "class %d stand in (touching nuclei count as one)",
                    key,
                    self.nucleus_class,
                )
            classes = _as_labels(label)
            instances = connected_components(classes == self.nucleus_class, connectivity=2)
        else:
            raise DataError(
                f"SeparationTargetd: the item has no {key!r} key (instance labels), needed for the "
                f"separation target (its datalist lacks them; MoNuSeg's preparation writes them)."
            )
        target = self.target(instances)
        if tuple(target.shape[1:]) != tuple(label.shape[1:]):
            raise DataError(
                f"SeparationTargetd: instance labels {tuple(target.shape[1:])} and class labels "
                f"{tuple(label.shape[1:])} differ in size."
            )
        if isinstance(label, torch.Tensor):
            dtype = label.dtype if label.is_floating_point() else torch.float32
            target = convert_to_dst_type(target, label, dtype=dtype)[0]
            d[self.label_key] = torch.cat([label.to(dtype), target], dim=0)
        else:
            d[self.label_key] = np.concatenate([np.asarray(label, dtype=np.float32), np.asarray(target)], axis=0)
        if not self.keep_instances:
            d.pop(key, None)
        return d


class SplitSeparationd(MapTransform):
    """Evaluation post-processing: moves the separation channels of per-head outputs to their own key.

    A network with ``aux_channels = A`` gives per-head outputs ``(Ω, C + A, *spatial)`` (decollated items; class
    probabilities, then the separation maps, :func:`seunet_monai.inferers.head_probabilities` with ``aux=True``).
    This transform leaves ``(Ω, C, *spatial)`` under ``keys`` (what the IoU metrics read) and writes
    ``(Ω, A, *spatial)`` under ``separation_key``; an output without extra channels is left as it is.

    Args:
        keys: key(s) of the per-head outputs (``"pred"``).
        num_classes: C.
        separation_key: where the separation maps go.
        channel_dim: the channel axis of the items (1: after the heads).
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        num_classes: int = 2,
        separation_key: str = "separation",
        channel_dim: int = 1,
    ) -> None:
        super().__init__(keys)
        if int(num_classes) < 1:
            raise ConfigValueError(f"num_classes must be >= 1, got {num_classes}.")
        self.num_classes = int(num_classes)
        self.separation_key = separation_key
        self.channel_dim = int(channel_dim)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            x = d[key]
            n = x.shape[self.channel_dim]
            if n > self.num_classes:
                d[self.separation_key] = x.narrow(self.channel_dim, self.num_classes, n - self.num_classes)
                d[key] = x.narrow(self.channel_dim, 0, self.num_classes)
        return d
