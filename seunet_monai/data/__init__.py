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
from seunet_monai.data.synthetic import TISSUE_CLASSES, make_synthetic_dataset, synthesize_sample

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
