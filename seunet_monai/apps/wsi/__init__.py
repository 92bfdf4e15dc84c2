"""Whole-slide and large-image inference: readers, tissue detection, a streaming patch inferer and writers."""

from .accumulator import RawMask, SlideAccumulator
from .inferers import BandMerger, HeadsPatchPredictor, PatchPreprocessing, TissueWSISplitter
from .instances import Instance, iter_instances, split_touching
from .readers import (
    IMAGE_SUFFIXES,
    MAX_IMAGE_PIXELS,
    PLAUSIBLE_MPP,
    SLIDE_SUFFIXES,
    SUPPORTED_SUFFIXES,
    ImageTooLargeError,
    PILImageReader,
    ResampledLevelReader,
    TiffRegionReader,
    choose_level,
    implausible_resolution,
    level_mpp,
    make_reader,
    read_region,
    read_thumbnail,
)
from .tissue import TISSUE_METHODS, TissueLocationFilter, detect_tissue, is_colourless
from .workflow import (
    SlideInferenceWorkflow,
    bundle_version,
    list_inputs,
    output_names,
    patch_stain_transform,
    training_mpp,
)
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
    "PLAUSIBLE_MPP",
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
    "bundle_version",
    "choose_level",
    "detect_tissue",
    "implausible_resolution",
    "is_colourless",
    "iter_instances",
    "level_mpp",
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
