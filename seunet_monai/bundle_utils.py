"""Helpers the MONAI bundle in ``bundle/`` calls from its configs: where the bundle lives, the embedded default
dataset, the images of an inference folder, and checks that fail early with a clear message.

Nothing here trains or predicts; the configs wire MONAI / Ignite objects and call these small functions in
``$`` expressions, e.g. ``"bundle_root": "$seunet_monai.bundle_utils.bundle_root()"``.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seunet_monai.errors import CheckpointError, ConfigValueError, DataError, ExistingPathError, MissingPathError

__all__ = [
    "read_state_dict",
    "copy_stain_reference",
    "split_items",
    "IMAGE_SUFFIXES",
    "bundle_root",
    "check_arguments",
    "check_label_values",
    "check_scales",
    "check_outputs",
    "check_state_dict",
    "ensure_dataset",
    "is_main_process",
    "is_training_checkpoint",
    "list_images",
    "resolve_path",
    "save_metrics",
    "to_rgb",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
"""Image files ``list_images`` picks up (case-insensitive)."""

BUNDLE_ROOT_ENV = "SEUNET_BUNDLE_ROOT"


def _root_from_config_file(config_file: Any) -> Path | None:
    """The bundle root of a ``config_file`` argument (a path, a list of paths, or its string form)."""
    if config_file is None:
        return None
    if isinstance(config_file, str) and config_file.strip().startswith("["):
        import ast

        try:
            config_file = ast.literal_eval(config_file.strip())
        except (ValueError, SyntaxError):
            return None
    first = config_file if isinstance(config_file, (str, os.PathLike)) else next(iter(config_file), None)
    if first is None:
        return None
    parent = Path(first).resolve().parent
    return parent.parent if parent.name == "configs" else parent


def bundle_root() -> str:
    """The absolute path of the bundle folder (the one holding ``configs/``) of the config being parsed.

    MONAI's config parser does not know which file it read and sets no ``bundle_root`` itself (only
    ``ConfigWorkflow.run`` adds the folder to ``sys.path``, and not during ``initialize`` or
    ``check_properties``). So, in order:

    1. the environment variable ``SEUNET_BUNDLE_ROOT`` when set;
    2. the ``config_root_path`` of the ``monai.bundle`` workflow (``ConfigWorkflow``) that is evaluating this
       expression, found on the call stack (``python -m monai.bundle run ...``, ``check_properties``), or a
       ``config_file`` argument of a ``monai.bundle.scripts`` function (``verify_net_in_out``,
       ``ckpt_export``): the parent of ``configs/``;
    3. the ``bundle`` folder next to this package in a source checkout;
    4. the current working directory (what MONAI's own scripts assume).

    A ``--bundle_root DIR`` on the command line overrides this expression altogether.

    Returns:
        an absolute path (string, as configs concatenate it with ``+``).
    """
    from monai.bundle import ConfigWorkflow

    env = os.environ.get(BUNDLE_ROOT_ENV)
    if env:
        return str(Path(env).resolve())
    frame = inspect.currentframe()
    try:
        f = frame.f_back if frame is not None else None
        while f is not None:
            owner = f.f_locals.get("self")
            if isinstance(owner, ConfigWorkflow):
                root = Path(owner.config_root_path).resolve()
                return str(root.parent if root.name == "configs" else root)
            if f.f_globals.get("__name__") == "monai.bundle.scripts" and "config_file" in f.f_locals:
                root = _root_from_config_file(f.f_locals["config_file"])
                if root is not None:
                    return str(root)
            f = f.f_back
    finally:
        del frame
    checkout = Path(__file__).resolve().parents[1] / "bundle"
    if (checkout / "configs").is_dir():
        return str(checkout)
    return str(Path.cwd())


def to_rgb(image: Any) -> Any:
    """Convert a PIL image to 8-bit RGB (a ``PILReader`` ``converter``): grey-scale, palette and RGBA inputs
    are converted (alpha dropped) and logged; 16-bit and float images are refused.

    Raises:
        ValueError: for modes without a faithful 8-bit RGB conversion, naming the file.
    """
    mode = getattr(image, "mode", "RGB")
    if mode == "RGB":
        return image
    name = getattr(image, "filename", "") or "<image>"
    if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise DataError(
            f"image {name!r} has PIL mode {mode!r} (16-bit or float grey-scale); expected 8-bit RGB (grey/RGBA are "
            "converted). Convert it to 8-bit RGB first, e.g. with scripts/prepare_monuseg.py --images, which scales "
            "by the bit depth and reports the conversion."
        )
    logger.info(f"image {name!r}: converting PIL mode {mode!r} to RGB.")
    return image.convert("RGB")


def resolve_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` if absolute (``~`` expanded), else ``root / path``; returned as an absolute string."""
    p = Path(os.path.expanduser(str(path)))
    return str(p if p.is_absolute() else (Path(root) / p).resolve())


def is_main_process() -> bool:
    """True unless this is a non-zero rank of an initialised ``torch.distributed`` process group."""
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


PREPARE_HINT = (
    "prepare a dataset with scripts/prepare_monuseg.py or scripts/prepare_bcss.py (or scripts/make_synthetic.py) "
    "and set --dataset_dir to the folder holding its datalist.json"
)


def _check_can_generate(root: Path) -> None:
    """Refuse to generate the embedded default into a folder that holds anything not generated by it."""
    from seunet_monai.data.synthetic import SYNTHETIC_MARKER

    if root.is_dir() and any(root.iterdir()) and not (root / SYNTHETIC_MARKER).is_file():
        raise DataError(
            f"dataset_dir {str(root)!r} holds files but no datalist.json, so it is not a prepared dataset (raw "
            f"data?); it is left untouched. To train on it, {PREPARE_HINT}. The embedded synthetic default is "
            "generated only in an empty or missing folder."
        )


def _generate_default(root: Path, synthetic: Mapping[str, Any] | None, spatial_dims: int = 2) -> None:
    """Generate the embedded default dataset into ``root`` (rank 0), unless another process just did (volumes
    of :func:`seunet_monai.data.synthetic3d.make_synthetic_volumes` when ``spatial_dims`` is 3)."""
    from seunet_monai.data.datalist import datalist_exists
    from seunet_monai.data.synthetic import generation_lock, make_synthetic_dataset
    from seunet_monai.data.synthetic3d import make_synthetic_volumes

    kwargs = dict(synthetic or {})
    with generation_lock(root):
        if datalist_exists(root):  # written by a concurrent run while we waited for the lock
            return
        _check_can_generate(root)
        bar = "=" * 100
        logger.warning(
            f"\n{bar}\nno datalist.json in dataset_dir {str(root)!r}: generating the embedded default there, a "
            f"SYNTHETIC {'fluorescence-like 3D' if spatial_dims == 3 else 'H&E-like'} nuclei dataset "
            f"({kwargs or 'generator defaults'}), NOT real data.\nTo train on real data, {PREPARE_HINT}.\n{bar}"
        )
        (make_synthetic_volumes if spatial_dims == 3 else make_synthetic_dataset)(root, **kwargs)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


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


def ensure_dataset(
    dataset_dir: str | os.PathLike,
    synthetic: Mapping[str, Any] | None = None,
    check_sizes: bool = True,
    generate: bool = True,
    required_splits: Sequence[str] = (),
    num_classes: int | None = None,
    ignore_index: int | None = None,
    spatial_dims: int = 2,
) -> dict[str, list[dict[str, str]]]:
    """Load ``dataset_dir/datalist.json``; for training, first generate the embedded default dataset when the
    folder is empty or missing.

    With ``generate`` (training) and no ``datalist.json``, a small synthetic H&E-like dataset is generated with
    :func:`seunet_monai.data.synthetic.make_synthetic_dataset` (deterministic; in a hidden sibling folder,
    renamed into place, under a lock shared with concurrent runs), with one prominent warning naming the
    folder. That happens only in an empty or missing folder: a folder holding other files (raw data) is
    refused and never touched. Without ``generate`` (evaluation) a missing ``datalist.json`` is an error
    naming the folder and the preparation scripts. The datalist is then validated: every listed file must
    exist, with ``check_sizes`` each image and its label have the same size, each of ``required_splits`` is
    non-empty and, with ``num_classes``, the labels of those splits hold only class values
    ``0..num_classes-1`` and ``ignore_index`` (:func:`check_label_values`). Everything is checked before the
    caller writes anything. Under ``torch.distributed`` only rank 0 generates; the other ranks wait for it.

    Args:
        dataset_dir: the dataset folder.
        synthetic: keyword arguments for ``make_synthetic_dataset`` (e.g. ``{"n_train": 16, "size": 128}``).
        check_sizes: compare image and label sizes of every entry (reads the headers only where it can).
        generate: allow generating the embedded default (training only).
        required_splits: splits that must hold at least one entry (e.g. ``["training", "validation"]``).
        num_classes: number of classes the network predicts; ``None`` skips the label-value check.
        ignore_index: label value excluded from loss and metrics.
        spatial_dims: 2 (images) or 3 (volumes, ``variants/3d.json``): the embedded default generated, and every
            file must hold data of that many spatial dims (headers only; :mod:`seunet_monai.data.volumes`).

    Returns:
        the datalist: ``{"training": [...], "validation": [...], "test": [...]}`` with absolute paths.

    Raises:
        seunet_monai.errors.DataError: (a ``ValueError``) naming the folder, file or key, and how to fix it.
    """
    from seunet_monai.data.datalist import datalist_exists, load_datalist
    from seunet_monai.data.volumes import check_datalist_dims

    root = Path(os.path.expanduser(str(dataset_dir))).resolve()
    if root.exists() and not root.is_dir():
        raise DataError(f"dataset_dir {str(root)!r} exists but is not a folder; set --dataset_dir to a dataset folder.")
    if not datalist_exists(root):
        if not generate:
            raise DataError(f"dataset_dir {str(root)!r} holds no datalist.json (mistyped path?); {PREPARE_HINT}.")
        _check_can_generate(root)  # on every rank, so that all of them fail alike
        if is_main_process():
            _generate_default(root, synthetic, spatial_dims)
    _barrier()
    datalist = load_datalist(root, check_files=True, check_sizes=check_sizes)
    check_datalist_dims(datalist, spatial_dims)
    for split in required_splits:
        if not datalist.get(split):
            raise DataError(
                f"{root / 'datalist.json'}: the {split!r} split is empty, but this run needs it "
                + ("(validation selects model.pt); prepare the dataset with a validation split (--val-fraction > 0 "
                   "or --val-images)." if split == "validation" else f"; add entries under {split!r}.")
            )
    if num_classes is not None:
        check_label_values(datalist, num_classes, ignore_index, splits=required_splits or tuple(datalist),
                           spatial_dims=spatial_dims)
    return datalist


def copy_stain_reference(dataset_dir: str | os.PathLike, ckpt_dir: str | os.PathLike) -> Path | None:
    """Copy the dataset's ``stain_reference.json`` next to the checkpoints (main process only), so that the
    model carries the stain normalisation its training data had (evaluation and inference read it there).

    Returns the copy, or ``None`` when the dataset has no reference (e.g. synthetic data, ``--stain-norm none``).
    """
    from seunet_monai.data.io import atomic_write_bytes
    from seunet_monai.data.stain import STAIN_REFERENCE_FILE

    src = Path(os.path.expanduser(str(dataset_dir))) / STAIN_REFERENCE_FILE
    if not src.is_file() or not is_main_process():
        return None
    dst = Path(os.path.expanduser(str(ckpt_dir))) / STAIN_REFERENCE_FILE
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.is_file() or dst.read_bytes() != src.read_bytes():
        atomic_write_bytes(dst, src.read_bytes())
        logger.info(f"stain reference of the training data copied to {dst}")
    return dst


def split_items(
    datalist: Mapping[str, Sequence[Mapping[str, Any]]], split: str, dataset_dir: str | os.PathLike
) -> list[Mapping[str, Any]]:
    """The entries of one split of a loaded datalist, refusing an empty split (one run needs ``test``,
    another ``validation``, so the check belongs to the run that reads the split).

    Raises:
        seunet_monai.errors.DataError: naming the datalist and the split.
    """
    items = list(datalist.get(split) or [])
    if not items:
        path = Path(os.path.expanduser(str(dataset_dir))) / "datalist.json"
        raise DataError(f"{path}: the {split!r} split is empty, but this run needs it; add entries under {split!r}.")
    return items


def check_label_values(
    datalist: Mapping[str, Sequence[Mapping[str, Any]]],
    num_classes: int,
    ignore_index: int | None = None,
    splits: Sequence[str] = ("training", "validation"),
    spatial_dims: int = 2,
) -> None:
    """Check that every label of ``splits`` holds only class values ``0..num_classes-1`` and ``ignore_index``.

    For a binary task (``num_classes == 2``) a dataset whose labels hold ``ignore_index`` but never the
    value 1 is refused: it is a 0/255 mask stored with 255 for the foreground, which would ignore every
    nucleus pixel.

    Args:
        datalist: as returned by :func:`ensure_dataset` (absolute ``label`` paths).
        num_classes: number of classes (key ``num_classes``).
        ignore_index: the label value excluded from loss and metrics (key ``ignore_index``).
        splits: the splits to read.
        spatial_dims: 3 reads the labels as volumes (:func:`seunet_monai.data.volumes.read_volume_label`).

    Raises:
        seunet_monai.errors.DataError: naming the first label file with a value out of range and the key to
            change.
    """
    from seunet_monai.data.io import read_label
    from seunet_monai.data.volumes import read_volume_label

    reader = read_volume_label if spatial_dims == 3 else read_label
    allowed = set(range(int(num_classes))) | ({int(ignore_index)} if ignore_index is not None else set())
    seen: set[int] = set()
    for split in splits:
        for i, entry in enumerate(datalist.get(split, [])):
            values = {int(v) for v in np.unique(reader(entry["label"]))}
            bad = sorted(values - allowed)
            if bad and int(num_classes) == 2 and bad == [255]:
                raise DataError(
                    f"label file {entry['label']!r} ({split}[{i}]) holds 0/255 but num_classes is 2 (values 0, 1; "
                    f"ignore_index {ignore_index}): store the foreground as 1 (e.g. label // 255; "
                    "scripts/prepare_monuseg.py writes 0/1 masks)."
                )
            if bad:
                raise DataError(
                    f"label file {entry['label']!r} ({split}[{i}]) holds class value(s) {bad[:5]} but num_classes "
                    f"is {num_classes} (values 0..{int(num_classes) - 1}, ignore_index {ignore_index}): set "
                    f"--num_classes {max(bad) + 1} if these are classes (BCSS needs --num_classes 5), or fix the labels."
                )
            seen |= values
    if int(num_classes) == 2 and ignore_index is not None and int(ignore_index) in seen and 1 not in seen:
        raise DataError(
            f"the labels of {list(splits)} hold 0 and {ignore_index} but never 1: they look like 0/255 masks, and "
            f"{ignore_index} is ignore_index, so every foreground pixel would be ignored. Store the foreground as 1 "
            "(e.g. label // 255; scripts/prepare_monuseg.py writes 0/1 masks)."
        )


def list_images(input_dir: str | os.PathLike, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[dict[str, str]]:
    """Every image file of ``input_dir`` (not recursive), sorted, as ``[{"image": path}, ...]``.

    Args:
        input_dir: folder of images to segment.
        suffixes: file endings to pick up (case-insensitive).

    Raises:
        FileNotFoundError: when ``input_dir`` is not a folder.
        ValueError: when it holds no image with one of ``suffixes``.
    """
    folder = Path(os.path.expanduser(str(input_dir)))
    if not folder.is_dir():
        raise MissingPathError(f"input_dir {str(folder)!r} is not a folder (set --input_dir to a folder of images).")
    ends = tuple(s.lower() for s in suffixes)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(ends))
    if not files:
        raise DataError(f"input_dir {str(folder)!r} holds no image file ending in {', '.join(ends)}.")
    return [{"image": str(p.resolve())} for p in files]


def check_outputs(
    items: Sequence[Mapping[str, Any]],
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    suffixes: Sequence[str] = (".png",),
) -> None:
    """Check, before anything is written, that the outputs of ``items`` neither collide nor overwrite files.

    Output names are the input's base name without extension plus each of ``suffixes`` (as written by
    :class:`seunet_monai.engine_utils.SaveLabelMaskd`).

    Args:
        items: the inputs, ``[{"image": path}, ...]``.
        output_dir: folder of the outputs.
        overwrite: allow replacing existing outputs.
        suffixes: output endings per input (e.g. ``(".png", "_prob.tif")``).

    Raises:
        ValueError: when two inputs map to the same output name.
        FileExistsError: when an output exists and ``overwrite`` is false.
    """
    out = Path(os.path.expanduser(str(output_dir)))
    seen: dict[str, str] = {}
    for item in items:
        src = str(item["image"])
        stem = Path(src).stem
        if stem in seen:
            raise DataError(f"inputs {seen[stem]!r} and {src!r} would both write {stem}.png in {str(out)!r}.")
        seen[stem] = src
        if not overwrite:
            for suffix in suffixes:
                target = out / f"{stem}{suffix}"
                if target.exists():
                    raise ExistingPathError(
                        f"output {str(target)!r} exists (from a previous run?); pass --overwrite true to replace "
                        "it or choose another --output_dir."
                    )


def is_training_checkpoint(data: Any) -> bool:
    """Whether a loaded checkpoint is a resumable training checkpoint (``last.pt`` of
    :class:`seunet_monai.handlers.ResumableCheckpoint`) rather than a model state dict (``model.pt``)."""
    return isinstance(data, Mapping) and "network" in data and "optimizer" in data and isinstance(data["network"], Mapping)


def read_state_dict(checkpoint: str | os.PathLike, key: str | None) -> tuple[Any, Mapping[str, Any]]:
    """Read a checkpoint file: ``(whole content, state dict)``.

    The state dict is the entry ``key`` of a dict checkpoint, or the file itself when it is a bare state dict
    (what MONAI's ``CheckpointSaver`` writes for one object) or ``key`` is ``None``.

    Raises:
        MissingPathError / CheckpointError: missing, unreadable, or no state dict (naming the file).
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise MissingPathError(f"checkpoint {str(path)!r} not found (train first, or set --ckpt_dir).")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure becomes a message naming the file
        raise CheckpointError(f"checkpoint {str(path)!r} could not be read: {e}") from e
    state = content[key] if key is not None and isinstance(content, Mapping) and key in content else content
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {str(path)!r} holds no state dict (key {key!r}).")
    return content, state


def check_state_dict(module: torch.nn.Module, checkpoint: str | os.PathLike, key: str | None = "network") -> None:
    """Check that ``checkpoint`` holds weights for ``module`` (same parameter names and shapes).

    Meant to run before a ``CheckpointLoader`` so that a checkpoint of another architecture gives one clear
    error naming the file instead of a long ``load_state_dict`` trace, before anything is written.

    Args:
        module: the network (a ``DistributedDataParallel`` wrapper is unwrapped).
        checkpoint: the ``.pt`` file.
        key: the entry holding the network's state dict in a dict checkpoint (``None``: the file is the
            state dict itself). A file that is a bare state dict is accepted for any ``key``.

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: when it cannot be read, or its parameter names or shapes differ from ``module``'s.
    """
    path = Path(checkpoint)
    _, data = read_state_dict(path, key)
    if is_training_checkpoint(data) and key not in (None, "network"):
        raise CheckpointError(
            f"checkpoint {str(path)!r} is a resumable training checkpoint (last.pt: {', '.join(sorted(data))}), "
            f"not a model file like model.pt; evaluate {str(path.parent / 'model.pt')!r} (the best model) or set "
            "--eval_checkpoint to a model file."
        )
    net = module.module if hasattr(module, "module") else module
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in data.items() if hasattr(v, "shape")}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatches (e.g. {k!r}: checkpoint {found[k]} vs network {expected[k]})")
        raise CheckpointError(
            f"checkpoint {str(path)!r} does not fit the configured network {type(net).__name__} "
            f"(key 'network_def'): {'; '.join(parts)}. Was it trained with other network_def arguments?"
        )


def save_metrics(engine: Any, path: str | os.PathLike, **extra: Any) -> Path:
    """Write ``engine.state.metrics`` (plus ``extra`` run information) to a JSON file, atomically.

    Only the main process writes.

    Args:
        engine: an Ignite engine that has run (e.g. the evaluator).
        path: the JSON file to write (folders are created).
        extra: more JSON-serialisable entries (checkpoint, dataset, split, ...).

    Returns:
        ``path``.
    """
    from seunet_monai.data.io import atomic_write_json

    metrics = {k: (float(v) if isinstance(v, (int, float)) or torch.is_tensor(v) and v.numel() == 1 else v)
               for k, v in engine.state.metrics.items()}
    out = Path(path)
    if is_main_process():
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, {"metrics": metrics, **{k: str(v) if isinstance(v, os.PathLike) else v for k, v in extra.items()}})
        logger.info(f"metrics written to {out}: {metrics}")
    return out
