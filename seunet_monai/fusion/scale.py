"""Scale-adaptive fusion of the Ω heads (``fuse(probs, "scale")``), beyond the paper: estimate the input's scale
from the heads' outputs alone, then weight the heads by how well each was *measured* to do at that scale. Design,
reasons and measurements: ``bundle/docs/scale_fusion.md``.

**Calibration** (:func:`seunet_monai.evaluation.calibration.calibrate_scale_fusion`, stored in the network's
state-dict buffers, so saved with the checkpoint): at each profile scale ``s_p`` (``fusion_scales``, by
default the 17 sweep scales ``2^(k/4)``, ``k = -8..8``) the validation images are rescaled by ``s_p`` and
predicted; ``fusion_iou[p, k]`` is head k's dataset-wide IoU there and ``fusion_signature[p]`` the mean over
images of the label-free signature :func:`head_signature` (NaN rows: not calibrated).

**Signature** (:func:`head_signature`, 3 numbers per head, label-free, computable on any window):
``[m_1 .. m_Ω, ρ_1 .. ρ_Ω, a_1 .. a_Ω]`` (shape ``(3Ω,)``, the layout of the ``fusion_signature`` buffer;
:func:`signature_width`) with ``m_k`` the mean margin ``D_k = p_max - p_second`` (Algorithm 1) of head k over
the window, ``ρ_k`` the ``(1/d) log`` of the mean size of the connected components of its non-background labels
(components smaller than :data:`MIN_OBJECT_SIZE` ignored; ``d`` spatial dims) and ``a_k`` the IoU of its
non-background labels with those of the heads' mean. A window without objects has ``ρ_k`` (and ``a_k`` when no
head finds any) = NaN; such components are left out of the estimate. A checkpoint calibrated with the older
layout (``(P, 2Ω)``, until 0.3.0) loads with its calibration cleared (:func:`upgrade_signature_state`).

**Estimate** (:func:`estimate_log_scale`; :func:`estimate_log_scale_from_signature` for a signature already
computed): the calibrated signatures are a curve ``S(t)`` over ``t = log s``, linearly interpolated on a fine grid
(``grid_steps`` points per calibration interval); the window's scale is the grid point nearest to its signature,
each component divided by its spread over the calibrated scales. Outside the calibrated range the estimate is
clamped to its ends.

**Weights** (:func:`scale_head_weights`): with ``q_k = IoU_k(t̂)`` (``fusion_iou`` interpolated in ``log s``),
``w_k = softmax_k((q_k - max_j q_j) / τ)`` (:func:`iou_head_weights`) and the fused probabilities are
``Σ_k w_k ŷ_k`` (``τ`` in IoU units; ``τ = 0`` selects the best head alone). One estimate per item (window).

**Without calibration** (all buffers NaN, or no profile given) :func:`~seunet_monai.fusion.strategies.fuse`
falls back to PEns (the paper's best fusion) and warns once per process, and there is no scale estimate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from scipy import ndimage

from seunet_monai.fusion.heads import fuse_heads
from seunet_monai.runtime.distributed import unwrap

__all__ = [
    "MIN_OBJECT_SIZE",
    "SIGNATURE_STATISTICS",
    "ScaleProfile",
    "apply_head_weights",
    "estimate_log_scale",
    "estimate_log_scale_from_signature",
    "estimate_scale",
    "head_signature",
    "iou_head_weights",
    "signature_width",
    "upgrade_signature_state",
    "resolve_profile",
    "scale_fuse",
    "scale_head_weights",
]

logger = logging.getLogger(__name__)

#: The statistics per head in ``fusion_signature``, in buffer order (Ω values each).
SIGNATURE_STATISTICS = ("mean_margin", "log_object_radius", "consensus_agreement")
#: Connected components smaller than this (pixels or voxels) are not objects for ``ρ_k``.
MIN_OBJECT_SIZE = 4
#: Names of the state-dict buffers holding the calibration (SEUNet and subclasses).
BUFFER_NAMES = ("fusion_scales", "fusion_iou", "fusion_signature")

_warned_uncalibrated = False


def signature_width(num_heads: int) -> int:
    """Columns of the ``fusion_signature`` buffer for ``num_heads`` heads: ``len(SIGNATURE_STATISTICS) · Ω``."""
    return len(SIGNATURE_STATISTICS) * int(num_heads)


def upgrade_signature_state(state_dict: dict, key: str, num_heads: int, warn: bool = True) -> bool:
    """Clear, in place, a ``fusion_signature`` entry saved with the 0.3.0 layout (2 statistics per head).

    Its statistics cannot be converted (the new one needs the images), so the entry becomes NaN of the current
    width: the checkpoint loads, the ``scale`` fusion is uncalibrated (PEns with a warning) until recalibrated.
    Called by ``SEUNet.upgrade_state_dict`` (on every load); returns whether the entry was cleared.
    """
    value = state_dict.get(key)
    if not isinstance(value, torch.Tensor) or value.ndim != 2 or value.shape[1] != 2 * int(num_heads):
        return False
    state_dict[key] = torch.full((value.shape[0], signature_width(num_heads)), float("nan"), dtype=value.dtype)
    if not warn:
        return True
    logger.warning(
        "%s: the checkpoint's scale-fusion calibration has the 0.3.0 layout (2 statistics per head, now %d); it "
        "is cleared and fusion 'scale' falls back to 'pens' until `python -m monai.bundle run calibrating` "
        "measures it again.",
        key,
        len(SIGNATURE_STATISTICS),
    )
    return True


@dataclass(frozen=True)
class ScaleProfile:
    """The calibrated rows of a scale-fusion calibration, sorted by scale.

    Attributes:
        scales: ``(P,)`` calibrated scales (> 0, increasing).
        iou: ``(P, Ω)`` per-head validation IoU at each scale.
        signature: ``(P, 3Ω)`` mean label-free signature (:func:`head_signature`) at each scale.
    """

    scales: torch.Tensor
    iou: torch.Tensor
    signature: torch.Tensor

    @property
    def num_heads(self) -> int:
        return int(self.iou.shape[1])

    @classmethod
    def from_buffers(cls, scales: Any, iou: Any, signature: Any) -> ScaleProfile | None:
        """Keep the rows where everything is finite; ``None`` when no row is (not calibrated).

        Args:
            scales: ``(P,)``; iou: ``(P, Ω)``; signature: ``(P, 3Ω)`` (tensors or array-likes).

        Raises:
            ValueError: for inconsistent shapes (an older signature layout included) or non-positive scales.
        """
        s = torch.as_tensor(scales, dtype=torch.float64).detach().cpu().flatten()
        q = torch.as_tensor(iou, dtype=torch.float64).detach().cpu()
        g = torch.as_tensor(signature, dtype=torch.float64).detach().cpu()
        if q.ndim == 2 and g.ndim == 2 and g.shape == (s.numel(), 2 * q.shape[1]) and q.shape[0] == s.numel():
            raise ValueError(
                f"scale profile: fusion_signature {tuple(g.shape)} has the layout of seunet-monai 0.3.0 (2 statistics "
                f"per head, now {len(SIGNATURE_STATISTICS)}); recalibrate the checkpoint with `python -m monai.bundle "
                "run calibrating` (bundle/docs/README.md)."
            )
        if q.ndim != 2 or g.ndim != 2 or q.shape[0] != s.numel() or g.shape != (s.numel(), signature_width(q.shape[1])):
            raise ValueError(
                "scale profile: expected fusion_scales (P,), fusion_iou (P, Ω) and fusion_signature (P, 3Ω), got "
                f"{tuple(s.shape)}, {tuple(q.shape)} and {tuple(g.shape)}."
            )
        # a signature component may be NaN (a head that found no object at that scale): the row still counts
        ok = torch.isfinite(s) & torch.isfinite(q).all(1) & torch.isfinite(g).any(1)
        if not bool(ok.any()):
            return None
        if bool((s[ok] <= 0).any()):
            raise ValueError(f"scale profile: fusion_scales must be > 0, got {s[ok].tolist()}.")
        order = torch.argsort(s[ok])
        return cls(s[ok][order], q[ok][order], g[ok][order])

    @classmethod
    def from_module(cls, module: torch.nn.Module) -> ScaleProfile | None:
        """The profile held by a network's buffers (``DistributedDataParallel`` is unwrapped); ``None`` when the
        network has no such buffers or they are not calibrated."""
        net = unwrap(module)
        bufs = dict(net.named_buffers(recurse=False))
        if not all(n in bufs for n in BUFFER_NAMES):
            return None
        return cls.from_buffers(*(bufs[n] for n in BUFFER_NAMES))


def resolve_profile(profile: Any) -> ScaleProfile | None:
    """A :class:`ScaleProfile` from what callers hold: ``None``, a profile, a network with the buffers (read now,
    so a transform built before the checkpoint is loaded sees the loaded values), or a mapping with the keys
    ``fusion_scales``, ``fusion_iou``, ``fusion_signature`` (e.g. a state dict).

    Raises:
        TypeError: for anything else.
    """
    if profile is None or isinstance(profile, ScaleProfile):
        return profile
    if isinstance(profile, torch.nn.Module):
        return ScaleProfile.from_module(profile)
    if isinstance(profile, Mapping):
        missing = [n for n in BUFFER_NAMES if n not in profile]
        if missing:
            raise ValueError(f"scale profile mapping lacks the keys {missing} (expected {list(BUFFER_NAMES)}).")
        return ScaleProfile.from_buffers(*(profile[n] for n in BUFFER_NAMES))
    raise TypeError(
        f"profile must be None, a ScaleProfile, a network with the fusion_* buffers or a mapping, got {type(profile).__name__}."
    )


def _log_object_radius(labels: torch.Tensor) -> torch.Tensor:
    """``(1/d) log`` of the mean connected-component size of the non-background labels: ``(B, Ω, *sp) -> (B, Ω)``.

    NaN where a map has no component of at least :data:`MIN_OBJECT_SIZE` elements. Components are found by
    ``scipy.ndimage.label`` (face connectivity) on the CPU: neither torch nor MONAI labels components of a batch.
    """
    spatial = labels.ndim - 2
    flat = (labels != 0).flatten(0, 1).cpu().numpy()
    out = torch.full((flat.shape[0],), float("nan"), dtype=torch.float64)
    for i, mask in enumerate(flat):
        components, count = ndimage.label(mask)
        if count == 0:
            continue
        sizes = torch.bincount(torch.from_numpy(components.ravel()).long())[1:]
        sizes = sizes[sizes >= MIN_OBJECT_SIZE]
        if sizes.numel():
            out[i] = math.log(float(sizes.double().mean())) / spatial
    return out.view(labels.shape[:2])


def _consensus_agreement(labels: torch.Tensor, consensus: torch.Tensor) -> torch.Tensor:
    """IoU of each head's non-background labels with the consensus': ``(B, Ω, *sp), (B, *sp) -> (B, Ω)``.

    A pixel counts in the intersection when head and consensus give it the same non-background class, in the
    union when either gives it one (for two classes: the foreground IoU). NaN where the union is empty.
    """
    consensus = consensus.unsqueeze(1)
    both = ((labels == consensus) & (consensus != 0)).flatten(2).sum(2).double()
    either = ((labels != 0) | (consensus != 0)).flatten(2).sum(2).double()
    return torch.where(either > 0, both / either.clamp_min(1), torch.full_like(both, float("nan")))


def head_signature(probs: torch.Tensor) -> torch.Tensor:
    """Label-free signature of every item (image or window): ``[m_1..m_Ω, ρ_1..ρ_Ω, a_1..a_Ω]`` (see the module
    docstring).

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)``, ``C >= 2``.

    Returns:
        ``(B, 3Ω)`` float64: mean margin of each head, the log object radius of each head's arg-max map (NaN for
        a head whose map has no object), and each head's agreement with the mean of the heads (NaN where neither
        has a non-background pixel).
    """
    if probs.ndim < 4 or probs.shape[2] < 2:
        raise ValueError(f"head_signature: probs must be (B, Ω, C, *spatial) with C >= 2, got {tuple(probs.shape)}.")
    top2 = probs.topk(2, dim=2).values
    margins = (top2[:, :, 0] - top2[:, :, 1]).flatten(2).double().mean(2)  # (B, Ω)
    labels = probs.argmax(dim=2)  # (B, Ω, *spatial)
    radius = _log_object_radius(labels).to(margins.device)  # (B, Ω)
    agreement = _consensus_agreement(labels, probs.mean(dim=1).argmax(dim=1))  # (B, Ω)
    return torch.cat([margins, radius, agreement], dim=1)


def _dense_curve(profile: ScaleProfile, grid_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log s grid (G,), signatures (G, 3Ω), iou (G, Ω))`` linearly interpolated between calibrated scales."""
    t = profile.scales.log()
    if t.numel() == 1:
        return t, profile.signature, profile.iou
    steps = max(1, int(grid_steps))
    frac = torch.arange(steps, dtype=torch.float64) / steps  # (steps,)

    def interp(v: torch.Tensor) -> torch.Tensor:
        f = frac.view(1, steps, *([1] * (v.ndim - 1)))
        dense = v[:-1].unsqueeze(1) + (v[1:] - v[:-1]).unsqueeze(1) * f  # (P-1, steps, ...)
        return torch.cat([dense.reshape(-1, *v.shape[1:]), v[-1:]])

    return interp(t.unsqueeze(1)).squeeze(1), interp(profile.signature), interp(profile.iou)


