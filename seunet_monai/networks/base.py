"""The multi-head contract of the package's networks: Ω scale groups, one head each, fused in eval mode.

A :class:`MultiHeadNetwork` has ``num_scales`` (Ω) heads, each predicting the same ``out_channels`` classes (and,
with ``aux_channels = A > 0``, ``A`` extra maps in ``[0, 1]`` after them, e.g. the nucleus separation map of
:mod:`seunet_monai.transforms.separation`), and a fusion strategy ``fusion``
(:func:`seunet_monai.fusion.strategies.fuse`). A subclass implements :meth:`~MultiHeadNetwork.forward_heads`
(per-head logits) and :meth:`~MultiHeadNetwork.features` (the last layer's features, for the equivariance error
of eq. 10); the forward pass, the fusion and the equivariance check (:meth:`~MultiHeadNetwork.check_equivariance`)
follow from them:

- training mode: per-head logits ``(B, Ω, C + A, *spatial)`` (what the multi-head loss trains);
- eval mode: fused class probabilities ``(B, C, *spatial)``, or the per-head probabilities ``(B, Ω, C, *spatial)``
  while ``output_heads`` is True. With ``A > 0`` the ``A`` maps (a sigmoid of their logits) follow the ``C``
  class probabilities on the same axis, fused with the class fusion's head weights
  (:func:`seunet_monai.fusion.auxiliary.fuse_auxiliary`): ``(B, C + A, *spatial)`` / ``(B, Ω, C + A, *spatial)``.

What a network can report about its scales has defaults a subclass overrides: :meth:`~MultiHeadNetwork.sigmas`,
:meth:`~MultiHeadNetwork.sigma_bounds`, :meth:`~MultiHeadNetwork.head_sigmas` and
:meth:`~MultiHeadNetwork.first_layer_filters`.

SEUNet and every baseline of this package (CNN, SESN, DISCO) are such networks. Code that takes any network asks
``isinstance(network, MultiHeadNetwork)``; any other network (e.g. MONAI's ``BasicUNet``) returns logits
``(B, C, *spatial)`` and counts as one head.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from seunet_monai.fusion.auxiliary import fuse_auxiliary
from seunet_monai.fusion.strategies import fuse
from seunet_monai.layers.rescale import rescale_image, resize_features
from seunet_monai.networks.equivariance import equivariance_matrix

__all__ = ["MultiHeadNetwork", "last_layer_log_sigmas"]


class MultiHeadNetwork(nn.Module):
    """Base class of the multi-head networks (see the module docstring).

    Subclasses set ``num_scales``, ``out_channels``, ``fusion`` (and ``aux_channels`` when they predict extra maps)
    in ``__init__`` and implement :meth:`forward_heads` and :meth:`features`.
    """

    num_scales: int
    out_channels: int
    aux_channels: int = 0
    fusion: str = "pens"

    def __init__(self) -> None:
        super().__init__()
        self.output_heads = False

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        """Per-head logits ``(B, Ω, C + A, *spatial)`` in any mode (``A = aux_channels``, 0 by default)."""
        raise NotImplementedError(f"{type(self).__name__} must implement forward_heads(x).")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer's features before the heads, ``(B, Ω, F, *spatial)`` (for eq. 10 and 12)."""
        raise NotImplementedError(f"{type(self).__name__} must implement features(x).")

    def head_outputs(self, logits: torch.Tensor, aux: bool = True) -> torch.Tensor:
        """Per-head probabilities of per-head logits ``(B, Ω, C + A, *spatial)``: a softmax over the ``C`` classes,
        then (with ``aux``) a sigmoid of each of the ``A`` extra maps, ``(B, Ω, C + A, *spatial)``; without ``aux``
        the class probabilities alone, ``(B, Ω, C, *spatial)``."""
        if not self.aux_channels:
            return torch.softmax(logits, dim=2)
        classes, extra = self.split_outputs(logits, dim=2)
        probs = torch.softmax(classes, dim=2)
        return torch.cat([probs, torch.sigmoid(extra)], dim=2) if aux else probs

    def split_outputs(self, x: torch.Tensor, dim: int = 2) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(classes, extra maps)`` of an output whose axis ``dim`` holds the ``C = out_channels`` class channels,
        then the ``A`` extra ones (``dim`` 2 for per-head outputs, 1 for fused ones); ``(x, None)`` when the network
        has no extra maps or ``x`` holds the classes alone.

        Raises:
            ValueError: when axis ``dim`` holds neither ``C`` nor ``C + A`` channels.
        """
        n = x.shape[dim]
        if not self.aux_channels or n == self.out_channels:
            return x, None
        if n != self.out_channels + self.aux_channels:
            raise ValueError(
                f"{type(self).__name__}: expected {self.out_channels} classes, then {self.aux_channels} extra maps, on "
                f"axis {dim}, got shape {tuple(x.shape)}."
            )
        return x.narrow(dim, 0, self.out_channels), x.narrow(dim, self.out_channels, self.aux_channels)

    def fuse_heads(self, probs: torch.Tensor) -> torch.Tensor:
        """Fused class probabilities ``(B, C, *spatial)`` of per-head ones ``(B, Ω, C, *spatial)``, by the strategy
        ``self.fusion`` (``"scale"`` reads the network's ``fusion_*`` calibration buffers; the others ignore them).
        With ``aux_channels`` the input may also be ``(B, Ω, C + A, *spatial)``, and the output is then
        ``(B, C + A, *spatial)``: the extra maps fused with the head weights of the class fusion."""
        if not self.aux_channels:
            return fuse(probs, self.fusion, profile=self)
        classes, extra = self.split_outputs(probs, dim=2)
        fused = fuse(classes, self.fusion, profile=self)
        if extra is None:
            return fused
        return torch.cat([fused, fuse_auxiliary(classes, extra, self.fusion, profile=self)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.forward_heads(x)
        if self.training:
            return logits
        probs = self.head_outputs(logits)
        if self.output_heads:
            return probs
        return self.fuse_heads(probs)

    def sigmas(self) -> OrderedDict[str, torch.Tensor]:
        """Current σ ``(Ω,)`` of every layer with learnt or fixed scales, detached, in network order (none here)."""
        return OrderedDict()

    def sigma_bounds(self) -> OrderedDict[str, torch.Tensor]:
        """Configured σ intervals ``(Ω, 2)`` of every layer whose σ are learnt within bounds, in network order
        (none here)."""
        return OrderedDict()

    def head_sigmas(self) -> tuple[str, torch.Tensor] | None:
        """The σ of the layer the heads read and its name: the last entry of :meth:`sigmas` as ``(name, σ (Ω,))``
        float64 on the CPU; ``None`` when the network has no σ or that layer's are not Ω positive values."""
        table = self.sigmas()
        if not table:
            return None
        name, sigma = next(reversed(table.items()))
        sigma = torch.as_tensor(sigma, dtype=torch.float64).detach().cpu().flatten()
        if sigma.numel() != int(self.num_scales) or not bool((sigma > 0).all()):
            return None
        return str(name), sigma

    def first_layer_filters(self) -> torch.Tensor | None:
        """Dense filters of the first layer per group, ``(Ω, C_out, C_in, K, ..., K)`` (the paper's Fig. 4);
        ``None`` when the network has none to show (here)."""
        return None

    def upgrade_state_dict(self, state_dict: dict, prefix: str = "", warn: bool = True) -> None:
        """Bring, in place, a state dict of an older release to this network's layout (nothing to do here)."""

    def check_equivariance(
        self,
        scale: float,
        x: torch.Tensor,
        x_scaled: torch.Tensor | None = None,
        reference: torch.Tensor | None = None,
        axes: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """The errors of eq. 12 between this network's groups across the scale change ``scale`` (cf. escnn's
        ``EquivariantModule.check_equivariance``): ``E[b, k, k'] = ||S_s Φ_k(x_b) − Φ_k'(S_s x_b)||² /
        ||S_s Φ_k(x_b)||²``, ``Φ`` the :meth:`features`, ``S_s Φ(x)`` the features of ``x`` resampled to the size of
        those of ``S_s x`` (:func:`~seunet_monai.layers.rescale.resize_features`).

        The network is equivariant when ``E[b, k, m(k)]`` is small for the matched group ``m(k)`` of each group
        (:func:`~seunet_monai.networks.equivariance.matched_groups` of the σ, e.g. :meth:`sigmas`), compared with
        ``E[b, k, k]``. The scale sweep measures it this way on every test scale. Call it in eval mode.

        Args:
            scale: the scale change ``s`` (> 0).
            x: the input ``(B, C, *spatial)``.
            x_scaled: ``S_s x`` when it is known exactly (e.g. the same continuous image sampled at pitch
                ``1 / s``); default: each item of ``x`` rescaled by :func:`~seunet_monai.layers.rescale.rescale_image`
                (the sweep's resampling), on the device of ``x``.
            reference: the features of ``x`` when they were computed already (the sweep computes them once for
                all its scales).
            axes: spatial axes rescaled (``None``: all), as for :func:`~seunet_monai.layers.rescale.rescale_image`.

        Returns:
            ``(B, Ω, Ω)`` float64 errors on the CPU (half-precision features are compared in float32).
        """
        with torch.no_grad():
            if x_scaled is None:
                x_scaled = torch.stack([rescale_image(item, scale, axes) for item in x])
            if reference is None:
                reference = self.features(x)
            test = self.features(x_scaled)

        def cpu(t: torch.Tensor) -> torch.Tensor:
            t = t.cpu()
            return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t

        reference, test = cpu(reference), cpu(test)
        return equivariance_matrix(resize_features(reference, test.shape[3:]), test)


def last_layer_log_sigmas(network: nn.Module, num_heads: int) -> tuple[torch.Tensor, str]:
    """``log σ`` of the heads' Ω scale groups (:meth:`MultiHeadNetwork.head_sigmas`) and where they came from.

    Args:
        network: any network; only a :class:`MultiHeadNetwork` has σ.
        num_heads: Ω (1 for a plain network).

    Returns:
        ``(log_sigmas (Ω,) float64, source)`` with ``source`` the layer name, or ``"head index"`` when the network
        has no σ for its Ω heads (then ``log σ_k = k``).
    """
    named = network.head_sigmas() if isinstance(network, MultiHeadNetwork) else None
    if named is not None and named[1].numel() == int(num_heads):
        return named[1].log(), named[0]
    return torch.arange(int(num_heads), dtype=torch.float64), "head index"
