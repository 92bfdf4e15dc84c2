"""Data: image files and their reading (:mod:`~seunet_monai.data.io`, :mod:`~seunet_monai.data.image_reader`),
nucleus annotations as masks (:mod:`~seunet_monai.data.annotations`), the ``datalist.json`` contract
(:mod:`~seunet_monai.data.datalist`), the dataset of a bundle run (:mod:`~seunet_monai.data.dataset`), volumes
(:mod:`~seunet_monai.data.volumes`), stain normalisation (:mod:`~seunet_monai.data.stain`), the synthetic
generators (:mod:`~seunet_monai.data.synthetic`) and dataset preparation (:mod:`~seunet_monai.data.prepare`).

Import from the modules themselves: this package hands no names on, so that ``import seunet_monai.data`` stays
light (the generators pull in scipy, stain normalisation scikit-image).
"""
