"""Specification of ``seunet_monai.evaluation.sweep_results``: the state a sweep starts from, and the evaluation
folder's earlier results archived, refused or replaced."""

from __future__ import annotations

import pytest

from seunet_monai.evaluation.outputs import OUTPUT_FILES
from seunet_monai.evaluation.sweep_results import STATUS_FILE, SweepState, prepare_eval_dir


def test_a_sweep_starts_with_every_strategy_and_the_fusions_for_instance_metrics(toy_heads) -> None:
    state = SweepState.start(toy_heads, [0.5, 1.0, 3.0], partner_tolerance=0.1, instance_scales=[1.0])
    assert state.omega == 2 and state.strategies == ["head1", "head2", "mean", "pdist", "pens"]
    assert state.instance_strategies == ["mean", "pdist", "pens"] and state.instance_scales == {1.0}
    assert state.example_at == {0.5, 1.0, 3.0}  # the sweep scales nearest to min, 1 and max
    assert set(state.partners) == set(state.eq_sum) == set(state.time_per_scale) == {0.5, 1.0, 3.0}
    assert state.sigma_source == "layer2"  # the toy's last σ layer
    every = SweepState.start(toy_heads, [1.0], partner_tolerance=0.1, instance_strategies="all")
    assert every.instance_strategies == every.strategies
    with pytest.raises(ValueError, match="instance_strategies.*'nope'"):
        SweepState.start(toy_heads, [1.0], partner_tolerance=0.1, instance_strategies=["nope"])


def test_earlier_results_are_archived_whole_refused_or_replaced(tmp_path) -> None:
    eval_dir = tmp_path / "eval"
    assert prepare_eval_dir(eval_dir, "error") == (eval_dir, None) and eval_dir.is_dir()  # nothing earlier
    for name in (*OUTPUT_FILES, STATUS_FILE):
        (eval_dir / name).write_text("earlier")
    (eval_dir / "tensorboard").mkdir()
    (eval_dir / "notes.txt").write_text("not the sweep's")
    with pytest.raises(FileExistsError, match="scale_sweep.csv exists"):
        prepare_eval_dir(eval_dir, "error")
    assert prepare_eval_dir(eval_dir, "overwrite") == (eval_dir, f"overwriting earlier results in {eval_dir}")
    assert (eval_dir / "scale_sweep.json").is_file()  # replaced by the writes to come, not removed
    _, message = prepare_eval_dir(eval_dir, "archive")
    (archive,) = (eval_dir / "archive").iterdir()
    assert message == f"earlier results in {eval_dir} moved to {archive}"
    assert sorted(p.name for p in archive.iterdir()) == sorted([*OUTPUT_FILES, STATUS_FILE, "tensorboard"])
    assert sorted(p.name for p in eval_dir.iterdir()) == ["archive", "notes.txt"]
