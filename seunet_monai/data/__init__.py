"""Data: file I/O, the ``datalist.json`` contract, the synthetic H&E generator (and dataset preparation)."""

from seunet_monai.data.datalist import (
    DATALIST_NAME,
    SPLITS,
    DatalistError,
    datalist_exists,
    datalist_path,
    load_datalist,
    write_datalist,
)
from seunet_monai.data.io import (
    ImageReadError,
    atomic_save_png,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    prepare_output_dir,
    read_label,
    read_rgb,
)

# The generator pulls in scipy: imported on first use (PEP 562) to keep `import seunet_monai.data` light.
_LAZY = {"TISSUE_CLASSES": "synthetic", "make_synthetic_dataset": "synthetic", "synthesize_sample": "synthetic"}
# Dataset preparation and stain normalisation (also lazy: they import MONAI's pathology transforms / scikit-image).
_LAZY.update(
    {
        "NormalizeStainsVahadane": "stain",
        "NormalizeStainsVahadaned": "stain",
        "NormalizeStainsMacenko": "stain",
        "NormalizeStainsMacenkod": "stain",
        "get_stain_normalizer": "stain",
        "prepare_monuseg": "monuseg",
        "parse_aperio_xml": "monuseg",
        "rasterise_regions": "monuseg",
        "prepare_bcss": "bcss",
        "PreparationError": "preparation",
    }
)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"seunet_monai.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'seunet_monai.data' has no attribute {name!r}")


__all__ = [
    "DATALIST_NAME",
    "SPLITS",
    "DatalistError",
    "datalist_exists",
    "datalist_path",
    "load_datalist",
    "write_datalist",
    "ImageReadError",
    "atomic_save_png",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "prepare_output_dir",
    "read_label",
    "read_rgb",
    "TISSUE_CLASSES",
    "make_synthetic_dataset",
    "synthesize_sample",
]
__all__ += [
    "NormalizeStainsVahadane",
    "NormalizeStainsVahadaned",
    "NormalizeStainsMacenko",
    "NormalizeStainsMacenkod",
    "get_stain_normalizer",
    "prepare_monuseg",
    "parse_aperio_xml",
    "rasterise_regions",
    "prepare_bcss",
    "PreparationError",
]
