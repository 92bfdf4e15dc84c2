"""Fixtures of the fusion tests: the toy networks of the evaluation tests (known heads and σ)."""

from tests.evaluation.conftest import plain_pointwise, toy_heads  # noqa: F401 - fixtures, found by pytest by name
