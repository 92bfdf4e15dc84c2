"""Evaluation across scales (the paper, sec. 4.2; ``bundle/docs/README.md``, Evaluation): the scale sweep and what
it reports.

- :mod:`~seunet_monai.evaluation.sweep`: :class:`~seunet_monai.evaluation.sweep.ScaleSweep` (the bundle's
  ``sweep`` component) and ``run_scale_sweep``, the loop; :mod:`~seunet_monai.evaluation.sweep_predict`: one image
  rescaled and predicted; :mod:`~seunet_monai.evaluation.sweep_scoring`: its scores, scale estimate and instance
  metrics; :mod:`~seunet_monai.evaluation.sweep_results`: what the sweep accumulates and the results it makes of it;
  :mod:`~seunet_monai.evaluation.outputs`: the files it writes.
- :mod:`~seunet_monai.evaluation.heads`: per-head probabilities and last-layer features of any network.
- :mod:`~seunet_monai.evaluation.items`: the test items (iterate, name, check).
- :mod:`~seunet_monai.evaluation.equivariance`: all equivariance code (eq. 10 / 12, group matching, tables).
- :mod:`~seunet_monai.evaluation.calibration`: measuring the ``"scale"`` fusion's calibration on validation images
  (one pass and the profile: :mod:`~seunet_monai.evaluation.calibration_measure`);
  :mod:`~seunet_monai.evaluation.checkpoint_calibration`: calibrating a checkpoint file (the bundle's
  ``calibration`` component); :mod:`~seunet_monai.evaluation.whole_images`: tiles put back into whole images.
- :mod:`~seunet_monai.evaluation.fusion_validation`: the ``"scale"`` fusion scored leave-one-image-out
  (``scripts/scale_fusion_cv.py``) from a cache of the calibration's measurements
  (:mod:`~seunet_monai.evaluation.fusion_cache`, filled by :mod:`~seunet_monai.evaluation.fusion_cache_build`).
- :mod:`~seunet_monai.evaluation.report`, :mod:`~seunet_monai.evaluation.plots`: tables and figures.
- :mod:`~seunet_monai.evaluation.compare`: several sweeps merged (``scripts/compare.py``).

Import from the modules themselves: this package hands no names on.
"""
