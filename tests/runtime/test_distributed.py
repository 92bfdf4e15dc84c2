"""Specification of ``seunet_monai.runtime.distributed``: rank and barrier through ignite.distributed."""

from __future__ import annotations

import ignite.distributed as idist

from seunet_monai.runtime.distributed import barrier, is_main_process


def test_a_single_process_is_the_main_one_and_its_barrier_returns():
    assert idist.get_world_size() == 1
    assert is_main_process() is True
    barrier()  # no process group: returns at once


def test_the_rank_comes_from_ignite(monkeypatch):
    monkeypatch.setattr(idist, "get_rank", lambda: 1)
    assert is_main_process() is False
