"""Packaging details pyproject.toml cannot express: the top-level ``bundle/`` folder (the MONAI bundle, whose
layout is fixed) is shipped in the wheel as the package data ``seunet_monai/bundle``, read at run time through
``importlib.resources`` (``seunet_monai.runtime.resources.bundle_path``). Only the tracked bundle files go in: configs,
docs, licence, the pretrained ``model.pt`` and its stain reference; never generated data, logs or ``last.pt``.
Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

BUNDLE_FILES = [
    "LICENSE",
    "configs/*.json",
    "configs/*.conf",
    "configs/variants/*.json",
    "configs/variants/3d/*.json",
    "configs/schema/*.json",
    "docs/*.md",
    "docs/figures/*.png",
    "models/model.pt",
    "models/stain_reference.json",
]

setup(
    packages=find_packages(include=["seunet_monai", "seunet_monai.*"]) + ["seunet_monai.bundle"],
    package_dir={"seunet_monai.bundle": "bundle"},
    package_data={"seunet_monai.bundle": BUNDLE_FILES},
    include_package_data=False,
)
