"""Whole-slide and large-image inference (``run inferring``): one input at a time, in bounded memory.

- reading: :mod:`~.readers` (which reader, regions, thumbnails), :mod:`~.tiff_reader`, :mod:`~.pil_reader`,
  :mod:`~.resampled_reader`; :mod:`~.resolution` (the level and µm per pixel inferred at);
- windows: :mod:`~.tissue` (which windows run), :mod:`~.splitter`, :mod:`~.merger`, :mod:`~.inferers` (the
  slide inferer and the network call), :mod:`~.accumulator` (where the finished rows go);
- outputs: :mod:`~.outputs` (names, staging), :mod:`~.writers` (files), :mod:`~.instances` and :mod:`~.objects`
  (objects, GeoJSON), :mod:`~.figures` and :mod:`~.maps` (pictures), :mod:`~.summary`, :mod:`~.provenance`;
- the loop: :mod:`~.pipeline` (one input, up to its finished windows), :mod:`~.settings` (checks of the run's
  settings), :mod:`~.workflow` (:class:`SlideInferenceWorkflow`, the ``evaluator`` of ``inference.json``).
"""

from .accumulator import RawMask, SlideAccumulator
from .figures import (
    OKABE_ITO,
    pick_regions,
    tissue_box,
    write_figures,
    write_image_overlay,
    write_region_crops,
    write_slide_overview,
)
from .inferers import HeadsPatchPredictor, PatchPreprocessing, SlideInferer, patch_stain_transform
from .instances import Instance, NucleusBand, iter_instances, iter_label_instances, iter_nucleus_bands
from .maps import window_map, write_head_map, write_scale_map
from .merger import BandMerger
from .objects import ASSUMED_MPP, write_components, write_nuclei
from .outputs import OUTPUT_FILES, list_inputs, output_names, output_stem
from .pil_reader import MAX_IMAGE_PIXELS, PILImageReader
from .provenance import bundle_version
from .readers import (
    SLIDE_SUFFIXES,
    SUPPORTED_SUFFIXES,
    WHOLE_IMAGE_SUFFIXES,
    make_reader,
    read_region,
    read_thumbnail,
)
from .resampled_reader import ResampledLevelReader
from .resolution import (
    PLAUSIBLE_MPP,
    ResolutionPlan,
    ResolutionPolicy,
    choose_level,
    implausible_resolution,
    level_mpp,
    training_mpp,
)
from .slide import InferredSlide
from .splitter import TissueWSISplitter, window_parameters
from .tiff_reader import TiffRegionReader
from .tissue import TISSUE_METHODS, TissueLocationFilter, detect_tissue, is_colourless
from .workflow import SlideInferenceWorkflow
from .writers import PALETTE, GeoJSONWriter, write_mask_tiff, write_palette_png

__all__ = [
    "ASSUMED_MPP",
    "BandMerger",
    "GeoJSONWriter",
    "HeadsPatchPredictor",
    "InferredSlide",
    "Instance",
    "MAX_IMAGE_PIXELS",
    "NucleusBand",
    "OKABE_ITO",
    "OUTPUT_FILES",
    "PALETTE",
    "PLAUSIBLE_MPP",
    "PILImageReader",
    "PatchPreprocessing",
    "RawMask",
    "ResampledLevelReader",
    "ResolutionPlan",
    "ResolutionPolicy",
    "SLIDE_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "SlideAccumulator",
    "SlideInferenceWorkflow",
    "SlideInferer",
    "TISSUE_METHODS",
    "TiffRegionReader",
    "TissueLocationFilter",
    "TissueWSISplitter",
    "WHOLE_IMAGE_SUFFIXES",
    "bundle_version",
    "choose_level",
    "detect_tissue",
    "implausible_resolution",
    "is_colourless",
    "iter_instances",
    "iter_label_instances",
    "iter_nucleus_bands",
    "level_mpp",
    "list_inputs",
    "make_reader",
    "output_names",
    "output_stem",
    "patch_stain_transform",
    "pick_regions",
    "read_region",
    "read_thumbnail",
    "tissue_box",
    "training_mpp",
    "window_map",
    "window_parameters",
    "write_components",
    "write_figures",
    "write_head_map",
    "write_image_overlay",
    "write_mask_tiff",
    "write_nuclei",
    "write_palette_png",
    "write_region_crops",
    "write_scale_map",
    "write_slide_overview",
]
