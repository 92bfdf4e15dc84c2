"""Deprecated: the pieces of this module moved to small modules named for their job.

- bundle paths: :mod:`seunet_monai.paths` (``bundle_root``, ``resolve_path``);
- pre-run checks: :mod:`seunet_monai.checks` (``check_arguments``, ``check_scales``, ``check_label_values``,
  ``check_outputs``);
- checkpoints: :mod:`seunet_monai.checkpoint` (``read_state_dict``, ``check_state_dict``,
  ``is_training_checkpoint``);
- the run's dataset: :mod:`seunet_monai.data.dataset` (``ensure_dataset``, ``split_items``, ``list_images``,
  ``copy_stain_reference``); the PIL converter: :func:`seunet_monai.data.io.to_rgb`;
- rank and barrier: :mod:`seunet_monai.distributed` (``is_main_process``);
- metric files: :mod:`seunet_monai.handlers.metrics_saver` (``save_metrics``).

Kept so that older configs and imports (``seunet_monai.bundle_utils.X``) keep working.
"""

from __future__ import annotations

from seunet_monai.checkpoint import check_state_dict, is_training_checkpoint, read_state_dict
from seunet_monai.checks import check_arguments, check_label_values, check_outputs, check_scales
from seunet_monai.data.dataset import IMAGE_SUFFIXES, copy_stain_reference, ensure_dataset, list_images, split_items
from seunet_monai.data.io import to_rgb
from seunet_monai.distributed import barrier as _barrier  # noqa: F401 - old private name
from seunet_monai.distributed import is_main_process
from seunet_monai.handlers.metrics_saver import save_metrics
from seunet_monai.paths import BUNDLE_ROOT_ENV, _root_from_config_file, bundle_root, resolve_path  # noqa: F401

__all__ = [
    "IMAGE_SUFFIXES",
    "bundle_root",
    "check_arguments",
    "check_label_values",
    "check_outputs",
    "check_scales",
    "check_state_dict",
    "copy_stain_reference",
    "ensure_dataset",
    "is_main_process",
    "is_training_checkpoint",
    "list_images",
    "read_state_dict",
    "resolve_path",
    "save_metrics",
    "split_items",
    "to_rgb",
]
