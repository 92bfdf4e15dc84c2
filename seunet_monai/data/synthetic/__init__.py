"""Synthetic data with exact labels, generated on demand: H&E-like histology
(:mod:`~seunet_monai.data.synthetic.histology`, rendering the tissue model of
:mod:`~seunet_monai.data.synthetic.tissue`) and fluorescence-like 3D nuclei
(:mod:`~seunet_monai.data.synthetic.volumes`); :mod:`~seunet_monai.data.synthetic.common` holds what both
generators share (seeds, argument checks, the locked and atomic publication of a dataset folder).

Import from the modules themselves: this package hands no names on.
"""
