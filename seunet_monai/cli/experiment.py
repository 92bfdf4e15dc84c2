"""``seunet-experiment``: train and scale-sweep several model variants through the bundle, then compare them.

Usage::

    seunet-experiment --preset monuseg-cpu --source ../shared/data/monuseg-train --out O [--dry-run]
    seunet-experiment --preset instances-cpu --source ../shared/data/monuseg-train --out O [--dry-run]
    seunet-experiment --dataset-dir D --out O \
        --variants seunet,cnn,unet,sesn,disco,seunet_fixed,seunet_free [--epochs N] [--tiny] [--scales 0.5,1,2] \
        [--seed S] [--widths 20,40,80,160,320] [--override KEY=VALUE ...]

Each variant is trained and evaluated with the bundle's own commands (override file ``configs/variants/NAME.json``
of the bundle folder, ``python -m seunet_monai bundle-path``, merged last) into ``O/<variant>/``; then
``O/comparison.csv``, ``O/comparison.md`` and ``O/iou_vs_scale.png`` are written. Rerunning the same command
resumes: finished variants are skipped, interrupted trainings continue from ``last.pt``. Exit status 1 when a
variant failed.
See :mod:`seunet_monai.experiments.runner`; ``--preset`` runs a fixed protocol instead
(:mod:`seunet_monai.experiments.reproduction`: data preparation from ``--source``, every job, ``O/reproduction.md``);
``--dry-run`` lists its jobs with their estimated times and runs nothing.

Stopping: Ctrl-C or ``kill`` (SIGTERM) stop the job that runs (its training or sweep process is killed with it,
so that no orphan keeps writing into the folder) and say how to resume. A run started in the background
(``nohup ... &``) ignores Ctrl-C's SIGINT, as every background job of a shell does: stop it with ``kill PID``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from seunet_monai.experiments.presets import PRESETS
from seunet_monai.experiments.reproduction import run_preset
from seunet_monai.experiments.runner import run_experiment
from seunet_monai.experiments.variants import DEFAULT_VARIANTS, VARIANTS

__all__ = ["main"]


def _scales(text: str) -> list[float]:
    try:
        vals = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scales must be comma-separated numbers, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"--scales must be positive numbers, got {text!r}")
    return vals


def _override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)``, VALUE parsed as JSON when it is JSON (``true``, ``4``, ``[1,2]``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--override must be KEY=VALUE (a bundle config id and a value), got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: the running job's process is killed too
    parser = argparse.ArgumentParser(prog="seunet-experiment", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="run a fixed protocol (data, models, recipe, seeds, scales) instead of the options below",
    )
    parser.add_argument(
        "--source", default=None, help="with --preset: the MoNuSeg training set folder (images/, masks/, annotations/)"
    )
    parser.add_argument("--dry-run", action="store_true", help="with --preset: list the jobs and estimated times only")
    parser.add_argument("--dataset-dir", default=None, help="dataset folder (datalist.json; generated when absent)")
    parser.add_argument("--out", required=True, help="experiment folder")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from {','.join(VARIANTS)} (default {','.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the bundle's)")
    parser.add_argument("--tiny", action="store_true", help="tiny networks and data (smoke test)")
    parser.add_argument(
        "--scales", type=_scales, default=None, help="test scales, e.g. 0.5,1,2 (default: the bundle's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--widths",
        default=None,
        help="five level widths for every variant, e.g. 20,40,80,160,320 (default: the bundle's)",
    )
    parser.add_argument(
        "--override",
        type=_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a bundle override applied to every command of every variant, e.g. scale_augmentation=true (repeatable)",
    )
    args = parser.parse_args(argv)
    log = lambda s: print(s, flush=True)  # noqa: E731
    if args.preset is not None:
        if args.source is None:
            parser.error("--preset needs --source DIR (the MoNuSeg training set: images/, masks/, annotations/)")
        try:
            result = run_preset(args.preset, args.source, args.out, dry_run=args.dry_run, log=log)
        except (ValueError, FileNotFoundError, NotADirectoryError) as e:
            print(f"seunet-experiment: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(
                f"seunet-experiment: interrupted; finished jobs are kept in {args.out}: run the same command again "
                "to resume.",
                file=sys.stderr,
            )
            return 130
        return 1 if result["failed"] else 0
    if args.dataset_dir is None:
        parser.error("--dataset-dir is required (or use --preset)")
    try:
        widths = None if args.widths is None else [int(v) for v in args.widths.split(",")]
    except ValueError:
        parser.error(f"--widths must be comma-separated integers, got {args.widths!r}")
    try:
        result = run_experiment(
            args.dataset_dir,
            args.out,
            [v for v in args.variants.split(",") if v],
            epochs=args.epochs,
            tiny=args.tiny,
            scales=args.scales,
            seed=args.seed,
            widths=widths,
            overrides=dict(args.override) or None,
            log=log,
        )
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"seunet-experiment: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"seunet-experiment: interrupted; finished variants are kept in {args.out}: run the same command "
            "again to resume.",
            file=sys.stderr,
        )
        return 130
    return 1 if result["failed"] else 0
