"""The bundle's checkpoints: one reader for ``model.pt`` (the best model) and ``last.pt`` (resumable), and
:func:`atomic_torch_save`, which writes ``last.pt`` and the calibrated ``model.pt``.

Both files keep the network's state dict under one key, :data:`MODEL_KEY` (``"model"``):

- ``model.pt`` is written by MONAI's ``CheckpointSaver`` with ``save_dict={"model": network}``; Ignite stores a
  single object unwrapped, so the file *is* the state dict (a dict holding it under ``"model"`` is read too);
- ``last.pt`` (:class:`seunet_monai.handlers.ResumableCheckpoint`) holds ``{"model": ..., "optimizer": ...,
  "scheduler": ..., ...}``. Files written before the key was unified hold the network under ``"network"``
  (:data:`LEGACY_MODEL_KEYS`); they are still read.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from seunet_monai.errors import CheckpointError, MissingPathError
from seunet_monai.networks.base import MultiHeadNetwork
from seunet_monai.runtime.distributed import unwrap
from seunet_monai.runtime.files import atomic_write_bytes

__all__ = [
    "atomic_torch_save",
    "LEGACY_MODEL_KEYS",
    "MODEL_KEY",
    "check_state_dict",
    "is_training_checkpoint",
    "load_network",
    "model_state",
    "read_checkpoint",
    "read_state_dict",
]

MODEL_KEY = "model"
"""Key of the network's state dict in ``model.pt`` (when not bare) and ``last.pt``."""
LEGACY_MODEL_KEYS = ("network",)
"""Keys older ``last.pt`` files used for the network's state dict."""


def is_training_checkpoint(data: Any) -> bool:
    """Whether loaded checkpoint content is a resumable training checkpoint (``last.pt``: the network's state
    dict under ``"model"`` or the legacy ``"network"``, next to ``"optimizer"``) rather than a model state dict."""
    return (
        isinstance(data, Mapping)
        and "optimizer" in data
        and any(isinstance(data.get(k), Mapping) for k in (MODEL_KEY, *LEGACY_MODEL_KEYS))
    )


def read_checkpoint(checkpoint: str | os.PathLike) -> Any:
    """The content of a ``.pt`` file (``torch.load(weights_only=True)`` on the CPU).

    Raises:
        MissingPathError: the file does not exist.
        CheckpointError: it cannot be read (naming the file).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise MissingPathError(f"checkpoint {str(path)!r} not found (train first, or set --ckpt_dir).")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure becomes a message naming the file
        raise CheckpointError(f"checkpoint {str(path)!r} could not be read: {e}") from e


def model_state(content: Any, key: str | None = MODEL_KEY) -> Any:
    """The network's state dict inside loaded checkpoint content: the entry ``key`` (or a legacy key) of a dict
    checkpoint, else the content itself (a bare state dict, or ``key`` is ``None``)."""
    if key is None or not isinstance(content, Mapping):
        return content
    for k in (key, *LEGACY_MODEL_KEYS):
        if isinstance(content.get(k), Mapping):
            return content[k]
    return content


def read_state_dict(checkpoint: str | os.PathLike, key: str | None = MODEL_KEY) -> tuple[Any, Mapping[str, Any]]:
    """Read a checkpoint file: ``(whole content, the network's state dict)`` (see :func:`model_state`).

    Raises:
        MissingPathError / CheckpointError: missing, unreadable, or no state dict (naming the file).
    """
    content = read_checkpoint(checkpoint)
    return content, _checked_state(content, checkpoint, key)


def _checked_state(content: Any, checkpoint: str | os.PathLike, key: str | None) -> Mapping[str, Any]:
    state = model_state(content, key)
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {str(checkpoint)!r} holds no state dict (key {key!r}).")
    return state


def check_state_dict(
    module: torch.nn.Module,
    checkpoint: str | os.PathLike,
    key: str | None = MODEL_KEY,
    allow_training_checkpoint: bool = False,
) -> None:
    """Check that ``checkpoint`` holds weights for ``module`` (same parameter names and shapes).

    Meant to run before a ``CheckpointLoader`` so that a checkpoint of another architecture gives one clear
    error naming the file instead of a long ``load_state_dict`` trace, before anything is written.

    Args:
        module: the network (a ``DistributedDataParallel`` wrapper is unwrapped).
        checkpoint: the ``.pt`` file.
        key: the entry holding the network's state dict in a dict checkpoint (``None``: the file is the
            state dict itself). A file that is a bare state dict is accepted for any ``key``.
        allow_training_checkpoint: accept a resumable ``last.pt``; by default it is refused, as evaluation and
            inference expect a model file (``model.pt``, the best validation epoch).

    Raises:
        MissingPathError: when the file is missing.
        CheckpointError: when it cannot be read, is a resumable ``last.pt`` where a model file is expected,
            or its parameter names or shapes differ from ``module``'s.
    """
    path = Path(checkpoint)
    content = read_checkpoint(path)
    if is_training_checkpoint(content) and not allow_training_checkpoint:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a resumable training checkpoint (last.pt: {', '.join(sorted(content))}), "
            f"not a model file like model.pt; evaluate {str(path.parent / 'model.pt')!r} (the best model) or set "
            "--eval_checkpoint to a model file."
        )
    data = _checked_state(content, path, key)  # the file is read once
    net = unwrap(module)
    if isinstance(net, MultiHeadNetwork):  # older layouts the network converts on load (SEUNet)
        data = dict(data)
        net.upgrade_state_dict(data, warn=False)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in data.items() if hasattr(v, "shape")}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatches (e.g. {k!r}: checkpoint {found[k]} vs network {expected[k]})")
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit the configured network {type(net).__name__} "
            f"(key 'network_def'): {'; '.join(parts)}. Was it trained with other network_def arguments?"
        )


def load_network(
    network: torch.nn.Module, checkpoint: str | os.PathLike, key: str | None = MODEL_KEY
) -> tuple[Any, Mapping[str, Any]]:
    """Load the weights of ``checkpoint`` into ``network`` (unwrapped), strictly.

    Returns:
        ``(whole content, state dict)`` as :func:`read_state_dict` gives them.

    Raises:
        MissingPathError / CheckpointError: missing, unreadable or unfitting checkpoint (naming the file).
    """
    content, state = read_state_dict(checkpoint, key)
    net = unwrap(network)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            f"checkpoint {str(checkpoint)!r} does not fit {type(net).__name__} (key 'network_def'): "
            f"{str(e).splitlines()[0]}"
        ) from e
    return content, state


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, through :func:`atomic_write_bytes` (serialised in memory:
    checkpoints here are a few MB)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())
