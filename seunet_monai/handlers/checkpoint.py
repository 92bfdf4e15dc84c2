"""Checkpoint handlers of the training: the resumable ``last.pt``, the random states it carries, and the best
model (``model.pt``) saver that survives a resume and ignores NaN.

Both files keep the network under the key ``"model"`` (:data:`seunet_monai.checkpoint.MODEL_KEY`); a ``last.pt``
of an older version that holds it under ``"network"`` is still restored.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from monai.handlers import CheckpointSaver
from monai.transforms import Randomizable, Transform
from monai.utils import is_scalar

from seunet_monai.checkpoint import (
    LEGACY_MODEL_KEYS,
    MODEL_KEY,
    atomic_torch_save,
    is_training_checkpoint,
    read_checkpoint,
)
from seunet_monai.errors import CheckpointError, set_interrupt_note
from seunet_monai.runtime.checks import as_flag
from seunet_monai.runtime.distributed import is_main_process, unwrap

__all__ = ["BestModelSaver", "RandomStates", "ResumableCheckpoint"]


class ResumableCheckpoint:
    """Save a resumable training checkpoint after every epoch; optionally resume from it at start.

    Written by hand because MONAI's ``CheckpointSaver`` names interval checkpoints by their epoch
    (``checkpoint_epoch=N.pt``), so there is no stable ``last.pt`` to resume from, and ``CheckpointLoader``
    fails when the file is absent (a fresh run with ``resume`` on) and names neither the file nor the key on
    an architecture mismatch. The restore step follows ``CheckpointLoader`` (Ignite's
    ``Checkpoint.load_objects`` at ``STARTED``, keeping the configured ``max_epochs``).

    Args:
        ckpt_dir: folder of the checkpoint.
        save_dict: the objects to save and restore, e.g. ``{"model": net, "optimizer": opt,
            "scheduler": sched, "loss": loss}``; each needs ``state_dict`` / ``load_state_dict``. Wrapped
            (DDP) networks are saved unwrapped.
        engine_key: the engine this handler is attached to is added to ``save_dict`` under this key (its
            epoch and iteration counters), so that configs need not reference the trainer from inside its
            own handler list (a circular reference); ``None`` leaves it out.
        resume: restore ``ckpt_dir/filename`` at ``STARTED`` when it exists (a warning when it does not).
        filename: checkpoint name.
        save_interval: save every this many epochs (and after the last one).
        optional: entries of ``save_dict`` that a checkpoint written by an older version may lack (e.g. the
            random states): restored when present, else a warning.

    Attach it after the ``ValidationHandler`` in the trainer's handler list, so that ``last.pt`` holds the
    best-model tracking and the random states of the epoch *including* its validation. Only the main process
    writes; every process restores.
    """

    def __init__(
        self,
        ckpt_dir: str | os.PathLike,
        save_dict: Mapping[str, Any],
        resume: bool = False,
        filename: str = "last.pt",
        save_interval: int = 1,
        engine_key: str | None = "trainer",
        optional: tuple[str, ...] | list[str] = (),
    ) -> None:
        if not save_dict:
            raise ValueError("ResumableCheckpoint: save_dict must name at least one object.")
        if int(save_interval) < 1:
            raise ValueError(f"ResumableCheckpoint: save_interval must be >= 1, got {save_interval}.")
        self.ckpt_dir = Path(ckpt_dir)
        self.save_dict = dict(save_dict)
        self.resume = as_flag(resume, "resume")
        self.filename = str(filename)
        self.save_interval = int(save_interval)
        self.engine_key = engine_key
        self.optional = set(optional)
        self.logger = logging.getLogger(__name__)

    @property
    def path(self) -> Path:
        """The checkpoint file, ``ckpt_dir / filename``."""
        return self.ckpt_dir / self.filename

    def attach(self, engine: Engine) -> None:
        """Restore at ``STARTED`` (when ``resume``), save at every ``save_interval``-th ``EPOCH_COMPLETED``."""
        if self.engine_key is not None:
            self.save_dict[self.engine_key] = engine
        if self.resume:
            engine.add_event_handler(Events.STARTED, self.load)
        elif self.path.is_file() and is_main_process():
            self.logger.warning(
                f"{self.path} exists from an earlier run and will be replaced at the end of epoch 1 "
                "(pass --resume true to continue it instead)."
            )
        engine.add_event_handler(Events.STARTED, self._note)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._maybe_save)

    def _note(self, engine: Engine) -> None:
        """What a Ctrl-C now keeps and how to go on (:func:`seunet_monai.errors.set_interrupt_note`)."""
        if self.path.is_file() and engine.state.epoch > 0:
            set_interrupt_note(
                f"{self.path} keeps epoch {engine.state.epoch} of {engine.state.max_epochs} (and model.pt the best "
                "epoch so far); continue with the same command and --resume true."
            )
        else:
            set_interrupt_note(
                f"no epoch was completed, so {self.path} was not written and there is nothing to resume; "
                "start the training again."
            )

    def state(self) -> dict[str, Any]:
        """The state dicts to save."""
        return {k: unwrap(v).state_dict() for k, v in self.save_dict.items()}

    def _maybe_save(self, engine: Engine) -> None:
        if engine.state.epoch % self.save_interval == 0 or engine.state.epoch == engine.state.max_epochs:
            self.save(engine)

    def save(self, engine: Engine | None = None) -> None:
        """Write the checkpoint atomically (temporary file in the same folder, then ``os.replace``)."""
        if not is_main_process():
            return
        try:
            atomic_torch_save(self.path, self.state())
        except OSError as e:
            name = self.path.name
            kept = f"the previous {name} is intact" if self.path.is_file() else f"no {name} was written"
            raise CheckpointError(
                f"could not write {self.path}: {e.strerror or e} ({kept}); free space in {self.ckpt_dir} and "
                "continue with --resume true."
            ) from e
        if engine is not None:
            self.logger.info(f"saved resumable checkpoint {self.path} (epoch {engine.state.epoch}).")
            self._note(engine)

    def load(self, engine: Engine) -> None:
        """Restore every object of ``save_dict`` from the checkpoint, keeping ``engine``'s ``max_epochs``.

        Raises:
            ValueError: when the file cannot be read, lacks an object of ``save_dict``, does not fit the
                network, or has already passed the configured number of epochs.
        """
        if not self.path.is_file():
            self.logger.warning(f"resume requested but {self.path} does not exist: training from scratch.")
            return
        checkpoint = read_checkpoint(self.path)
        if (
            isinstance(checkpoint, Mapping)
            and not is_training_checkpoint(checkpoint)
            and all(torch.is_tensor(v) for v in checkpoint.values())
        ):
            raise CheckpointError(
                f"{str(self.path)!r} is a model file (weights only, like model.pt), not a resumable training "
                "checkpoint: it has no optimizer, scheduler or epoch to resume. Remove it, or train with --resume false."
            )
        if isinstance(checkpoint, Mapping) and MODEL_KEY in self.save_dict and MODEL_KEY not in checkpoint:
            legacy = [k for k in LEGACY_MODEL_KEYS if k in checkpoint]
            if legacy:  # last.pt of an older version: the network under "network"
                checkpoint = {
                    MODEL_KEY: checkpoint[legacy[0]],
                    **{k: v for k, v in checkpoint.items() if k != legacy[0]},
                }
        missing = [k for k in self.save_dict if k not in checkpoint and k not in self.optional]
        if missing:
            raise CheckpointError(
                f"checkpoint {str(self.path)!r} lacks the entries {missing} (has {sorted(checkpoint)})."
            )
        absent = sorted(k for k in self.optional if k in self.save_dict and k not in checkpoint)
        if absent:
            self.logger.warning(f"{self.path} has no {absent} (written by an older version): not restored.")
        prior_max_epochs = engine.state.max_epochs
        schedules = {k: getattr(v, "total_steps", None) for k, v in self.save_dict.items()}  # before loading
        to_load = {k: unwrap(v) for k, v in self.save_dict.items() if k in checkpoint}
        try:
            Checkpoint.load_objects(to_load=to_load, checkpoint=checkpoint, strict=True)
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(
                f"checkpoint {str(self.path)!r} does not fit the configured training (key 'network_def' or the "
                f"optimizer/scheduler settings differ): {str(e).splitlines()[0]}"
            ) from e
        self._check_schedule(checkpoint, schedules, engine)
        if prior_max_epochs is not None and engine.state.epoch > prior_max_epochs:
            raise CheckpointError(
                f"checkpoint {str(self.path)!r} is at epoch {engine.state.epoch}, beyond the configured "
                f"{prior_max_epochs} epochs (key 'epochs')."
            )
        engine.state.max_epochs = prior_max_epochs
        self.logger.info(
            f"resumed from {self.path}: epoch {engine.state.epoch}, iteration {engine.state.iteration}; "
            f"training continues to epoch {prior_max_epochs}."
        )

    def _check_schedule(self, checkpoint: Mapping[str, Any], schedules: Mapping[str, Any], engine: Engine) -> None:
        """Refuse a checkpoint whose learning-rate schedule has another length than the configured one
        (``schedules``: ``total_steps`` of each object before loading), e.g. ``--resume true --epochs 6`` on a run
        of 4 epochs: ``OneCycleLR`` would fail past its last step."""
        for key, configured in schedules.items():
            saved = checkpoint.get(key)
            if configured is None or not isinstance(saved, Mapping) or saved.get("total_steps") in (None, configured):
                continue
            length = max(1, int(engine.state.epoch_length or 1))
            raise CheckpointError(
                f"{self.path} holds a run whose learning-rate schedule ('{key}') lasts {int(saved['total_steps'])} "
                f"iterations (about {int(saved['total_steps']) // length} epochs), the command configures "
                f"{int(configured)} ({int(configured) // length} epochs, key 'epochs'): a one-cycle schedule cannot be "
                "stretched. Resume with the run's --epochs, or start a new run (another --output_dir) with the new one."
            )


def _randomizables(
    obj: Any, found: list[Randomizable] | None = None, seen: set[int] | None = None
) -> list[Randomizable]:
    """Every ``Randomizable`` in a transform, depth first: the members of a ``Compose`` and the inner
    transforms of a dictionary transform (``RandSpatialCropd.cropper``), each of which has its own generator."""
    found = [] if found is None else found
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return found
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        children: Any = obj
    elif isinstance(obj, dict):
        children = obj.values()
    elif isinstance(obj, (Transform, Randomizable)):
        if isinstance(obj, Randomizable):
            found.append(obj)
        children = vars(obj).values()
    else:
        return found
    for child in children:
        _randomizables(child, found, seen)
    return found


class RandomStates:
    """The random-number states that decide a training run's next epoch, as a ``state_dict``.

    A resumed run starts a new process: seeding (``set_determinism``) and MONAI's ``DataLoader`` (which seeds
    every random transform from torch's generator when it is built) put the generators back at their
    *initial* state, so the resumed epochs would draw other crops and flips and another shuffling than the
    uninterrupted run. Saving these states in ``last.pt`` (see :class:`ResumableCheckpoint`) and restoring
    them at ``STARTED`` makes the resumed run repeat the uninterrupted one, as far as floating point repeats.

    Saved: torch's CPU generator (and every CUDA device's), NumPy's and Python's global generators, and the
    ``RandomState`` of every ``Randomizable`` in ``transforms`` (e.g. the training ``Compose``). Plain
    tensors and numbers only, so that ``torch.load(weights_only=True)`` reads them.

    Args:
        transforms: transforms whose random states are saved (a ``Compose`` is searched recursively); ``None``
            saves only the global generators.
    """

    def __init__(self, transforms: Any = None) -> None:
        self.transforms = _randomizables(transforms) if transforms is not None else []

    def state_dict(self) -> dict[str, Any]:
        """The current states."""
        np_state = np.random.get_state()
        py_state = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": _numpy_state(np_state),
            "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64)},
            "transforms": [_numpy_state(t.R.get_state()) for t in self.transforms],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the states of :meth:`state_dict` (the transform count must match)."""
        if len(state["transforms"]) != len(self.transforms):
            raise CheckpointError(
                f"the checkpoint holds the random states of {len(state['transforms'])} random transforms, the "
                f"configured training has {len(self.transforms)} (key 'train#augmentation' differs)."
            )
        torch.set_rng_state(state["torch"])
        if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        np.random.set_state(_from_numpy_state(state["numpy"]))
        random.setstate((int(state["python"]["version"]), tuple(int(v) for v in state["python"]["state"]), None))
        for t, st in zip(self.transforms, state["transforms"]):
            t.R.set_state(_from_numpy_state(st))


