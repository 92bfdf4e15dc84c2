"""Small helpers on networks shared by the engines, handlers and evaluation."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["unwrap"]


def unwrap(module: Any) -> Any:
    """The wrapped module of ``DistributedDataParallel`` / ``DataParallel`` (its ``.module``), else ``module``.

    Anything with a ``.module`` attribute that is a :class:`torch.nn.Module` counts as a wrapper; other objects
    (``None``, a loss, an optimizer) are returned as they are.
    """
    inner = getattr(module, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else module
