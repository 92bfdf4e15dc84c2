"""Calibrating the ``"scale"`` fusion of a checkpoint file: the bundle's ``calibration`` component.

:class:`CheckpointCalibration` is configured once (``calibration`` in ``train.json``; ``calibrate.json`` points it at
the evaluation's checkpoint and data) and called by both ways a model gets calibrated: ``python -m monai.bundle run
calibrating`` (``"$@calibration()"``) and, when training completes,
:class:`~seunet_monai.handlers.calibration.ScaleFusionCalibration` (which adds the time budget taken from the
training, the status file and what a Ctrl-C leaves). Both go through :func:`calibrate_checkpoint`, which loads the
file, measures the calibration (:func:`~seunet_monai.evaluation.calibration.calibrate_scale_fusion`) and writes the
file back. :func:`load_bundle_setup` builds the network and the split of ``run calibrating`` outside the bundle's
runner (for tools that measure as the calibration does, e.g. ``scripts/scale_fusion_cv.py``).
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser

from seunet_monai.checkpoint import MODEL_KEY, atomic_torch_save, load_network
from seunet_monai.errors import ConfigValueError, MissingPathError
from seunet_monai.evaluation.calibration import DEFAULT_MAX_PIXELS, calibrate_scale_fusion, calibration_rows
from seunet_monai.fusion.scale import BUFFER_NAMES
from seunet_monai.runtime.distributed import unwrap
from seunet_monai.runtime.files import atomic_write_bytes, atomic_write_json
from seunet_monai.runtime.resources import config_path

__all__ = ["DEFAULT_TIME_FRACTION", "CheckpointCalibration", "calibrate_checkpoint", "load_bundle_setup"]

logger = logging.getLogger(__name__)

#: default time budget of a calibration that follows a training, as a fraction of the training's time
DEFAULT_TIME_FRACTION = 0.2


def calibrate_checkpoint(
    network: torch.nn.Module,
    checkpoint: str | os.PathLike,
    data: Any,
    scales: Sequence[float] | str | None = None,
    *,
    key: str | None = MODEL_KEY,
    backup: str | None = "model_uncalibrated.pt",
    report: str | os.PathLike | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Load ``checkpoint`` into ``network``, calibrate the ``"scale"`` fusion, and write the checkpoint back.

    ``model.pt`` as MONAI's ``CheckpointSaver`` writes it with ``save_dict={"model": network}`` is the bare state
    dict (Ignite stores a single object unwrapped); a dict holding the state dict under ``key`` is also read. The
    file is rewritten in the layout it was read in (other entries kept), atomically (temporary file in the same
    folder, then ``os.replace``), after the original bytes are copied to ``backup`` (in the same folder) unless
    that file exists already (it then holds the first, uncalibrated original and is not touched).

    Args:
        network: the configured network (``DistributedDataParallel`` is unwrapped); its weights are replaced.
        checkpoint: the checkpoint file (e.g. ``ckpt_dir/model.pt``).
        data: the validation split (see :func:`~seunet_monai.evaluation.calibration.calibrate_scale_fusion`).
        scales: profile scales to calibrate (see :func:`~seunet_monai.evaluation.calibration.calibration_rows`).
        key: entry of a dict checkpoint holding the network's state dict.
        backup: file name of the copy of the original (``None``: no copy).
        report: optional JSON file for the calibration table (written atomically).
        kwargs: passed to :func:`~seunet_monai.evaluation.calibration.calibrate_scale_fusion` (``max_images``,
            ``max_pixels``, ``max_seconds``, ``ignore_index``, ``device``, ``on_progress``, ...).

    Returns:
        the result of ``calibrate_scale_fusion`` plus ``checkpoint`` and ``backup`` paths.

    Raises:
        FileNotFoundError / ValueError: for a missing, unreadable or unfitting checkpoint (nothing is written).
    """
    path = Path(checkpoint)
    data_file, state = load_network(network, path, key)
    net = unwrap(network)
    result = calibrate_scale_fusion(network, data, scales, **kwargs)
    new_state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    held_in = next((k for k, v in data_file.items() if v is state), key) if data_file is not state else None
    payload = {**data_file, held_in: new_state} if held_in is not None else new_state
    backup_path = None
    if backup:
        backup_path = path.parent / backup
        if backup_path.exists():
            logger.info("scale calibration: %s exists (the original); left as it is.", backup_path)
        else:
            atomic_write_bytes(backup_path, path.read_bytes())
    atomic_torch_save(path, payload)
    logger.info(
        "scale calibration written to %s (best head per scale: %s)",
        path,
        ", ".join(f"{s:.3g}: {h}" for s, h in zip(result["scales"], result["best_head"])),
    )
    result = {**result, "checkpoint": str(path), "backup": None if backup_path is None else str(backup_path)}
    if report is not None:
        atomic_write_json(report, result)
    return result


