"""Candidate rules for the ``scale`` fusion's head weights, scored out of sample by
:mod:`seunet_monai.evaluation.fusion_validation` (``scripts/scale_fusion_cv.py``).

A rule (:data:`Rule`) fuses the per-head probabilities of one image at one scale from its estimated ``log ŝ`` and a
calibration (:class:`FoldProfile`). :func:`scale_rule` is the ``scale`` fusion itself
(:func:`~seunet_monai.fusion.scale.iou_head_weights` of the profile IoU at ``ŝ``); the variants soften it
(a larger ``τ``), shrink it towards PEns (:func:`pens_mix_rule`) or towards a flatter profile
(:func:`shrunk_profile_rule`), or discount heads whose IoU varies across the calibration images
(:func:`lower_bound_rule`). :data:`CANDIDATE_RULES` names those compared. Tensors only, as the rest of
:mod:`seunet_monai.fusion`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from seunet_monai.fusion.scale import ScaleProfile, apply_head_weights, iou_head_weights

__all__ = [
    "CANDIDATE_RULES",
    "FoldProfile",
    "Rule",
    "RuleInput",
    "lower_bound_rule",
    "pens_mix_rule",
    "scale_rule",
    "shrunk_profile_rule",
]


@dataclass(frozen=True)
class FoldProfile:
    """The calibration a rule sees: a profile measured on some images (e.g. all but the held-out one), as
    :func:`seunet_monai.evaluation.fusion_validation.fold_profile` builds it from stored measurements.

    Attributes:
        profile: the :class:`~seunet_monai.fusion.scale.ScaleProfile` the calibration would store.
        iou_se: ``(P, Ω)`` standard error, across the calibration images, of each head's per-image IoU at the
            profile's scales (0 with a single image).
        num_images: calibration images (whole images; tiles count by the image they belong to).
        images: their names.
    """

    profile: ScaleProfile
    iou_se: torch.Tensor
    num_images: int
    images: tuple[str, ...]

    def at(self, values: torch.Tensor, log_scale: float) -> torch.Tensor:
        """Per-scale ``values (P, Ω)`` linearly interpolated in ``log s`` at ``log_scale`` (clamped to the ends):
        ``(Ω,)``, as the fusion interpolates ``fusion_iou``."""
        t = self.profile.scales.log()
        if t.numel() == 1 or log_scale <= float(t[0]):
            return values[0]
        if log_scale >= float(t[-1]):
            return values[-1]
        i = int(torch.searchsorted(t, torch.tensor(log_scale, dtype=t.dtype), right=True)) - 1
        frac = (log_scale - float(t[i])) / float(t[i + 1] - t[i])
        return values[i] + (values[i + 1] - values[i]) * frac


@dataclass(frozen=True)
class RuleInput:
    """What a rule sees for one held-out image at one scale.

    Attributes:
        probs: per-head class probabilities ``(1, Ω, C, *spatial)``.
        pens: their PEns fusion ``(1, C, *spatial)``.
        log_scale: the estimated ``log ŝ``
            (:func:`~seunet_monai.fusion.scale.estimate_log_scale_from_signature` with ``fold.profile``).
        fold: the calibration (other images only, under LOIO).
    """

    probs: torch.Tensor
    pens: torch.Tensor
    log_scale: float
    fold: FoldProfile


#: a candidate rule: fused class probabilities ``(1, C, *spatial)`` of one held-out image at one scale
Rule = Callable[[RuleInput], torch.Tensor]


def _weighted(x: RuleInput, q: torch.Tensor, temperature: float) -> torch.Tensor:
    return apply_head_weights(x.probs, iou_head_weights(q[None], temperature))


def scale_rule(temperature: float = 0.01) -> Rule:
    """The ``scale`` fusion: heads weighted by ``softmax`` of their profile IoU at ``ŝ`` over ``τ``."""

    def rule(x: RuleInput) -> torch.Tensor:
        return _weighted(x, x.fold.at(x.fold.profile.iou, x.log_scale), temperature)

    return rule


def pens_mix_rule(weight: float, temperature: float = 0.01) -> Rule:
    """Shrinkage towards PEns: ``(1 - λ) · scale + λ · PEns`` of the fused probabilities, ``λ = weight``."""

    def rule(x: RuleInput) -> torch.Tensor:
        return (1 - weight) * scale_rule(temperature)(x) + weight * x.pens

    return rule


def shrunk_profile_rule(prior_images: float = 2.0, temperature: float = 0.01) -> Rule:
    """The ``scale`` rule on a profile whose head IoUs are shrunk towards each head's mean over the scales by
    ``λ = n0 / (n0 + n)`` (``n0 = prior_images``, ``n`` the calibration images): the fewer images, the flatter."""

    def rule(x: RuleInput) -> torch.Tensor:
        iou = x.fold.profile.iou
        lam = prior_images / (prior_images + x.fold.num_images)
        return _weighted(x, x.fold.at((1 - lam) * iou + lam * iou.mean(0, keepdim=True), x.log_scale), temperature)

    return rule


def lower_bound_rule(z: float = 1.0, temperature: float = 0.01) -> Rule:
    """Uncertainty-aware weights: the profile IoU at ``ŝ`` minus ``z`` standard errors across the calibration
    images, soft-maxed over ``τ`` (a head whose IoU varies from image to image is trusted less)."""

    def rule(x: RuleInput) -> torch.Tensor:
        q = x.fold.at(x.fold.profile.iou, x.log_scale) - z * x.fold.at(x.fold.iou_se, x.log_scale)
        return _weighted(x, q, temperature)

    return rule


#: the candidate rules (``scale`` is the fusion as shipped), scored by
#: :func:`seunet_monai.evaluation.fusion_validation.score_cache`
CANDIDATE_RULES: dict[str, Rule] = {
    "scale": scale_rule(0.01),
    "scale_t0.02": scale_rule(0.02),
    "scale_t0.05": scale_rule(0.05),
    "pens_mix_0.25": pens_mix_rule(0.25),
    "pens_mix_0.5": pens_mix_rule(0.5),
    "shrunk_n2": shrunk_profile_rule(2.0),
    "lcb_z1": lower_bound_rule(1.0),
    "lcb_z2": lower_bound_rule(2.0),
}
