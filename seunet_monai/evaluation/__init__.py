"""Evaluation across scales (the paper, sec. 4.2; ``bundle/docs/README.md``, Evaluation): the scale sweep and what
it reports.

Modules (imported on first use, to keep ``import seunet_monai`` light):

- :mod:`~seunet_monai.evaluation.sweep`: :class:`~seunet_monai.evaluation.sweep.ScaleSweep` (the bundle's
  ``sweep`` component; also ``seunet_monai.evaluation.ScaleSweep``) and ``run_scale_sweep``.
- :mod:`~seunet_monai.evaluation.rescale`: image / label / feature rescaling, the paper's 17 scales.
- :mod:`~seunet_monai.evaluation.heads`: per-head probabilities and last-layer features of any network.
- :mod:`~seunet_monai.evaluation.items`: the test items (iterate, name, check).
- :mod:`~seunet_monai.evaluation.equivariance`: all equivariance code (eq. 10 / 12, group matching, tables).
- :mod:`~seunet_monai.evaluation.scale_estimation`: relative scale from the winning heads.
- :mod:`~seunet_monai.evaluation.calibration`: calibration of the ``"scale"`` fusion.
- :mod:`~seunet_monai.evaluation.report`, :mod:`~seunet_monai.evaluation.plots`: tables and figures.
- :mod:`~seunet_monai.evaluation.compare`: several sweeps merged (``scripts/compare.py``).
"""

from typing import Any

__all__ = ["ScaleSweep", "run_scale_sweep"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from seunet_monai.evaluation import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
