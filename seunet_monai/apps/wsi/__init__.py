"""Whole-slide and large-image inference: readers, tissue detection, a streaming patch inferer and writers."""

from .accumulator import RawMask, SlideAccumulator
from .inferers import BandMerger, HeadsPatchPredictor, PatchPreprocessing, TissueWSISplitter
from .instances import Instance, iter_instances, split_touching
from .readers import (
    IMAGE_SUFFIXES,
    MAX_IMAGE_PIXELS,
    SLIDE_SUFFIXES,
    SUPPORTED_SUFFIXES,
    ImageTooLargeError,
    PILImageReader,
    ResampledLevelReader,
    TiffRegionReader,
    choose_level,
    make_reader,
    read_region,
    read_thumbnail,
)
from .tissue import TISSUE_METHODS, TissueLocationFilter, detect_tissue
from .workflow import SlideInferenceWorkflow, list_inputs, output_names, patch_stain_transform, training_mpp
from .writers import PALETTE, GeoJSONWriter, write_mask_tiff, write_overlay, write_palette_png

__all__ = [
    "BandMerger",
    "GeoJSONWriter",
    "HeadsPatchPredictor",
    "IMAGE_SUFFIXES",
    "ImageTooLargeError",
    "Instance",
    "MAX_IMAGE_PIXELS",
    "PALETTE",
    "PILImageReader",
    "PatchPreprocessing",
    "RawMask",
    "ResampledLevelReader",
    "SLIDE_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "SlideAccumulator",
    "SlideInferenceWorkflow",
    "TISSUE_METHODS",
    "TiffRegionReader",
    "TissueLocationFilter",
    "TissueWSISplitter",
    "choose_level",
    "detect_tissue",
    "iter_instances",
    "list_inputs",
    "make_reader",
    "output_names",
    "patch_stain_transform",
    "read_region",
    "read_thumbnail",
    "split_touching",
    "training_mpp",
    "write_mask_tiff",
    "write_overlay",
    "write_palette_png",
]