def _numpy_state(st: tuple) -> dict[str, Any]:
    """A NumPy legacy ``RandomState`` state tuple as tensors and numbers."""
    return {"keys": torch.from_numpy(np.asarray(st[1], dtype=np.int64)), "pos": int(st[2]),
            "has_gauss": int(st[3]), "cached_gaussian": float(st[4])}  # fmt: skip


def _from_numpy_state(st: Mapping[str, Any]) -> tuple:
    return ("MT19937", st["keys"].numpy().astype(np.uint32), int(st["pos"]), int(st["has_gauss"]),
            float(st["cached_gaussian"]))  # fmt: skip


class BestModelSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` saving the best model by the key metric (``model.pt``), made resumable and
    deaf to NaN.

    - A validation metric that is NaN, infinite or not a scalar is never a candidate for the best model (MONAI's
      saver saves the first value whatever it is, so a NaN epoch 1 would write ``model.pt``); the log says so.
    - The saver keeps the best score itself and hands MONAI's saver only the epochs that beat it (as MONAI's
      would decide: higher, or higher or equal with ``key_metric_greater_or_equal``, of the score signed by
      ``key_metric_negative_sign``), so both always agree on the model saved.
    - :meth:`state_dict` / :meth:`load_state_dict` carry that score and the evaluator's ``best_metric`` /
      ``best_metric_epoch``, so that a resumed run replaces ``model.pt`` only with a better epoch (MONAI's
      tracking list is restored through its public ``load_state_dict``). :class:`ResumableCheckpoint` stores
      them in ``last.pt``.

    Args:
        save_dir: folder of the model file.
        save_dict: objects to save, e.g. ``{"model": network}`` (one object: saved as a bare state dict).
        key_metric_filename: the model file name.
        kwargs: further ``CheckpointSaver`` arguments (``save_key_metric`` is always on, and one model is kept).
    """

    def __init__(self, save_dir: str, save_dict: dict, key_metric_filename: str = "model.pt", **kwargs: Any) -> None:
        super().__init__(
            save_dir=save_dir,
            save_dict=save_dict,
            save_key_metric=True,
            key_metric_filename=key_metric_filename,
            **kwargs,
        )
        self.filename = key_metric_filename
        self.key_metric_name = kwargs.get("key_metric_name")
        self.sign = -1.0 if kwargs.get("key_metric_negative_sign", False) else 1.0
        self.greater_or_equal = bool(kwargs.get("key_metric_greater_or_equal", False))
        self.best_score: float | None = None
        """Signed key metric of the saved model (``None`` before the first save), as MONAI's saver ranks it."""
        self.engine: Engine | None = None

    def attach(self, engine: Engine) -> None:
        """Attach to the evaluator (remembers it for the best-metric state)."""
        self.engine = engine
        super().attach(engine)

    def metrics_completed(self, engine: Engine) -> None:
        """Save the model when the key metric is a finite scalar better than every earlier one."""
        name = self.key_metric_name or getattr(engine.state, "key_metric_name", None)
        value = engine.state.metrics.get(name)
        try:
            finite = is_scalar(value) and math.isfinite(float(value))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            self.logger.warning(
                f"validation {name} is {value} at epoch {engine.state.epoch}: not a candidate for the best model; "
                f"{os.path.join(self.save_dir, self.filename)} is not updated."
            )
            return
        score = self.sign * float(value)
        best = self.best_score
        if best is not None and not (score > best or (self.greater_or_equal and score == best)):
            return
        target = Path(self.save_dir) / self.filename
        try:
            super().metrics_completed(engine)
        except OSError as e:
            name = self.filename
            kept = f"the previous {name} is intact" if target.is_file() else f"no {name} was written"
            raise CheckpointError(
                f"could not write {target}: {e.strerror or e} ({kept}); free space in {self.save_dir} and continue "
                "with --resume true."
            ) from e
        self.best_score = score
        self.best_metric, self.best_metric_epoch = float(value), int(engine.state.epoch)

    best_metric: float = -1.0
    """Key metric of the saved model (-1 before the first save)."""
    best_metric_epoch: int = -1
    """Epoch of the saved model (-1 before the first save)."""

    def state_dict(self) -> dict[str, Any]:
        """The best score tracking: ``saved`` (``[(signed score, file name)]``, empty before the first save), the
        best metric and its epoch."""
        saved = [] if self.best_score is None else [(float(self.best_score), str(self.filename))]
        best = {"best_metric": float(self.best_metric), "best_metric_epoch": int(self.best_metric_epoch)}
        return {"saved": saved, **best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (also into MONAI's saver and the evaluator's ``best_metric`` /
        ``best_metric_epoch``)."""
        saved = [(float(p), str(f)) for p, f in state["saved"]]
        super().load_state_dict({"_saved": saved})  # ignite's Checkpoint.state_dict() format
        self.best_score = max((p for p, _ in saved), default=None)
        self.best_metric, self.best_metric_epoch = float(state["best_metric"]), int(state["best_metric_epoch"])
        if self.engine is not None:
            self.engine.state.best_metric = self.best_metric
            self.engine.state.best_metric_epoch = self.best_metric_epoch
        self.logger.info(
            f"best model so far: {self.filename} of epoch {int(state['best_metric_epoch'])} with "
            f"{self.key_metric_name or 'the key metric'} {float(state['best_metric']):.4f}."
        )
