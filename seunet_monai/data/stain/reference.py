"""The fitted stain reference of a model: :data:`STAIN_REFERENCE_FILE` (``stain_reference.json``), written next
to a prepared dataset, copied next to the checkpoints and shipped with the bundle's model, so that evaluation
and inference apply exactly the normalisation the training data had.

A record holds ``method`` (one of :data:`~seunet_monai.data.stain.normalizers.STAIN_METHODS`), ``reference``
(where it was fitted), ``target_stain_matrix`` (2x3, rows H and E) and ``target_max_concentrations`` (2), as
written by :meth:`~seunet_monai.data.stain.normalizers.StainNormalizer.reference_record`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform

from seunet_monai.data.stain.normalizers import STAIN_METHODS, StainNormalizer, get_stain_normalizer
from seunet_monai.errors import ConfigValueError, DataError, MissingPathError

__all__ = ["STAIN_REFERENCE_FILE", "load_stain_reference", "stain_transform", "StainNormalizeFromReferenced"]

#: File name of the fitted stain reference: method, target stain matrix and 99th-percentile concentrations.
STAIN_REFERENCE_FILE = "stain_reference.json"

logger = logging.getLogger(__name__)


def load_stain_reference(path: str | os.PathLike, method: str | None = None, **kwargs: Any) -> StainNormalizer | None:
    """Array stain transform from a :data:`STAIN_REFERENCE_FILE` record (``None`` when its method is ``none``).

    Args:
        path: the JSON file written by a preparation script (or shipped in ``bundle/models/``).
        method: override the recorded method (``"none"`` gives ``None``).
        kwargs: passed to the transform (e.g. ``channel_dim=0``).

    Raises:
        MissingPathError / DataError: missing or malformed file (one line naming it, the key and the fix).
    """
    path = Path(path)
    fix = "replace it with the stain_reference.json written beside the model's training data, or pass --stain_norm none"
    if not path.is_file():
        raise MissingPathError(
            f"stain reference {path} not found; prepare the data with a stain normalisation, or turn it off "
            "with --stain_norm none."
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable stain reference record ({type(e).__name__}: {e}); {fix}.") from e
    if not isinstance(record, dict):
        raise DataError(f"{path}: a stain reference record is a JSON object, got {type(record).__name__}; {fix}.")
    if not method and "method" not in record:
        raise DataError(f"{path}: missing key 'method' of a stain reference record; {fix}.")
    m = str(method or record["method"]).lower()
    if method and m not in STAIN_METHODS:
        raise ConfigValueError(
            f"unknown stain normalisation {method!r} (key 'stain_norm'); expected auto or one of {list(STAIN_METHODS)}."
        )
    if m not in STAIN_METHODS:
        raise DataError(
            f"{path}: unknown stain normalisation {m!r} (key 'method'); expected one of {list(STAIN_METHODS)}; {fix}."
        )
    if m == "none":
        return None
    missing = [k for k in ("target_stain_matrix", "target_max_concentrations") if k not in record]
    if missing:
        raise DataError(f"{path}: missing key(s) {missing} of a stain reference record; {fix}.")
    normalizer = get_stain_normalizer(m, reference=None, **kwargs)
    if normalizer is None:
        return None
    normalizer.set_target(record["target_stain_matrix"], record["target_max_concentrations"], str(path), f"; {fix}")
    return normalizer


def stain_transform(
    stain_norm: str, stain_reference: str | os.PathLike, channel_dim: int = 0
) -> StainNormalizer | None:
    """The stain normaliser a model was trained with, from its ``stain_reference.json``, or ``None``.

    Used by evaluation and inference so that they feed the network what training fed it (the preparation
    scripts normalise the training data and write the reference next to the dataset; the bundle ships it next
    to ``model.pt``).

    Args:
        stain_norm: ``"none"`` (off), ``"auto"`` (the method recorded in the file) or a method name of
            :data:`~seunet_monai.data.stain.normalizers.STAIN_METHODS`.
        stain_reference: the reference record; when it is absent the normalisation is skipped with one warning.
        channel_dim: 0 for ``(3, H, W)`` images (after ``EnsureChannelFirst``), -1 for ``(H, W, 3)``.
    """
    if str(stain_norm).lower() == "none":
        return None
    if not Path(stain_reference).is_file():
        logger.warning(
            f"stain normalisation skipped: no stain reference {stain_reference} (keys 'stain_reference', "
            "'stain_norm'; set --stain_norm none to silence this)."
        )
        return None
    method = None if str(stain_norm).lower() == "auto" else str(stain_norm)
    return load_stain_reference(stain_reference, method=method, channel_dim=channel_dim)


class StainNormalizeFromReferenced(MapTransform):
    """Dictionary transform applying :func:`stain_transform` (``stain_norm``, ``stain_reference``) to ``keys``.

    A pass-through when ``stain_norm`` is ``"none"`` or the reference file is absent. Tiles with too little
    tissue are returned unchanged (:class:`~seunet_monai.data.stain.normalizers.LowTissueWarning`, shown once per
    call site by Python's warning filter), never NaN. The image keeps its type and metadata.

    Args:
        keys: image keys (RGB, channel-first by default).
        stain_norm: ``"auto"``, ``"none"`` or a method name.
        stain_reference: path of the ``stain_reference.json`` record.
        channel_dim: 0 for ``(3, H, W)`` (default), -1 for ``(H, W, 3)``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        stain_norm: str = "auto",
        stain_reference: str | os.PathLike = STAIN_REFERENCE_FILE,
        channel_dim: int = 0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.normalizer = stain_transform(stain_norm, stain_reference, channel_dim=channel_dim)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.normalizer is None:
            return d
        for key in self.key_iterator(d):
            d[key] = self.normalizer(d[key])
        return d
