"""Checks of the input-independent settings of ``run inferring`` (:class:`~.workflow.SlideInferenceWorkflow`):
each returns the normalised value or raises :class:`~seunet_monai.errors.ConfigValueError` in one line naming
the key; deprecated keys are ignored with one warning."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch

from seunet_monai.errors import ConfigValueError
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.checks import as_flag
from seunet_monai.runtime.distributed import unwrap
from seunet_monai.transforms.separation import check_separation_mode

__all__ = ["check_geojson_simplify", "check_separation", "class_names_for", "warn_deprecated"]

logger = logging.getLogger(__name__)


def check_geojson_simplify(value: float) -> float:
    """``geojson_simplify`` as a float: a tolerance >= 0 in pixels (0 = exact outlines)."""
    try:
        tolerance = float(value)
    except (TypeError, ValueError):
        tolerance = math.nan
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ConfigValueError(f"geojson_simplify must be a tolerance >= 0 in pixels (0 = off), got {value!r}.")
    return tolerance


def warn_deprecated(watershed: bool, watershed_min_distance: int | None, scale_reference: float | None) -> None:
    """One warning per deprecated setting that is set (``watershed`` true, ``watershed_min_distance`` or
    ``scale_reference`` not ``None``); they change nothing."""
    if as_flag(watershed, "watershed") or watershed_min_distance is not None:
        logger.warning(
            "watershed and watershed_min_distance are deprecated and ignored: nuclei are separated by "
            "NucleusInstances (marker_h_um, min_nucleus_area_um2) in images and slides alike."
        )
    if scale_reference is not None:
        logger.warning(
            "scale_reference is deprecated and ignored: the estimated scale is the calibrated one of the scale "
            "fusion (calibrate the network with `run calibrating`)."
        )


def check_separation(network: torch.nn.Module, separation: str | None) -> str | None:
    """``separation`` (``"boundary"``, ``"centre"`` or ``None``) checked against ``network``: named exactly when
    the network predicts a separation map (``aux_channels``)."""
    separation = check_separation_mode(separation)
    net = unwrap(network)
    aux = int(net.aux_channels) if isinstance(net, MultiHeadNetwork) else 0
    if aux and separation is None:
        raise ConfigValueError(
            f"separation: the network predicts {aux} extra map(s) (aux_channels) but separation is not set; give "
            "the separation the model was trained with ('boundary' or 'centre')."
        )
    if separation is not None and not aux:
        raise ConfigValueError(
            f"separation {separation!r} needs a network that predicts the map (aux_channels 1), but this one "
            "predicts none; leave separation null for this model."
        )
    return separation


def class_names_for(num_classes: int, class_names: Sequence[str] | None = None) -> list[str]:
    """``class_names`` as a list, else ``background``, ``Nucleus`` for two classes and ``class0``, ``class1``,
    ... otherwise."""
    if class_names:
        return list(class_names)
    return ["background", "Nucleus"] if num_classes == 2 else [f"class{k}" for k in range(num_classes)]
