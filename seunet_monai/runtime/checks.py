"""Pre-run checks of the bundle: arguments and outputs are checked before any work is done, each failing with one
clear error naming the key (``--key`` on the command line), the file and how to fix it.

The label check (:func:`seunet_monai.data.dataset.check_label_values`) lives with the dataset, the checkpoint
check (:func:`seunet_monai.checkpoint.check_state_dict`) with the checkpoint reader.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import str2bool

from seunet_monai.errors import ConfigValueError, DataError, ExistingPathError

__all__ = ["as_flag", "check_arguments", "check_outputs", "check_scales"]


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def as_flag(value: Any, key: str) -> bool:
    """A boolean argument as given in a config or on the command line, where ``--overwrite false`` arrives as the
    string ``"false"`` (``bool("false")`` is True). Accepts booleans and MONAI's ``str2bool`` words (true/false,
    yes/no, t/f, y/n, 1/0, any case).

    Raises:
        ConfigValueError: naming ``key`` for anything else.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        try:
            return str2bool(value.strip().lower())
        except ValueError:
            pass
    raise ConfigValueError(f"{key} must be true or false, got {value!r}.")


def check_arguments(**values: Any) -> bool:
    """Check the bundle's numeric keys before any work is done; one clear error naming the key.

    Known keys (others are refused as a programming error): ``epochs``, ``batch_size``, ``val_batch_size``,
    ``val_interval``, ``log_interval``, ``num_workers``, ``num_classes`` (integers; ``num_workers`` may be 0,
    ``num_classes`` >= 2), ``learning_rate`` (finite, > 0), ``weight_decay`` (finite, >= 0), ``ignore_index``
    (an integer outside ``0..num_classes-1``), ``patch_size`` (positive integers), ``scale_range``
    (``[low, high]`` with ``0 < low <= high``) and ``scales`` (see :func:`check_scales`).

    Returns:
        ``True`` (so that a config's ``initialize`` list can call it).

    Raises:
        seunet_monai.errors.ConfigValueError: naming the key (``--key`` on the command line) and the value.
    """

    def bad(key: str, expected: str) -> ConfigValueError:
        return ConfigValueError(f"--{key} {values[key]!r}: expected {expected}.")

    minimum = {"epochs": 1, "batch_size": 1, "val_batch_size": 1, "val_interval": 1, "log_interval": 1,
               "num_workers": 0, "num_classes": 2}  # fmt: skip
    for key, value in values.items():
        if key in minimum:
            if not _is_int(value) or value < minimum[key]:
                raise bad(key, f"an integer >= {minimum[key]}")
        elif key == "learning_rate":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < float("inf")):
                raise bad(key, "a finite number > 0 (e.g. 0.015)")
        elif key == "weight_decay":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < float("inf")):
                raise bad(key, "a finite number >= 0")
        elif key == "ignore_index":
            n = values.get("num_classes")
            if not _is_int(value) or (_is_int(n) and 0 <= value < n):
                raise bad(key, "an integer label value that is not a class (e.g. 255)")
        elif key == "patch_size":
            if not isinstance(value, Sequence) or not value or not all(_is_int(v) and v > 0 for v in value):
                raise bad(key, "a list of positive integers, e.g. [128,128]")
        elif key == "scale_range":
            ok = isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
            if not ok or not 0 < value[0] <= value[1] < float("inf"):
                raise bad(key, "[low, high] with 0 < low <= high, e.g. [0.5,2.0]")
        elif key == "scales":
            check_scales(value)
        else:
            raise TypeError(f"check_arguments: unknown key {key!r}.")
    return True


def check_scales(scales: Any) -> list[float]:
    """Check the scale sweep's ``scales`` key (before the test-split evaluation runs).

    Returns:
        the scales as floats.

    Raises:
        seunet_monai.errors.ConfigValueError: unless ``scales`` is a non-empty list of distinct, finite,
            positive numbers.
    """
    expected = 'a non-empty list of distinct positive numbers, e.g. "[0.5,1,2]"'
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or not scales:
        raise ConfigValueError(f"--scales {scales!r}: expected {expected}.")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < float("inf") for v in scales):
        raise ConfigValueError(f"--scales {list(scales)!r}: expected {expected}.")
    values = [float(v) for v in scales]
    if len(set(values)) != len(values):
        raise ConfigValueError(f"--scales {values!r}: a scale repeats; expected {expected}.")
    return values


def check_outputs(
    items: Sequence[Mapping[str, Any]],
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    suffixes: Sequence[str] = (".png",),
    stem: Callable[[str], str] | None = None,
) -> None:
    """Check, before anything is written, that the outputs of ``items`` neither collide nor overwrite files.

    Output names are the input's base name without extension (or ``stem`` of it) plus each of ``suffixes``.

    Args:
        items: the inputs, ``[{"image": path}, ...]``.
        output_dir: folder of the outputs.
        overwrite: allow replacing existing outputs.
        suffixes: output endings per input (e.g. ``(".png", "_prob.tif")``).
        stem: the output base name of an input path (default: its name without the last extension).

    Raises:
        ValueError: when two inputs map to the same output name.
        FileExistsError: when an output exists and ``overwrite`` is false.
    """
    out = Path(os.path.expanduser(str(output_dir)))
    seen: dict[str, str] = {}
    for item in items:
        src = str(item["image"])
        base = Path(src).stem if stem is None else stem(src)
        if base in seen:
            raise DataError(
                f"inputs {seen[base]!r} and {src!r} would both write the same output {base}{suffixes[0]} in {str(out)!r}."
            )
        seen[base] = src
        if not overwrite:
            for suffix in suffixes:
                target = out / f"{base}{suffix}"
                if target.exists():
                    raise ExistingPathError(
                        f"output {str(target)!r} exists (from a previous run?); pass --overwrite true to replace "
                        "it or choose another --output_dir."
                    )
