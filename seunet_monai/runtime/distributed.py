"""Rank and barrier of a distributed run, through :mod:`ignite.distributed`, and the network a wrapper holds.

``ignite.distributed`` answers for the native ``torch.distributed`` process group (what
``bundle/configs/multi_gpu_train.json`` initialises with ``torchrun``) and for a single process alike: rank 0,
world size 1 and a barrier that returns at once.
"""

from __future__ import annotations

from typing import Any

import ignite.distributed as idist
import torch

__all__ = ["barrier", "is_main_process", "unwrap"]


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed run (``ignite.distributed.get_rank() != 0``)."""
    return idist.get_rank() == 0


def barrier() -> None:
    """Wait for every process of a distributed run (no-op in a single process)."""
    if idist.get_world_size() > 1:
        idist.barrier()


def unwrap(module: Any) -> Any:
    """The wrapped module of ``DistributedDataParallel`` / ``DataParallel`` (its ``.module``), else ``module``.

    Anything with a ``.module`` attribute that is a :class:`torch.nn.Module` counts as a wrapper; other objects
    (``None``, a loss, an optimizer) are returned as they are.
    """
    inner = getattr(module, "module", None)
    return inner if isinstance(inner, torch.nn.Module) else module
