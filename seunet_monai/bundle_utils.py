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

import torch

__all__ = [
    "IMAGE_SUFFIXES",
    "bundle_root",
    "check_outputs",
    "check_state_dict",
    "ensure_dataset",
    "is_main_process",
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
        raise ValueError(
            f"image {name!r} has PIL mode {mode!r} (16-bit or float); expected 8-bit RGB (or grey/RGBA, converted)."
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


def ensure_dataset(
    dataset_dir: str | os.PathLike,
    synthetic: Mapping[str, Any] | None = None,
    check_sizes: bool = True,
) -> dict[str, list[dict[str, str]]]:
    """Load ``dataset_dir/datalist.json``, first generating the embedded default dataset when there is none.

    When ``dataset_dir`` holds no ``datalist.json``, a small synthetic H&E-like dataset is generated there
    with :func:`seunet_monai.data.synthetic.make_synthetic_dataset` (deterministic) and the log says so.
    Otherwise the datalist is validated: every listed file must exist and, with ``check_sizes``, each image
    and its label must have the same size. Errors name the file or key and are raised before the caller
    writes anything. Under ``torch.distributed`` only rank 0 generates; the other ranks wait for it.

    Args:
        dataset_dir: the dataset folder (created when missing).
        synthetic: keyword arguments for ``make_synthetic_dataset`` (e.g. ``{"n_train": 16, "size": 128}``).
        check_sizes: compare image and label sizes of every entry (reads the headers only where it can).

    Returns:
        the datalist: ``{"training": [...], "validation": [...], "test": [...]}`` with absolute paths.

    Raises:
        ValueError / FileNotFoundError: from the datalist validation, naming the file and key.
    """
    from seunet_monai.data.datalist import datalist_exists, load_datalist

    root = Path(os.path.expanduser(str(dataset_dir))).resolve()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"dataset_dir {str(root)!r} exists but is not a folder.")
    if not datalist_exists(root):
        if is_main_process():
            from seunet_monai.data.synthetic import make_synthetic_dataset

            kwargs = dict(synthetic or {})
            logger.warning(
                f"no datalist.json in dataset_dir {str(root)!r}: generating the embedded default "
                f"(synthetic H&E-like nuclei dataset, {kwargs or 'generator defaults'}) there."
            )
            make_synthetic_dataset(root, **kwargs)
        _barrier()
    else:
        _barrier()
    return load_datalist(root, check_files=True, check_sizes=check_sizes)


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
        raise FileNotFoundError(f"input_dir {str(folder)!r} is not a folder (set --input_dir to a folder of images).")
    ends = tuple(s.lower() for s in suffixes)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(ends))
    if not files:
        raise ValueError(f"input_dir {str(folder)!r} holds no image file ending in {', '.join(ends)}.")
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
            raise ValueError(f"inputs {seen[stem]!r} and {src!r} would both write {stem}.png in {str(out)!r}.")
        seen[stem] = src
        if not overwrite:
            for suffix in suffixes:
                target = out / f"{stem}{suffix}"
                if target.exists():
                    raise FileExistsError(
                        f"output {str(target)!r} exists (from a previous run?); pass --overwrite true to replace "
                        "it or choose another --output_dir."
                    )


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
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found (train first, or set --ckpt_dir).")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure becomes a message naming the file
        raise ValueError(f"checkpoint {str(path)!r} could not be read: {e}") from e
    if key is not None and isinstance(data, Mapping) and key in data:
        data = data[key]
    if not isinstance(data, Mapping):
        raise ValueError(f"checkpoint {str(path)!r} holds no state dict (key {key!r}).")
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
        raise ValueError(
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
