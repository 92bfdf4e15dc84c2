"""Scale fusion: the Ω heads' per-head outputs -> one prediction, and what the heads say about the input's scale.

- :mod:`~seunet_monai.fusion.heads`: the paper's fusions (mean, PDist, PEns, ``head:k``), margins, winning head;
- :mod:`~seunet_monai.fusion.scale`: the ``"scale"`` fusion (beyond the paper): scale signature, calibration
  profile, scale estimate and head weights;
- :mod:`~seunet_monai.fusion.strategies`: :func:`~seunet_monai.fusion.strategies.fuse`, every named fusion;
- :mod:`~seunet_monai.fusion.auxiliary`: extra per-head maps (e.g. the nucleus separation map) fused with the
  head weights of a class fusion;
- :mod:`~seunet_monai.fusion.estimation`: the sweep's uncalibrated relative-scale estimate from the heads'
  confidence.

Tensors only: this package sits under :mod:`seunet_monai.networks` (whose eval-mode output is a fused
prediction) and above :mod:`seunet_monai.layers`. Building the calibration profile from validation images is
an evaluation workflow (:mod:`seunet_monai.evaluation.calibration`). Import from the modules themselves.
"""
