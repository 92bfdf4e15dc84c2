"""The model variants of an experiment and the bundle commands that build them.

A variant differs from the bundle's default only by its override file ``configs/variants/NAME.json`` of the bundle
(:func:`seunet_monai.runtime.resources.bundle_path`), merged **last** (after ``train.json`` and, for evaluating,
``evaluate.json``) so that its keys win:

- ``seunet``: the bundle's default SEUNet (no override file),
- ``unet``: MONAI's ``BasicUNet`` (features 60..960, one head; the sweep reports it as ``head1`` with
  ``mean`` / ``pdist`` / ``pens`` equal to it),
- ``cnn``: :class:`~seunet_monai.networks.cnn.CNNUNet`, the SEUNet architecture and training path with
  learned 3×3 convolutions, one group, one head (the paper's conventional CNN, widths 60..960),
- ``sesn``: :class:`~seunet_monai.networks.sesn.SESNUNet`,
- ``disco``: :class:`~seunet_monai.networks.disco.DISCOUNet`,
- ``seunet_fixed`` / ``seunet_free``: the σ ablation (Table 3): ``sigma_mode`` ``"fixed"`` / ``"free"``;
- ``separation_boundary`` / ``separation_centre``: the SEUNet with a nucleus separation output (the bundle's
  ``separation`` key, :mod:`seunet_monai.transforms.separation`); not among :data:`DEFAULT_VARIANTS` (they need
  annotated instances, and answer another question than Table 2).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser

from seunet_monai.runtime.resources import bundle_path, config_path

__all__ = [
    "BUNDLE_DIR",
    "CONFIG_DIR",
    "DEFAULT_VARIANTS",
    "TINY_DATA",
    "TINY_SWEEP",
    "VARIANTS",
    "VariantSpec",
    "bundle_overrides",
    "cli_args",
    "cli_value",
    "config_files",
    "count_parameters",
]

BUNDLE_DIR = (
    bundle_path()
)  # the source checkout's bundle/ or the installed package data (seunet_monai.runtime.resources)
CONFIG_DIR = BUNDLE_DIR / "configs"


@dataclass(frozen=True)
class VariantSpec:
    """How one variant is built from the bundle.

    Args:
        override: file name under ``bundle/configs/variants/`` merged last, or None (the bundle default).
        width_key: ``network_def`` key holding the widths (``channels`` for SEUNet-like, ``features`` for
            ``BasicUNet``).
        tiny_widths: widths used with ``tiny=True``.
    """

    override: str | None
    width_key: str = "channels"
    tiny_widths: tuple[int, ...] = (5, 10, 20, 40, 80)


VARIANTS: dict[str, VariantSpec] = {
    "seunet": VariantSpec(None),
    "unet": VariantSpec("unet.json", "features", (5, 10, 20, 40, 80, 5)),
    "cnn": VariantSpec("cnn.json"),
    "sesn": VariantSpec("sesn.json"),
    "disco": VariantSpec("disco.json"),
    "seunet_fixed": VariantSpec("seunet_fixed.json"),
    "seunet_free": VariantSpec("seunet_free.json"),
    "separation_boundary": VariantSpec("separation_boundary.json"),
    "separation_centre": VariantSpec("separation_centre.json"),
}

#: the variants an experiment runs when none are named: the paper's models and the σ ablation
DEFAULT_VARIANTS = ("seunet", "unet", "cnn", "sesn", "disco", "seunet_fixed", "seunet_free")

#: tiny data (used when the embedded synthetic default is generated), patch and batch sizes
TINY_DATA: dict[str, Any] = {
    "synthetic#n_train": 4,
    "synthetic#n_val": 2,
    "synthetic#n_test": 2,
    "synthetic#size": 64,
    "patch_size": [64, 64],
    "shift": 8,
    "batch_size": 2,
}

#: tiny scale sweep settings (evaluating only)
TINY_SWEEP: dict[str, Any] = {"sweep#equivariance_images": 1, "sweep#equivariance_crop": 64, "sweep#num_examples": 1}


def config_files(spec: VariantSpec, evaluating: bool) -> list[str]:
    """The bundle configs of a variant's command (a missing one raises ``MissingPathError``, naming it)."""
    names = ["train.json"] + (["evaluate.json"] if evaluating else [])
    names += [] if spec.override is None else [f"variants/{spec.override}"]
    return [str(config_path(n)) for n in names]


def cli_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    return json.dumps(v)


def bundle_overrides(
    name: str,
    dataset_dir: str | os.PathLike,
    variant_dir: str | os.PathLike,
    epochs: int | None = None,
    tiny: bool = False,
    seed: int = 0,
    widths: Sequence[int] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The bundle overrides (``{key: value}``) shared by a variant's training and evaluating commands.

    Args:
        name: variant name (a key of :data:`VARIANTS`).
        dataset_dir: the dataset folder (``datalist.json``; generated there when absent).
        variant_dir: the variant's folder (``output_dir``; ``ckpt_dir`` is ``variant_dir/models``).
        epochs: training epochs (None: the bundle's default).
        tiny: shrink the network (``VARIANTS[name].tiny_widths``) and the data (:data:`TINY_DATA`).
        seed: the bundle's ``seed``.
        widths: the five level widths for every variant (overrides ``tiny``'s; ``BasicUNet`` gets the first
            width again as its last feature count, as in the paper's (60, ..., 960, 60)).
        extra: further bundle overrides (``{key: value}``), applied last.
    """
    spec = VARIANTS[name]
    vdir = Path(variant_dir).resolve()
    ov: dict[str, Any] = {
        "dataset_dir": str(Path(dataset_dir).resolve()),
        "output_dir": str(vdir),
        "ckpt_dir": str(vdir / "models"),
        "seed": int(seed),
    }
    if epochs is not None:
        ov["epochs"] = int(epochs)
    if tiny:
        ov[f"network_def#{spec.width_key}"] = list(spec.tiny_widths)
        ov.update(TINY_DATA)
    if widths is not None:
        w = [int(v) for v in widths]
        if len(w) != 5 or any(v < 1 for v in w):
            raise ValueError(f"widths must be 5 positive numbers (4 encoder levels + bottleneck), got {widths}.")
        ov[f"network_def#{spec.width_key}"] = w + [w[0]] if spec.width_key == "features" else w
    ov.update(dict(extra or {}))
    return ov


def cli_args(overrides: Mapping[str, Any]) -> list[str]:
    return [a for k, v in overrides.items() for a in (f"--{k}", cli_value(v))]


def count_parameters(name: str, overrides: Mapping[str, Any]) -> int:
    """Trainable parameters of variant ``name``'s ``network_def`` with ``overrides`` (built on the CPU)."""
    parser = ConfigParser()
    parser.read_config(config_files(VARIANTS[name], evaluating=False))
    for k, v in overrides.items():
        if k.startswith("network_def") or k in ("num_classes", "fusion"):
            parser[k] = v
    net = parser.get_parsed_content("network_def", instantiate=True)
    return int(sum(p.numel() for p in net.parameters() if p.requires_grad))
