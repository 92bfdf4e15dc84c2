"""Command-line entry points, installed as console scripts by ``pip install`` (see ``pyproject.toml``).

- ``seunet-prepare-monuseg`` (:mod:`.prepare_monuseg`): MoNuSeg (official layout) -> dataset folder + datalist.json;
- ``seunet-prepare-bcss`` (:mod:`.prepare_bcss`): BCSS regions + masks -> 5-class tiled dataset folder;
- ``seunet-make-synthetic`` (:mod:`.make_synthetic`): synthetic H&E-like dataset (any magnification);
- ``seunet-make-synthetic-volumes`` (:mod:`.make_synthetic_volumes`): synthetic 3D nuclei volumes (NIfTI);
- ``seunet-experiment`` (:mod:`.experiment`): train and scale-sweep several variants, then compare them;
- ``seunet-compare`` (:mod:`.compare`): merge scale-sweep outputs into one comparison;
- ``seunet-scale-shift`` (:mod:`.scale_shift`): train at scale 1, test on generated sets at other scales.

Every ``main(argv=None)`` returns the exit status (0 done, 1 a variant failed, 2 bad input with one ``error:``
line). ``scripts/*.py`` in the source repository are thin wrappers around the same functions, and
``python -m seunet_monai bundle-path`` prints the bundle folder (see :mod:`seunet_monai.runtime.resources`).
"""
