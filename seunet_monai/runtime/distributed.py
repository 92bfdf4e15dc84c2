"""Rank and barrier of a distributed run, through :mod:`ignite.distributed`.

``ignite.distributed`` answers for the native ``torch.distributed`` process group (what
``bundle/configs/multi_gpu_train.json`` initialises with ``torchrun``) and for a single process alike: rank 0,
world size 1 and a barrier that returns at once.
"""

from __future__ import annotations

import ignite.distributed as idist

__all__ = ["barrier", "is_main_process"]


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a distributed run (``ignite.distributed.get_rank() != 0``)."""
    return idist.get_rank() == 0


def barrier() -> None:
    """Wait for every process of a distributed run (no-op in a single process)."""
    if idist.get_world_size() > 1:
        idist.barrier()
