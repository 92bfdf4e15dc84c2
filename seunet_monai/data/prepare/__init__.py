"""Dataset preparation: raw downloads to a dataset folder with ``datalist.json`` (functions only; the command
lines are in :mod:`seunet_monai.cli`).

- :mod:`~seunet_monai.data.prepare.monuseg`: MoNuSeg (``seunet-prepare-monuseg``), its inputs found and checked
  by :mod:`~seunet_monai.data.prepare.monuseg_inputs`.
- :mod:`~seunet_monai.data.prepare.bcss`: BCSS (``seunet-prepare-bcss``), its code-to-class mapping in
  :mod:`~seunet_monai.data.prepare.bcss_classes`.
- :mod:`~seunet_monai.data.prepare.common`: what both share (tiling, validation split, bad-file log, stain
  reference).

Import from the modules themselves: this package hands no names on.
"""
