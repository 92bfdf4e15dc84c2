"""Evaluation across scales (the paper, sec. 4.2; ``bundle/docs/README.md``, Evaluation): the scale sweep and what it reports.

Modules (import them directly; nothing is imported here, to keep ``import seunet_monai`` light):

- :mod:`~seunet_monai.evaluation.rescale`: image / label / feature rescaling, the paper's 17 scales.
- :mod:`~seunet_monai.evaluation.heads`: per-head probabilities and last-layer features of any network.
- :mod:`~seunet_monai.evaluation.equivariance`: eq. 10 / 12 measured on a network and an image.
- :mod:`~seunet_monai.evaluation.scale_estimation`: relative scale from the winning heads.
- :mod:`~seunet_monai.evaluation.sweep`: :func:`~seunet_monai.evaluation.sweep.run_scale_sweep`.
- :mod:`~seunet_monai.evaluation.report`, :mod:`~seunet_monai.evaluation.plots`: tables and figures.
- :mod:`~seunet_monai.evaluation.compare`: several sweeps merged (``scripts/compare.py``).
"""
