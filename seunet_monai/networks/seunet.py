"""The Scale-Equivariant UNet (SEUNet), sec. 3.1 and Fig. 1 of Yang et al.

Y. Yang, S. Dasmahapatra, S. Mahmoodi, "Scale-Equivariant UNet for Histopathology Image Segmentation".

A UNet of 9 blocks of two Gaussian-derivative layers (18 GD layers), 4 max-pool down-samplings and 4
up-samplings with skip connections. The first layer lifts the image to Ω scale groups; from then on every
layer is group-wise, so the groups are Ω independent sub-networks sharing all weights and differing only by
their learned scales σ. Each group ends in a head (a 1×1 convolution, shared by default), giving Ω
predictions that a multi-head loss trains (eq. 8-9) and a per-pixel fusion combines (sec. 3.4).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers.utils import get_act_layer, get_norm_layer
from torch import nn

from ..errors import ExportError
from ..fusion.scale import signature_width, upgrade_signature_state
from ..fusion.strategies import parse_strategy
from ..layers.gd_conv import GDConv
from ..layers.group_ops import unfold_groups
from ..layers.scales import SIGMA_MODES, default_sigma_ranges, validate_sigma_bounds
from .base import MultiHeadNetwork

__all__ = ["GDBlock", "SEUNet"]

_NUM_LEVELS = 5
_NUM_LAYERS = 18


class GDBlock(nn.Module):
    """Two GD layers, each followed by norm and activation (and optional dropout), on folded groups.

    Args:
        conv1: first GD layer (lifting or group-wise).
        conv2: second, group-wise GD layer.
        spatial_dims: 2 or 3.
        norm: MONAI norm spec (``"batch"``, ``("instance", {...})``, ...) or None; applied to the folded
            tensor, so batch statistics and the affine are shared by all groups.
        act: MONAI activation spec.
        dropout: dropout probability after the block.

    Shapes: ``(B or B·Ω, C_in, *spatial) -> (B·Ω, C_out, *spatial)``.
    """

    def __init__(
        self,
        conv1: nn.Module,
        conv2: nn.Module,
        spatial_dims: int,
        norm: str | tuple | None = "batch",
        act: str | tuple = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = conv1
        self.norm1 = _norm(norm, spatial_dims, conv1.out_channels)
        self.act1 = get_act_layer(act)
        self.conv2 = conv2
        self.norm2 = _norm(norm, spatial_dims, conv2.out_channels)
        self.act2 = get_act_layer(act)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._act(self.act1, self._conv_norm(self.conv1, self.norm1, x))
        return self.drop(self._act(self.act2, self._conv_norm(self.conv2, self.norm2, x)))

    def _act(self, act: nn.Module, x: torch.Tensor) -> torch.Tensor:
        # in inference a ReLU overwrites the fresh conv output instead of allocating another tensor of its size
        if type(act) is nn.ReLU and not self.training and not torch.is_grad_enabled() and not torch.jit.is_tracing():
            return x.relu_()
        return act(x)

    @staticmethod
    def _conv_norm(conv: nn.Module, norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
        # a GD layer takes its norm: in inference it folds a batch norm into its cached filters (one pass over
        # the activations less per layer); elsewhere it applies it as norm(conv(x))
        if isinstance(conv, GDConv) and not isinstance(norm, nn.Identity):
            return conv(x, norm=norm)
        return norm(conv(x))


def _norm(norm: str | tuple | None, spatial_dims: int, channels: int) -> nn.Module:
    if norm is None:
        return nn.Identity()
    return get_norm_layer(norm, spatial_dims=spatial_dims, channels=channels)


class _Up(nn.Module):
    """×2 interpolation then a 1×1 convolution (shared by all groups) halving the channels."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.mode = "bilinear" if spatial_dims == 2 else "trilinear" if spatial_dims == 3 else "linear"
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
        self.proj = conv(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        # project first (fewer channels to interpolate); both are linear, so the order does not matter
        return F.interpolate(self.proj(x), size=tuple(size), mode=self.mode, align_corners=False)


class _GroupHeads(nn.Module):
    """One 1×1 head per scale group (``share_heads=False``): ``(Ω·B, F, *spatial) -> (Ω·B, C, *spatial)``."""

    def __init__(self, num_scales: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_scales, out_channels, in_channels))
        self.bias = nn.Parameter(torch.zeros(num_scales, out_channels))
        bound = 1.0 / in_channels**0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        omega = self.weight.shape[0]
        xs = x.reshape(omega, x.shape[0] // omega, *x.shape[1:])
        out = torch.einsum("kbf...,kcf->kbc...", xs, self.weight)
        out = out + self.bias.reshape(omega, 1, -1, *([1] * (x.ndim - 2)))
        return out.reshape(x.shape[0], -1, *x.shape[2:])


class SEUNet(MultiHeadNetwork):
    """Scale-Equivariant UNet with Gaussian-derivative layers and learnable, range-constrained scales.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels (3 for RGB H&E).
        out_channels: number of classes C.
        num_scales: number of scale groups (and heads) Ω.
        channels: total widths of the five UNet levels (encoder levels 1-4 and the bottleneck), each split
            evenly over the Ω groups; the paper's conventional CNN uses (60, 120, 240, 480, 960).
        order: highest Gaussian-derivative order N (the paper uses 1).
        sigma_ranges: σ intervals of the 18 GD layers, a list of 18 lists of Ω pairs ``(b, a)``, in order
            enc1.conv1, enc1.conv2, ..., bottleneck, dec4, ..., dec1.conv2. Default:
            :func:`~seunet_monai.layers.scales.default_sigma_ranges` with ``sigma_width``, ``sigma_growth`` and
            ``sigma_layout`` (first-layer midpoints 0.5, 1, ..., 2.5 and sizes 3, 5, 7, 9, 11 for Ω = 5;
            ranges growing to the bottleneck).
        sigma_width: spacing of the groups' σ midpoints and width of each interval in the first layer
            (default ranges only).
        sigma_layout: ``"centred"`` (default; midpoints ``k · sigma_width``, the paper's σ = 0.5·k, so groups
            ``k`` and ``2k`` are a factor 2 apart) or ``"offset"`` (intervals ``((k-1)·w, k·w)``, the layout
            of this project's first releases; default ranges only).
        sigma_growth: relative widening of the intervals per UNet level (default ranges only).
        sigma_mode: ``"constrained"`` (eq. 6), ``"fixed"`` (midpoints, not trained) or ``"free"`` (Table 3).
        discretization: ``"hybrid"`` (sampled Gaussian + central differences; fast, sound at fine scales)
            or ``"sampled"`` (the paper's sampled Hermite closed form). See
            :mod:`~seunet_monai.layers.gaussian_basis`.
        max_half_width: optional cap on every filter's half-width ``⌈2σ⌉``.
        norm: MONAI norm spec or None (batch norm pools its statistics over batch and groups).
        act: MONAI activation spec.
        dropout: dropout after each block.
        share_heads: one 1×1 head shared by all groups (default, as the authors' code) or one per group.
        fusion: eval-mode fusion of the heads: ``"pens"`` (default), ``"pdist"``, ``"mean"``, ``"scale"`` or
            ``"head:k"`` (:mod:`~seunet_monai.fusion`). ``"scale"`` (:mod:`~seunet_monai.fusion.scale`) reads the
            calibration buffers below (PEns with a warning while they are NaN).
        profile_scales: the scales at which the ``"scale"`` fusion's calibration (buffers ``fusion_scales``,
            ``fusion_iou`` ``(P, Ω)``, ``fusion_signature`` ``(P, 3Ω)``) is measured; default the 17 sweep
            scales ``2^(k/4)``, ``k = -8..8``. The buffers are part of the state dict (saved with the weights)
            and hold NaN until a calibration fills them.
        implementation: GD layers' ``"fast"`` path or the ``"dense"`` reference.
        aux_channels: ``A``, extra maps in ``[0, 1]`` every head predicts after its ``C`` class scores (default 0;
            1 for a nucleus separation map, :mod:`~seunet_monai.transforms.separation`). A second 1×1 head on the
            same features of each group (shared by the groups like the class head, or one per group), so the
            maps follow the groups' scales as the classes do; the class head and its outputs are unchanged.

    Forward:
        ``x``: ``(B, in_channels, *spatial)``, any spatial size (padded with zeros at the far end to a
        multiple of 16 and cropped back). In training mode returns the per-head logits
        ``(B, Ω, C, *spatial)``. In eval mode returns the fused class probabilities ``(B, C, *spatial)``
        (strategy ``self.fusion``), or the per-head probabilities ``(B, Ω, C, *spatial)`` when
        ``self.output_heads`` is True. With ``aux_channels`` the ``A`` maps follow the classes on the same axis
        (logits in training, sigmoid probabilities fused with the class fusion's head weights in eval mode; see
        :mod:`~seunet_monai.networks.base`).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 2,
        num_scales: int = 5,
        channels: Sequence[int] = (60, 120, 240, 480, 960),
        order: int = 1,
        sigma_ranges: Sequence[Sequence[Sequence[float]]] | None = None,
        sigma_width: float = 0.5,
        sigma_growth: float = 0.25,
        sigma_layout: str = "centred",
        sigma_mode: str = "constrained",
        discretization: str = "hybrid",
        max_half_width: int | None = None,
        norm: str | tuple | None = "batch",
        act: str | tuple = "relu",
        dropout: float = 0.0,
        share_heads: bool = True,
        fusion: str = "pens",
        implementation: str = "fast",
        profile_scales: Sequence[float] | None = None,
        aux_channels: int = 0,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        if num_scales < 1:
            raise ValueError(f"num_scales must be >= 1, got {num_scales}.")
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}.")
        if int(aux_channels) != aux_channels or aux_channels < 0:
            raise ValueError(f"aux_channels must be an integer >= 0, got {aux_channels}.")
        channels = tuple(int(c) for c in channels)
        if len(channels) != _NUM_LEVELS:
            raise ValueError(
                f"channels must give {_NUM_LEVELS} widths (4 encoder levels + bottleneck), got {channels}."
            )
        for c in channels:
            if c < num_scales or c % num_scales:
                raise ValueError(
                    f"every width in channels must be a positive multiple of num_scales={num_scales} (split evenly "
                    f"over the scale groups), got {channels}."
                )
        if sigma_mode not in SIGMA_MODES:
            raise ValueError(f"sigma_mode must be one of {SIGMA_MODES}, got {sigma_mode!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        parse_strategy(fusion)
        if sigma_ranges is None:
            sigma_ranges = default_sigma_ranges(num_scales, _NUM_LAYERS, sigma_width, sigma_growth, sigma_layout)
        if len(sigma_ranges) != _NUM_LAYERS:
            raise ValueError(
                f"sigma_ranges must give {_NUM_LAYERS} layers of {num_scales} (b, a) pairs, got {len(sigma_ranges)}."
            )

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.aux_channels = int(aux_channels)
        self.num_scales = num_scales
        self.channels = channels
        self.order = order
        self.sigma_mode = sigma_mode
        self.discretization = discretization
        self.share_heads = share_heads
        self.fusion = fusion
        self._conv_kwargs = dict(
            order=order,
            sigma_mode=sigma_mode,
            discretization=discretization,
            max_half_width=max_half_width,
            implementation=implementation,
        )

        names = [f"enc{i}" for i in range(1, 5)] + ["bottleneck"] + [f"dec{i}" for i in range(4, 0, -1)]
        self._layer_names = [f"{n}.conv{j}" for n in names for j in (1, 2)]
        ranges = {
            name: validate_sigma_bounds(r, num_scales, f"sigma_ranges[{i}] ({name})")
            for i, (name, r) in enumerate(zip(self._layer_names, sigma_ranges))
        }
        widths = [c // num_scales for c in channels]  # per group

        def block(name: str, cin: int, cout: int, lifting: bool = False) -> GDBlock:
            c1 = self._make_conv(cin, cout, ranges[f"{name}.conv1"], lifting, f"{name}.conv1")
            c2 = self._make_conv(cout, cout, ranges[f"{name}.conv2"], False, f"{name}.conv2")
            return GDBlock(c1, c2, spatial_dims, norm, act, dropout)

        self.enc1 = block("enc1", in_channels, widths[0], lifting=True)
        self.enc2 = block("enc2", widths[0], widths[1])
        self.enc3 = block("enc3", widths[1], widths[2])
        self.enc4 = block("enc4", widths[2], widths[3])
        self.bottleneck = block("bottleneck", widths[3], widths[4])
        self.up4 = _Up(spatial_dims, widths[4], widths[3])
        self.dec4 = block("dec4", 2 * widths[3], widths[3])
        self.up3 = _Up(spatial_dims, widths[3], widths[2])
        self.dec3 = block("dec3", 2 * widths[2], widths[2])
        self.up2 = _Up(spatial_dims, widths[2], widths[1])
        self.dec2 = block("dec2", 2 * widths[1], widths[1])
        self.up1 = _Up(spatial_dims, widths[1], widths[0])
        self.dec1 = block("dec1", 2 * widths[0], widths[0])
        if profile_scales is None:
            profile_scales = [2.0 ** (k / 4.0) for k in range(-8, 9)]
        p = len(profile_scales)
        self.register_buffer("fusion_scales", torch.tensor([float(v) for v in profile_scales], dtype=torch.float32))
        self.register_buffer("fusion_iou", torch.full((p, num_scales), float("nan")))
        self.register_buffer("fusion_signature", torch.full((p, signature_width(num_scales)), float("nan")))
        self.pool = {2: nn.MaxPool2d, 3: nn.MaxPool3d}[spatial_dims](kernel_size=2)
        self.head = self._make_head(widths[0], out_channels)
        self.aux_head = self._make_head(widths[0], self.aux_channels) if self.aux_channels else None

    def _make_head(self, in_channels: int, out_channels: int) -> nn.Module:
        """A 1×1 head shared by the groups (``share_heads``) or one per group."""
        if self.share_heads:
            return {2: nn.Conv2d, 3: nn.Conv3d}[self.spatial_dims](in_channels, out_channels, kernel_size=1)
        return _GroupHeads(self.num_scales, in_channels, out_channels)

    def _make_conv(self, cin: int, cout: int, bounds, lifting: bool, name: str) -> nn.Module:
        """Build one scale-group layer; subclasses (other equivariant layers) override this."""
        return GDConv(self.spatial_dims, cin, cout, bounds, lifting=lifting, name=name, **self._conv_kwargs)

    # ------------------------------------------------------------------ forward
    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"SEUNet expects input of shape (B, {self.in_channels}, *spatial) with {self.spatial_dims} spatial "
                f"dims, got {tuple(x.shape)}."
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(f"SEUNet expects {self.in_channels} input channels, got {x.shape[1]}.")
        size = tuple(x.shape[2:])
        mult = 2 ** (_NUM_LEVELS - 1)
        # Always pad by mult - 1 and crop to the next multiple of mult, with no Python branch on the size: the
        # same ops run for every size, so a traced export (torch.jit.trace records the sizes as graph values)
        # pads correctly at any input size, not only at the size it was traced at (issue 11).
        x = F.pad(x, [0, mult - 1] * self.spatial_dims)
        x = x[(..., *[slice(0, (s + mult - 1) // mult * mult) for s in size])]
        # channels-last: the depthwise smoothing and the small per-group convolutions run 2-3x faster on CPU
        # (oneDNN) in this format, and every later op keeps it
        fmt = torch.channels_last if self.spatial_dims == 2 else torch.channels_last_3d
        return x.contiguous(memory_format=fmt), size

    def _decoder_features(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        x, size = self._pad(x)
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        e4 = self.enc4(self.pool(e3))
        b = self.bottleneck(self.pool(e4))
        d4 = self.dec4(torch.cat([e4, self.up4(b, e4.shape[2:])], dim=1))
        d3 = self.dec3(torch.cat([e3, self.up3(d4, e3.shape[2:])], dim=1))
        d2 = self.dec2(torch.cat([e2, self.up2(d3, e2.shape[2:])], dim=1))
        d1 = self.dec1(torch.cat([e1, self.up1(d2, e1.shape[2:])], dim=1))
        return d1, size

    @staticmethod
    def _crop(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        # unconditional slice (a view when nothing is cut): traced exports crop to the size of each input
        return x[(..., *[slice(0, s) for s in size])]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last GD layer's features before the heads, ``(B, Ω, F, *spatial)`` (for eq. 10 and 12)."""
        d1, size = self._decoder_features(x)
        return self._crop(unfold_groups(d1, self.num_scales), size)

    def forward_heads(self, x: torch.Tensor) -> torch.Tensor:
        """Per-head logits ``(B, Ω, C, *spatial)`` in any mode (``(B, Ω, C + A, *spatial)`` with ``aux_channels``)."""
        d1, size = self._decoder_features(x)
        logits = self.head(d1)
        if self.aux_head is not None:
            logits = torch.cat([logits, self.aux_head(d1)], dim=1)
        logits = unfold_groups(logits.contiguous(), self.num_scales)
        return self._crop(logits, size)

    def upgrade_state_dict(self, state_dict: dict, prefix: str = "", warn: bool = True) -> None:
        """Bring, in place, a state dict of an older release to this layout: a scale-fusion calibration saved with
        the 0.3.0 signature (``(P, 2Ω)``) is cleared, not refused, so the weights still load. Used on every load
        and by :func:`seunet_monai.checkpoint.check_state_dict`."""
        upgrade_signature_state(state_dict, prefix + "fusion_signature", self.num_scales, warn=warn)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        self.upgrade_state_dict(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __prepare_scriptable__(self) -> "SEUNet":
        """Called by ``torch.jit.script``: refuse with one clear line (kernel sizes follow σ through Python integer
        arithmetic, which TorchScript cannot compile); tracing exports a model correct at every input size."""
        raise ExportError(
            f"{type(self).__name__} cannot be exported with torch.jit.script; export it by tracing instead "
            '(ckpt_export ... --use_trace True --input_shape "[1,3,128,128]"; the traced model is correct at every '
            "input size)."
        )

    # ------------------------------------------------------------------ reporting
    def gd_layers(self) -> "OrderedDict[str, GDConv]":
        """The GD layers in network order, by name (``"enc1.conv1"`` ... ``"dec1.conv2"``)."""
        out: OrderedDict[str, GDConv] = OrderedDict()
        for name in self._layer_names:
            block, conv = name.split(".")
            out[name] = getattr(getattr(self, block), conv)
        return out

    def sigmas(self) -> "OrderedDict[str, torch.Tensor]":
        """Current σ ``(Ω,)`` of every GD layer, detached, in network order."""
        return OrderedDict((n, m.sigma().detach()) for n, m in self.gd_layers().items() if hasattr(m, "sigma"))

    def sigma_bounds(self) -> "OrderedDict[str, torch.Tensor]":
        """Configured σ intervals ``(Ω, 2)`` as ``(b, a)`` of every GD layer, in network order."""
        return OrderedDict((n, m.scales.bounds().detach()) for n, m in self.gd_layers().items() if hasattr(m, "scales"))

    def first_layer_filters(self) -> torch.Tensor:
        """Dense filters of the lifting layer per group, ``(Ω, C_out, C_in, K, ..., K)`` (Fig. 4)."""
        return self.enc1.conv1.dense_filters().detach()

    def extra_repr(self) -> str:
        return (
            f"spatial_dims={self.spatial_dims}, in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"num_scales={self.num_scales}, channels={self.channels}, order={self.order}, "
            f"sigma_mode={self.sigma_mode!r}, discretization={self.discretization!r}, "
            f"share_heads={self.share_heads}, fusion={self.fusion!r}"
            + (f", aux_channels={self.aux_channels}" if self.aux_channels else "")
        )
