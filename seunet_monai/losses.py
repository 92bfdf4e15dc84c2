"""Multi-head loss with learnable head weights (eq. 8-9 of Yang et al., "Scale-Equivariant UNet for
Histopathology Image Segmentation").

Every scale group k of the network has its own head giving class scores ŷ_k. The training loss is

    L = Σ_k ω_k l_k,      ω_k = (β_k + 1/Ω) / Σ_k' (β_k' + 1/Ω),      β = softmax(η),

where ``l_k`` is a per-head loss (cross-entropy in the paper, eq. 8) and ``η`` is a learnable vector
initialised at zero (so β, and ω, start uniform). Because ``Σ β = 1`` the denominator is the constant 2,
and every ω_k stays in ``[1/(2Ω), (Ω+1)/(2Ω)]``: no head can be switched off.

With ``aux_channels = A > 0`` every head also predicts ``A`` maps in ``[0, 1]`` after its class scores (e.g. the
nucleus separation map of :mod:`seunet_monai.transforms.separation`), and its loss becomes

    l_k = CE(ŷ_k, y) + λ · a_k,

where ``a_k`` is the mean over pixels and maps of a binary cross-entropy (default; soft targets for a regression
map in ``[0, 1]``) or squared error between the sigmoid of head k's extra logits and the target maps, ``λ`` the
``aux_weight`` (1 by default). The same ω_k weigh the sum, so the extra maps are trained with the paper's head
weights. Pixels whose class label is ``ignore_index`` are left out of ``a_k`` too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["AUX_LOSSES", "MultiHeadLoss"]

#: per-pixel losses of the extra maps (module docstring)
AUX_LOSSES = ("bce", "mse")


def _plain(t: torch.Tensor) -> torch.Tensor:
    """A plain ``torch.Tensor`` view (MONAI's MetaTensor makes every op slower); keeps autograd."""
    return t.as_tensor() if hasattr(t, "as_tensor") else torch.as_tensor(t)


class MultiHeadLoss(nn.Module):
    """Weighted sum of per-head losses with learnable weights (eq. 9).

    The module owns the parameter ``eta`` (η, shape ``(Ω,)``): pass ``loss.parameters()`` to the optimizer
    together with the network's, and save ``loss.state_dict()`` in checkpoints.

    Args:
        num_heads: Ω, the number of heads (scale groups).
        spatial_dims: number of spatial dimensions of the logits (2 for images).
        loss: per-head loss ``loss(logits (B, C, *spatial), target)`` returning a scalar. ``None`` (default)
            uses cross-entropy (eq. 8) with ``ignore_index``. Any torch or MONAI loss works; with a custom
            loss ``target`` is passed as given, with a channel dim ``(B, 1, *spatial)`` when
            ``target_channel_dim`` is True, else ``(B, *spatial)`` (long).
        ignore_index: label value excluded from the default cross-entropy (e.g. 255 for BCSS), or ``None``.
        learn_weights: when False, η is a buffer fixed at zero (uniform ω): the plain average of the heads.
        target_channel_dim: for a custom ``loss``, whether it expects the target as ``(B, 1, *spatial)``
            (MONAI's DiceLoss, DiceCELoss) rather than ``(B, *spatial)`` (torch's CrossEntropyLoss).
        aux_channels: ``A``, extra maps per head after the class logits (0: none, the paper's loss).
        aux_loss: ``"bce"`` (binary cross-entropy with logits) or ``"mse"`` (squared error of the sigmoid).
        aux_weight: ``λ`` (>= 0).

    Inputs:
        input: per-head logits ``(B, Ω, C, *spatial)`` (``(B, Ω, C + A, *spatial)`` with ``aux_channels``). When
            ``num_heads == 1`` a single-head ``(B, C, *spatial)`` tensor (a plain network) is accepted too.
        target: integer class labels ``(B, 1, *spatial)`` or ``(B, *spatial)`` (any numeric dtype); with
            ``aux_channels``, ``(B, 1 + A, *spatial)``: the class labels, then the target maps in ``[0, 1]`` (the
            layout :class:`~seunet_monai.transforms.separation.SeparationTargetd` writes).

    Returns:
        the scalar ``L = Σ_k ω_k l_k``. The per-head values of the last call are kept, detached, in
        ``last_head_losses`` (shape ``(Ω,)``; with ``aux_channels`` their ``λ · a_k`` part also in
        ``last_aux_losses``).

    Raises:
        ValueError: for bad arguments or inputs of the wrong shape.
    """

    def __init__(
        self,
        num_heads: int,
        spatial_dims: int = 2,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        ignore_index: int | None = None,
        learn_weights: bool = True,
        target_channel_dim: bool = False,
        aux_channels: int = 0,
        aux_loss: str = "bce",
        aux_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if int(num_heads) < 1:
            raise ValueError(f"MultiHeadLoss: num_heads must be >= 1, got {num_heads}.")
        if int(spatial_dims) < 1:
            raise ValueError(f"MultiHeadLoss: spatial_dims must be >= 1, got {spatial_dims}.")
        self.num_heads = int(num_heads)
        self.spatial_dims = int(spatial_dims)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.learn_weights = bool(learn_weights)
        self.target_channel_dim = bool(target_channel_dim)
        if int(aux_channels) != aux_channels or int(aux_channels) < 0:
            raise ValueError(f"MultiHeadLoss: aux_channels must be an integer >= 0, got {aux_channels}.")
        if aux_loss not in AUX_LOSSES:
            raise ValueError(f"MultiHeadLoss: aux_loss must be one of {AUX_LOSSES}, got {aux_loss!r}.")
        if not float(aux_weight) >= 0:
            raise ValueError(f"MultiHeadLoss: aux_weight must be >= 0, got {aux_weight}.")
        self.aux_channels = int(aux_channels)
        self.aux_loss = aux_loss
        self.aux_weight = float(aux_weight)
        if loss is None:
            ce_ignore = -100 if self.ignore_index is None else self.ignore_index
            self.head_loss: Callable = nn.CrossEntropyLoss(ignore_index=ce_ignore)
            self._default_loss = True
        else:
            if not callable(loss):
                raise ValueError(f"MultiHeadLoss: loss must be callable, got {type(loss).__name__}.")
            self.head_loss = loss
            self._default_loss = False
        eta = torch.zeros(self.num_heads)
        if self.learn_weights:
            self.eta = nn.Parameter(eta)
        else:
            self.register_buffer("eta", eta)
        self.register_buffer("last_head_losses", torch.zeros(self.num_heads), persistent=False)
        self.register_buffer("last_aux_losses", torch.zeros(self.num_heads), persistent=False)

    def reset_parameters(self) -> None:
        """Set η to zero, so that β (and ω) are uniform."""
        with torch.no_grad():
            self.eta.zero_()

    def betas(self) -> torch.Tensor:
        """β = softmax(η), shape ``(Ω,)``."""
        return torch.softmax(self.eta, dim=0)

    def weights(self) -> torch.Tensor:
        """ω of eq. 9, shape ``(Ω,)``: sums to 1, each in ``[1/(2Ω), (Ω+1)/(2Ω)]``. Differentiable in η."""
        shifted = self.betas() + 1.0 / self.num_heads
        return shifted / shifted.sum()

    def _split_heads(self, input: torch.Tensor) -> torch.Tensor:
        nd = self.spatial_dims
        if input.ndim == nd + 3:
            if input.shape[1] != self.num_heads:
                raise ValueError(
                    f"MultiHeadLoss: input has {input.shape[1]} heads (dim 1 of shape {tuple(input.shape)}), "
                    f"expected num_heads={self.num_heads}."
                )
            return input
        if input.ndim == nd + 2 and self.num_heads == 1:
            return input.unsqueeze(1)
        raise ValueError(
            f"MultiHeadLoss: input must be per-head logits (B, Ω={self.num_heads}, C, *spatial) with "
            f"{nd} spatial dims, got shape {tuple(input.shape)}."
        )

    def _prepare_target(self, target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        nd = self.spatial_dims
        target = _plain(target)
        if target.ndim == nd + 2:
            if target.shape[1] != 1:
                raise ValueError(
                    f"MultiHeadLoss: target must be class indices (B, 1, *spatial) or (B, *spatial), "
                    f"got shape {tuple(target.shape)}."
                )
            target = target[:, 0]
        if target.ndim != nd + 1:
            raise ValueError(
                f"MultiHeadLoss: target must be (B, 1, *spatial) or (B, *spatial) with {nd} spatial dims, "
                f"got shape {tuple(target.shape)}."
            )
        if target.shape[0] != logits.shape[0] or tuple(target.shape[1:]) != tuple(logits.shape[3:]):
            raise ValueError(
                f"MultiHeadLoss: target shape {tuple(target.shape)} does not match the logits' batch and spatial "
                f"shape {tuple(logits.shape)} (B, Ω, C, *spatial)."
            )
        return target.to(device=logits.device, dtype=torch.long)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = self._split_heads(_plain(input))
        if self.aux_channels:
            return self._forward_with_aux(logits, _plain(target))
        labels = self._prepare_target(target, logits)
        if not self._default_loss and self.target_channel_dim:
            labels = labels.unsqueeze(1)
        head_losses = torch.stack([self.head_loss(logits[:, k], labels) for k in range(self.num_heads)])
        self.last_head_losses = head_losses.detach()
        return (self.weights().to(head_losses) * head_losses).sum()

    def _forward_with_aux(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``Σ_k ω_k (l_k + λ a_k)`` of logits ``(B, Ω, C + A, *spatial)`` and a target ``(B, 1 + A, *spatial)``."""
        a, nd = self.aux_channels, self.spatial_dims
        if logits.shape[2] <= a:
            raise ValueError(
                f"MultiHeadLoss: aux_channels={a} needs logits with classes then {a} extra maps on dim 2, got "
                f"{tuple(logits.shape)} (does the network predict them? set its aux_channels)."
            )
        if target.ndim != nd + 2 or target.shape[1] != 1 + a:
            raise ValueError(
                f"MultiHeadLoss: aux_channels={a} needs the target (B, 1 + {a}, *spatial): class labels then the "
                f"target maps (seunet_monai.transforms.separation.SeparationTargetd), got shape {tuple(target.shape)}."
            )
        classes, extra = logits[:, :, :-a], logits[:, :, -a:]
        labels = self._prepare_target(target[:, :1], classes)
        maps = target[:, 1:].to(device=extra.device, dtype=extra.dtype)
        valid = None if self.ignore_index is None else (labels != self.ignore_index).unsqueeze(1).to(extra.dtype)
        class_labels = labels.unsqueeze(1) if not self._default_loss and self.target_channel_dim else labels
        head_losses, aux_losses = [], []
        for k in range(self.num_heads):
            head_losses.append(self.head_loss(classes[:, k], class_labels))
            aux_losses.append(self.aux_weight * self._aux_term(extra[:, k], maps, valid))
        aux = torch.stack(aux_losses)
        total = torch.stack(head_losses) + aux
        self.last_head_losses = total.detach()
        self.last_aux_losses = aux.detach()
        return (self.weights().to(total) * total).sum()

    def _aux_term(self, logits: torch.Tensor, maps: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """Mean per-pixel loss of one head's extra logits ``(B, A, *spatial)`` against ``maps`` (same shape)."""
        if self.aux_loss == "bce":
            per_pixel = F.binary_cross_entropy_with_logits(logits, maps, reduction="none")
        else:
            per_pixel = (torch.sigmoid(logits) - maps) ** 2
        if valid is None:
            return per_pixel.mean()
        weight = valid.expand_as(per_pixel)
        return (per_pixel * weight).sum() / weight.sum().clamp_min(1.0)

    def extra_repr(self) -> str:
        loss_name = "cross_entropy" if self._default_loss else type(self.head_loss).__name__
        return (
            f"num_heads={self.num_heads}, spatial_dims={self.spatial_dims}, loss={loss_name}, "
            f"ignore_index={self.ignore_index}, learn_weights={self.learn_weights}"
            + (
                f", aux_channels={self.aux_channels}, aux_loss={self.aux_loss}, aux_weight={self.aux_weight}"
                if self.aux_channels
                else ""
            )
        )
