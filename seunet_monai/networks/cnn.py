"""The paper's "conventional CNN": the SEUNet architecture with ordinary learned 3×3 convolutions.

Yang et al. compare the SEUNet with a conventional CNN of channel counts 60, 120, 240, 480, 960 (the paper,
sec. 3.1, 4.3). MONAI's ``BasicUNet`` (variant ``unet``) differs from the SEUNet in more than its filters
(instance norm, LeakyReLU, transposed-convolution up-sampling), so a comparison with it confounds these
choices. :class:`CNNUNet` differs from :class:`~seunet_monai.networks.seunet.SEUNet` **only in its filters**:
the same 9 blocks of two layers, norm, activation, max-pool down-sampling, bilinear + 1×1 up-sampling, skip
connections, head, padding, loss and fusion path, with every Gaussian-derivative layer replaced by a learned
3×3 convolution, one group (Ω = 1) and one head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .seunet import SEUNet

__all__ = ["CNNUNet", "PlainConv"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}


class PlainConv(nn.Module):
    """A learned ``kernel_size`` convolution with zero padding (same size), no bias (norm follows).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd filter size (3).
        name: layer name for messages.

    Shapes: ``(B, C_in, *spatial) -> (B, C_out, *spatial)`` (one group: the folded batch is the batch).
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, name: str = "conv"
    ) -> None:
        super().__init__()
        if spatial_dims not in _CONV:
            raise ValueError(f"{name}: spatial_dims must be 2 or 3, got {spatial_dims}.")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"{name}: kernel_size must be odd and positive, got {kernel_size}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.name = name
        self.conv = _CONV[spatial_dims](in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def dense_filters(self) -> torch.Tensor:
        """The filters as one group, ``(1, C_out, C_in, K, ..., K)`` (the SEUNet's reporting layout)."""
        return self.conv.weight.unsqueeze(0)


class CNNUNet(SEUNet):
    """The SEUNet architecture with ordinary learned convolutions: one group, one head (the paper's CNN).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: number of classes C.
        num_scales: must be 1 (kept so that the bundle's ``network_def`` keys apply; ``cnn.json`` sets it).
        channels: widths of the five UNet levels; default the paper's (60, 120, 240, 480, 960).
        kernel_size: filter size of every layer (3).
        norm: MONAI norm spec or None (batch norm, as the SEUNet).
        act: MONAI activation spec (ReLU, as the SEUNet).
        dropout: dropout after each block.
        fusion: eval-mode fusion (with one head every strategy returns that head).
        aux_channels: extra maps after the classes (e.g. 1 for a separation map), as for the SEUNet.

    Forward: as :class:`~seunet_monai.networks.seunet.SEUNet` with Ω = 1: per-head logits ``(B, 1, C, *spatial)``
    in training, fused probabilities ``(B, C, *spatial)`` in eval mode (``(B, 1, C, *spatial)`` with
    ``output_heads``). ``sigmas()`` and ``sigma_bounds()`` are empty (no scales).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 2,
        num_scales: int = 1,
        channels: Sequence[int] = (60, 120, 240, 480, 960),
        kernel_size: int = 3,
        norm: str | tuple | None = "batch",
        act: str | tuple = "relu",
        dropout: float = 0.0,
        fusion: str = "pens",
        aux_channels: int = 0,
    ) -> None:
        if int(num_scales) != 1:
            raise ValueError(
                f"CNNUNet has one group and one head: num_scales must be 1, got {num_scales} "
                "(set network_def#num_scales to 1, as bundle/configs/variants/cnn.json does)."
            )
        self.kernel_size = int(kernel_size)
        super().__init__(
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            out_channels=out_channels,
            num_scales=1,
            channels=channels,
            sigma_mode="fixed",
            norm=norm,
            act=act,
            dropout=dropout,
            share_heads=True,
            fusion=fusion,
            aux_channels=aux_channels,
        )
        self.sigma_mode = "none (learned 3x3 convolutions)"

    def _make_conv(self, cin: int, cout: int, bounds, lifting: bool, name: str) -> nn.Module:
        """A :class:`PlainConv` (the σ ``bounds`` of the SEUNet layer do not apply)."""
        return PlainConv(self.spatial_dims, cin, cout, self.kernel_size, name=name)

    def extra_repr(self) -> str:
        return (
            f"spatial_dims={self.spatial_dims}, in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"channels={self.channels}, kernel_size={self.kernel_size}, fusion={self.fusion!r}"
            + (f", aux_channels={self.aux_channels}" if self.aux_channels else "")
        )
