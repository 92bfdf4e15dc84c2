"""H&E stain normalisation: the estimation of stain matrices and concentrations
(:mod:`~seunet_monai.data.stain.estimation`), the normalising MONAI transforms (Vahadane, Macenko;
:mod:`~seunet_monai.data.stain.normalizers`) and the fitted reference a model carries, ``stain_reference.json``
(:mod:`~seunet_monai.data.stain.reference`).

Import from the modules themselves: this package hands no names on.
"""
