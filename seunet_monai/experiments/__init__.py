"""Experiments: model variants trained and scale-swept through the bundle's own commands, then compared.

- :mod:`~seunet_monai.experiments.variants`: the variants and the bundle overrides that build them;
- :mod:`~seunet_monai.experiments.state`: the files a variant's folder keeps (runner state, status files);
- :mod:`~seunet_monai.experiments.runner`: :func:`~seunet_monai.experiments.runner.run_experiment`, resumable,
  one job at a time (``seunet-experiment``);
- :mod:`~seunet_monai.experiments.comparison`: the comparison of the finished variants;
- :mod:`~seunet_monai.experiments.presets`: the named protocols (``--preset monuseg-cpu``) and the paper's numbers;
- :mod:`~seunet_monai.experiments.reproduction`: running a preset and its report (``reproduction.md``);
- :mod:`~seunet_monai.experiments.instance_comparison`: the report of an instance preset (``instances.md``);
- :mod:`~seunet_monai.experiments.scale_shift`: the controlled scale-shift benchmark (``seunet-scale-shift``).

Import from the modules themselves.
"""