def _signature_spread(profile: ScaleProfile) -> torch.Tensor:
    """Per component, the standard deviation of the calibrated signatures over scales, NaN left out (a floor avoids /0)."""
    g = profile.signature
    n = torch.isfinite(g).sum(0)
    var = (g - g.nanmean(0)).pow(2).nanmean(0)
    spread = torch.where(n > 1, var.sqrt(), torch.ones_like(var))
    top = float(spread.max()) if spread.numel() else 0.0
    return spread.clamp_min(1e-3 * top if top > 0 else 1.0)


def _check_heads(probs: torch.Tensor, profile: ScaleProfile, name: str) -> None:
    if probs.ndim < 4 or probs.shape[2] < 2:
        raise ValueError(f"{name}: probs must be (B, Ω, C, *spatial) with C >= 2, got {tuple(probs.shape)}.")
    if probs.shape[1] != profile.num_heads:
        raise ValueError(
            f"{name}: the scale profile was calibrated for {profile.num_heads} heads but probs has {probs.shape[1]}."
        )


def _nearest_on_curve(
    signature: torch.Tensor, profile: ScaleProfile, grid_steps: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(log s grid (G,), iou (G, Ω), index (B,))``: the dense curve and the index of the grid point nearest to
    each signature ``(B, 3Ω)``.

    Non-finite components (a head without objects in the window, or at a calibrated scale) are left out of
    the distance, which is the mean squared normalised difference over the components both sides have.
    """
    grid, curve, iou = _dense_curve(profile, grid_steps)
    spread = _signature_spread(profile)
    diff = (signature.unsqueeze(1) - curve.unsqueeze(0)) / spread  # (B, G, 3Ω)
    # mean over the components both sides have, so grid points with fewer finite components are not favoured;
    # a grid point sharing none is never the nearest
    d = diff.pow(2).nanmean(-1).nan_to_num(nan=float("inf"))  # (B, G)
    return grid, iou, d.argmin(dim=1)


def _calibrated(profile: Any, name: str) -> ScaleProfile:
    prof = resolve_profile(profile)
    if prof is None:
        raise ValueError(f"{name}: the scale profile is not calibrated (run the 'calibrating' command).")
    return prof


def estimate_log_scale_from_signature(signature: torch.Tensor, profile: Any, grid_steps: int = 8) -> torch.Tensor:
    """Estimated ``log s`` of items whose signature is already computed (the estimate of
    :func:`estimate_log_scale`, e.g. from signatures stored with the items).

    Args:
        signature: ``(B, 3Ω)`` signatures (:func:`head_signature`).
        profile: a calibrated :class:`ScaleProfile` (or anything :func:`resolve_profile` accepts).
        grid_steps: interpolation points per interval between calibrated scales.

    Returns:
        ``(B,)`` float64 ``log ŝ`` within the calibrated range.

    Raises:
        ValueError: when the profile is not calibrated or the signature's width is not that of its Ω heads.
    """
    prof = _calibrated(profile, "estimate_log_scale_from_signature")
    if signature.ndim != 2 or signature.shape[1] != signature_width(prof.num_heads):
        raise ValueError(
            f"estimate_log_scale_from_signature: expected signatures (B, {signature_width(prof.num_heads)}) for the "
            f"profile's {prof.num_heads} heads, got {tuple(signature.shape)}."
        )
    grid, _, index = _nearest_on_curve(signature.detach().double().cpu(), prof, grid_steps)
    return grid[index]


def estimate_log_scale(probs: torch.Tensor, profile: Any, grid_steps: int = 8) -> torch.Tensor:
    """Estimated ``log s`` of every item (image or any window, e.g. a slide region) from its heads' outputs:
    :func:`estimate_log_scale_from_signature` of their :func:`head_signature`.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)``.
        profile: a calibrated :class:`ScaleProfile` (or anything :func:`resolve_profile` accepts).
        grid_steps: interpolation points per interval between calibrated scales.

    Returns:
        ``(B,)`` float64 ``log ŝ`` within the calibrated range.

    Raises:
        ValueError: when the profile is not calibrated or its Ω differs from ``probs``'.
    """
    prof = _calibrated(profile, "estimate_log_scale")
    _check_heads(probs, prof, "estimate_log_scale")
    return estimate_log_scale_from_signature(head_signature(probs), prof, grid_steps)


def estimate_scale(probs: torch.Tensor, profile: Any, grid_steps: int = 8) -> torch.Tensor:
    """``exp`` of :func:`estimate_log_scale`: the estimated magnification relative to training, ``(B,)``."""
    return estimate_log_scale(probs, profile, grid_steps).exp()


def iou_head_weights(expected_iou: torch.Tensor, temperature: float = 0.01) -> torch.Tensor:
    """The scale fusion's head weights from the heads' expected IoUs: ``w_k = softmax_k((q_k - max_j q_j) / τ)``.

    Args:
        expected_iou: ``q`` ``(B, Ω)``.
        temperature: ``τ`` in IoU units (``>= 0``; 0 gives all the weight to the best head).

    Returns:
        ``(B, Ω)`` weights summing to 1.
    """
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}.")
    q = expected_iou
    if temperature == 0:
        return torch.nn.functional.one_hot(q.argmax(1), q.shape[1]).double()
    return torch.softmax((q - q.max(1, keepdim=True).values) / temperature, dim=1)


def scale_head_weights(
    probs: torch.Tensor, profile: Any, temperature: float = 0.01, grid_steps: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item head weights of the scale fusion and the scale estimates.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)``.
        profile: a calibrated profile (see :func:`resolve_profile`).
        temperature: ``τ`` in IoU units (``>= 0``; 0 picks the best expected head alone).
        grid_steps: interpolation points per interval between calibrated scales.

    Returns:
        ``(weights (B, Ω), scales (B,))``, float64 on the CPU; weights sum to 1 (:func:`iou_head_weights` of the
        profile's IoU at the estimated scale).
    """
    prof = _calibrated(profile, "scale_head_weights")
    _check_heads(probs, prof, "scale_head_weights")
    grid, iou, index = _nearest_on_curve(head_signature(probs).cpu(), prof, grid_steps)
    return iou_head_weights(iou[index], temperature), grid[index].exp()


