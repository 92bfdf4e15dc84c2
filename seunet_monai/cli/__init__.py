"""Command-line entry points, installed as console scripts by ``pip install`` (see ``pyproject.toml``).

=========================  ==========================================================  =========================
console script             what it does                                                 module
=========================  ==========================================================  =========================
``seunet-prepare-monuseg`` MoNuSeg (official layout) -> dataset folder + datalist.json  :mod:`.prepare_monuseg`
``seunet-prepare-bcss``    BCSS regions + masks -> 5-class tiled dataset folder         :mod:`.prepare_bcss`
``seunet-make-synthetic``  synthetic H&E-like dataset (any magnification)               :mod:`.make_synthetic`
``seunet-experiment``      train and scale-sweep several variants, then compare them   :mod:`.experiment`
``seunet-compare``         merge scale-sweep outputs into one comparison                :mod:`.compare`
``seunet-scale-shift``     train at scale 1, test on generated sets at other scales    :mod:`.scale_shift`
=========================  ==========================================================  =========================

Every ``main(argv=None)`` returns the exit status (0 done, 1 a variant failed, 2 bad input with one ``error:``
line). ``scripts/*.py`` in the source repository are thin wrappers around the same functions, and
``python -m seunet_monai bundle-path`` prints the bundle folder (see :mod:`seunet_monai.resources`).
"""
