"""Uniform access to per-head probabilities and last-layer features of SEUNet-like and plain networks.

A multi-head network (:class:`~seunet_monai.networks.base.MultiHeadNetwork`: SEUNet and the baselines) in eval
mode with ``output_heads = True`` returns per-head probabilities ``(B, Ω, C, *spatial)``, and ``features(x)``
returns the last layer's features ``(B, Ω, F, *spatial)``.
A plain network (e.g. MONAI ``BasicUNet``) returns logits ``(B, C, *spatial)`` and is treated as one head:
per-head probabilities are ``softmax(net(x), 1).unsqueeze(1)``; its "last-layer features" are the input
of the **last convolution executed** in the forward pass (for ``BasicUNet``: the input of ``final_conv``,
the 1×1 classifier), as ``(B, 1, F, *spatial)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn

from seunet_monai.networks.base import MultiHeadNetwork

__all__ = ["network_features", "num_heads", "output_heads_mode"]


def num_heads(network: nn.Module) -> int:
    """Number of heads Ω (1 for a plain network)."""
    return int(network.num_scales) if isinstance(network, MultiHeadNetwork) else 1


@contextmanager
def output_heads_mode(network: nn.Module) -> Iterator[nn.Module]:
    """Put ``network`` in eval mode with ``output_heads = True``; restore both afterwards."""
    was_training = network.training
    multihead = isinstance(network, MultiHeadNetwork)
    had = network.output_heads if multihead else None
    network.eval()
    if multihead:
        network.output_heads = True
    try:
        yield network
    finally:
        if multihead:
            network.output_heads = had
        network.train(was_training)


def network_features(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Last-layer features ``(B, Ω, F, *spatial)`` of ``network`` for input ``x`` (no gradients).

    Multi-head networks: ``network.features(x)``. Plain networks: the input of the last convolution
    module executed in ``network(x)`` (captured by forward pre-hooks), as one group ``(B, 1, F, *spatial)``.

    Raises:
        ValueError: when a plain network runs no convolution or its features don't match ``x``'s batch.
    """
    with torch.no_grad():
        if isinstance(network, MultiHeadNetwork):
            return network.features(x)
        captured: list[torch.Tensor] = []

        def hook(_module: nn.Module, args: tuple) -> None:
            captured.append(args[0])
            if len(captured) > 1:
                captured.pop(0)

        convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
        handles = [m.register_forward_pre_hook(hook) for m in network.modules() if isinstance(m, convs)]
        try:
            network(x)
        finally:
            for h in handles:
                h.remove()
        if not captured:
            raise ValueError(f"network_features: {type(network).__name__} has no features() and ran no convolution.")
        feats = captured[-1]
        if feats.shape[0] != x.shape[0] or feats.ndim != x.ndim:
            raise ValueError(
                f"network_features: captured features of shape {tuple(feats.shape)} for input {tuple(x.shape)}."
            )
        return feats.unsqueeze(1)
