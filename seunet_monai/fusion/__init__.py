"""Scale fusion: the Ω heads' per-head outputs -> one prediction, and what the heads say about the input's scale.

- :mod:`~seunet_monai.fusion.heads`: the paper's fusions (mean, PDist, PEns, ``head:k``), margins, winning head,
  the heads' votes and confidence;
- :mod:`~seunet_monai.fusion.scale`: the ``"scale"`` fusion (beyond the paper): scale signature, calibration
  profile, the scale estimate (the package's one, calibrated) and head weights;
- :mod:`~seunet_monai.fusion.scale_rules`: candidate rules for the ``"scale"`` fusion's head weights, scored out of
  sample by :mod:`seunet_monai.evaluation.fusion_validation`;
- :mod:`~seunet_monai.fusion.strategies`: :func:`~seunet_monai.fusion.strategies.fuse`, every named fusion;
- :mod:`~seunet_monai.fusion.auxiliary`: extra per-head maps (e.g. the nucleus separation map) fused with the
  head weights of a class fusion.

Tensors only: this package sits under :mod:`seunet_monai.networks` (whose eval-mode output is a fused
prediction) and above :mod:`seunet_monai.layers`, so it takes what it needs of a network (its calibration
buffers, the heads' σ) as arguments. Measuring the calibration profile on validation images needs the inferer,
so it lives above, in :mod:`seunet_monai.evaluation.calibration`. Import from the modules themselves.
"""