class CheckpointCalibration:
    """The calibration of the ``"scale"`` fusion of one checkpoint file, configured once and called when needed.

    Calling it loads ``checkpoint`` into a copy of ``network`` (the configured network is left as it is: after a
    training it holds the last epoch, not the best), calibrates on ``data`` and writes the file back with the
    original kept as ``backup`` (:func:`calibrate_checkpoint`). The cost is bounded (the scales 0.5 .. 2 by default,
    whole images, ``max_pixels``) and, after a training, by ``time_fraction`` of the training's time. The arguments
    are checked when it is built, so that a bad ``calibration#...`` key fails before a training, not after it.

    Args:
        network: the network as configured (``DistributedDataParallel`` is unwrapped).
        checkpoint: the checkpoint file to calibrate (``ckpt_dir/model.pt``).
        data: the validation split (items with ``image`` and ``label``).
        scales: profile scales to calibrate (``None``: those in 0.5 .. 2; ``"all"``: every profile scale; or a
            list of profile scales).
        max_images: use at most this many (whole) validation images (``None``: all that fit the budgets).
        max_pixels: pixel budget (``Σ`` over images and scales of the rescaled pixels; ``None``: none).
        time_fraction: time budget as a fraction of the training's time when called after one (``None``: none).
        roi_size: sliding-window size for every image (``None``: whole images up to the sweep's budget).
        report: optional JSON file for the calibration table.
        backup: file name of the copy of the original, in the checkpoint's folder (``None``: no copy).
        key: entry of a dict checkpoint holding the network's state dict.
        kwargs: further arguments of ``calibrate_scale_fusion`` (``ignore_index``, ``device``, ``overlap``, ...).

    Raises:
        seunet_monai.errors.ConfigValueError: naming the ``calibration#...`` key of a bad value.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        checkpoint: str | os.PathLike,
        data: Any,
        scales: Sequence[float] | str | None = None,
        max_images: int | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        time_fraction: float | None = DEFAULT_TIME_FRACTION,
        roi_size: int | Sequence[int] | None = None,
        report: str | os.PathLike | None = None,
        backup: str | None = "model_uncalibrated.pt",
        key: str | None = MODEL_KEY,
        **kwargs: Any,
    ) -> None:
        def positive(value: Any) -> bool:
            return (
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            )

        if time_fraction is not None and not positive(time_fraction):
            raise ConfigValueError(
                "calibration#time_fraction must be a number > 0 (0.2: at most 20% of the training time) or null "
                f"(None on the command line) for no time budget, got {time_fraction!r}."
            )
        for name, value in (("max_images", max_images), ("max_pixels", max_pixels)):
            if value is not None and not (positive(value) and float(value).is_integer()):
                raise ConfigValueError(f"calibration#{name} must be an integer >= 1 or null (no limit), got {value!r}.")
        bufs = dict(unwrap(network).named_buffers(recurse=False))
        if "fusion_scales" in bufs:
            try:
                calibration_rows(bufs["fusion_scales"].tolist(), scales)
            except ValueError as e:
                raise ConfigValueError(f"calibration#scales: {e}") from e
        self.network = network
        self.checkpoint = Path(checkpoint)
        self.data = data
        self.scales = scales
        self.max_images = max_images
        self.max_pixels = max_pixels
        self.time_fraction = time_fraction
        self.roi_size = roi_size
        self.report = report
        self.backup = backup
        self.key = key
        self.kwargs = kwargs

    def can_calibrate(self) -> bool:
        """Whether the network holds a scale-fusion calibration (the ``fusion_*`` buffers; a plain UNet does not)."""
        bufs = dict(unwrap(self.network).named_buffers(recurse=False))
        return all(n in bufs for n in BUFFER_NAMES)

    def __call__(
        self, training_seconds: float | None = None, on_progress: Callable[[dict[str, Any]], Any] | None = None
    ) -> dict[str, Any]:
        """Calibrate ``checkpoint`` and write it back.

        Args:
            training_seconds: the duration of the training this follows; with ``time_fraction`` it sets the time
                budget (``None``: no time budget, as in ``run calibrating``).
            on_progress: called with the calibration's progress (see ``calibrate_scale_fusion``).

        Returns:
            the result of :func:`calibrate_checkpoint`.
        """
        budget, note = None, None
        if self.time_fraction is not None and training_seconds:
            budget = self.time_fraction * float(training_seconds)
            note = f"{self.time_fraction:.0%} of the training's {float(training_seconds):.0f} s"
        return calibrate_checkpoint(
            copy.deepcopy(unwrap(self.network)),
            self.checkpoint,
            self.data,
            self.scales,
            key=self.key,
            backup=self.backup,
            report=self.report,
            max_images=self.max_images,
            max_pixels=self.max_pixels,
            max_seconds=budget,
            budget_note=note,
            roi_size=self.roi_size,
            on_progress=on_progress,
            **self.kwargs,
        )


def load_bundle_setup(
    checkpoint: str | Path,
    data_dir: str | Path,
    config_files: Sequence[str | Path] | None = None,
    overrides: Mapping[str, Any] | None = None,
    split: str = "validation",
) -> dict[str, Any]:
    """The network and the split as the bundle's ``calibrating`` command builds them (``network_def`` and
    ``calibration#data`` of ``train.json`` + ``calibrate.json``: same loading, stain normalisation with the
    checkpoint folder's ``stain_reference.json``, intensity scaling), the weights of ``checkpoint`` loaded.

    Args:
        checkpoint: a ``model.pt``; its folder is the bundle's ``ckpt_dir``.
        data_dir: a prepared dataset folder (``datalist.json``).
        config_files: the bundle configs (default ``train.json`` and ``calibrate.json`` of the bundle).
        overrides: config values by ``#`` path (e.g. ``{"network_def#channels": [20, 40, 80, 160, 320]}``).
        split: the split read (the calibration's is ``validation``).

    Returns:
        ``{"network", "data", "num_classes", "ignore_index", "device"}``.

    Raises:
        MissingPathError: a missing checkpoint, or a data folder without ``datalist.json``.
        CheckpointError: weights that do not fit the configured network.
    """
    ckpt, data = Path(checkpoint).expanduser(), Path(data_dir).expanduser()
    if not ckpt.is_file():
        raise MissingPathError(f"checkpoint {str(ckpt)!r} does not exist.")
    if not (data / "datalist.json").is_file():
        raise MissingPathError(
            f"{str(data)!r} holds no datalist.json: give a prepared dataset folder (e.g. made by "
            "seunet-prepare-monuseg)."
        )
    files = [str(f) for f in (config_files or (config_path("train.json"), config_path("calibrate.json")))]
    parser = ConfigParser()
    parser.read_config(files)
    parser.update(
        {
            "dataset_dir": str(data.resolve()),
            "ckpt_dir": str(ckpt.resolve().parent),
            "calibration#checkpoint": str(ckpt.resolve()),
            "validate#dataset#data#split": split,
            **dict(overrides or {}),
        }
    )
    network = parser.get_parsed_content("network_def")
    load_network(network, ckpt)
    device = parser.get_parsed_content("device")
    return {
        "network": network.to(device).eval(),
        "data": parser.get_parsed_content("calibration#data"),
        "num_classes": int(parser.get_parsed_content("num_classes")),
        "ignore_index": parser.get_parsed_content("ignore_index"),
        "device": device,
    }