def _warn_uncalibrated() -> None:
    global _warned_uncalibrated
    if not _warned_uncalibrated:
        _warned_uncalibrated = True
        logger.warning(
            "fusion 'scale': no calibrated scale profile (fusion_* buffers are NaN or no profile was given); "
            "falling back to 'pens'. Calibrate with `python -m monai.bundle run calibrating ...` "
            "(see bundle/docs/README.md)."
        )


def scale_fuse(
    probs: torch.Tensor, profile: Any = None, temperature: float = 0.01, grid_steps: int = 8
) -> torch.Tensor:
    """The ``"scale"`` strategy of :func:`seunet_monai.fusion.strategies.fuse`: ``Σ_k w_k ŷ_k`` with per-item weights
    :func:`scale_head_weights`; PEns (with a one-time warning) when ``profile`` is missing or not calibrated.

    Args:
        probs: per-head class probabilities ``(B, Ω, C, *spatial)``.
        profile: see :func:`resolve_profile`.
        temperature: ``τ`` of the weights (IoU units).
        grid_steps: interpolation points per interval between calibrated scales.

    Returns:
        ``(B, C, *spatial)`` probabilities.
    """
    prof = resolve_profile(profile)
    if prof is None:
        _warn_uncalibrated()
        return fuse_heads(probs, "pens")
    weights, _ = scale_head_weights(probs, prof, temperature, grid_steps)
    return apply_head_weights(probs, weights)


def apply_head_weights(probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Σ_k w_k ŷ_k``: per-item head weights ``(B, Ω)`` applied to ``probs`` ``(B, Ω, C, *spatial)`` -> ``(B, C, *spatial)``."""
    w = weights.to(device=probs.device, dtype=probs.dtype).view(*weights.shape, *([1] * (probs.ndim - 2)))
    return (w * probs).sum(dim=1)
