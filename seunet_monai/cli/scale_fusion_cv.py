"""``scale_fusion_cv``: leave-one-image-out validation of the ``scale`` fusion
(:mod:`seunet_monai.evaluation.fusion_validation`) in two steps.

Usage::

    python scripts/scale_fusion_cv.py cache --checkpoint CKPT --data-dir PREPARED --out CACHE
        [--scales eval9|paper17|S ...] [--with-tiles [--tile-scales eval9|paper17|S ...]] [--dry-run]
        [--config-file F ...] [--set KEY=JSON ...] [--roi-size N] [--overlap 0.25] [--sw-batch-size 4]
    python scripts/scale_fusion_cv.py score --cache CACHE --out REPORT_DIR [--calibration whole|tiles]
        [--profile-scales 9|17|S ...] [--rules scale,lcb_z1,...] [--in-sample]

``cache`` runs the network (:mod:`seunet_monai.evaluation.fusion_cache_build`; resumable: run it again to finish or
extend a cache); ``score`` needs no network and writes ``REPORT_DIR/cv_report.json`` and ``cv_report.md``. Errors
print one ``error:`` line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from seunet_monai.errors import ConfigValueError, SeunetError
from seunet_monai.evaluation.checkpoint_calibration import load_bundle_setup
from seunet_monai.evaluation.fusion_cache import EVAL_SCALES, PAPER_SCALES, cache_code_version
from seunet_monai.evaluation.fusion_cache_build import build_cache
from seunet_monai.evaluation.fusion_validation import score_cache, write_report
from seunet_monai.fusion.scale_rules import CANDIDATE_RULES

__all__ = ["main", "parse_scales"]

PROG = "scale_fusion_cv"
_NAMED_SCALES = {"eval9": EVAL_SCALES, "paper17": PAPER_SCALES}


def parse_scales(values: Sequence[str]) -> list[float]:
    """``["eval9"]`` (0.5 .. 2), ``["paper17"]`` (0.25 .. 4) or positive numbers.

    Raises:
        ConfigValueError: for anything else.
    """
    if len(values) == 1 and values[0] in _NAMED_SCALES:
        return list(_NAMED_SCALES[values[0]])
    try:
        scales = [float(v) for v in values]
    except ValueError:
        scales = []
    if not scales or any(not s > 0 for s in scales):
        raise ConfigValueError(f"scales must be eval9, paper17 or positive numbers, got {' '.join(values)!r}.")
    return scales


def _overrides(pairs: Sequence[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigValueError(f"--set expects KEY=VALUE (VALUE in JSON), got {pair!r}.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _cache(args: argparse.Namespace) -> int:
    overrides = _overrides(args.set)
    setup = load_bundle_setup(args.checkpoint, args.data_dir, args.config_file or None, overrides, args.split)
    roi = None if args.roi_size is None else (args.roi_size if len(args.roi_size) > 1 else args.roi_size[0])
    build_cache(
        setup["network"],
        setup["data"],
        args.out,
        args.checkpoint,
        parse_scales(args.scales),
        tile_scales=parse_scales(args.tile_scales or args.scales) if args.with_tiles else None,
        num_classes=setup["num_classes"],
        ignore_index=setup["ignore_index"],
        roi_size=roi,
        overlap=args.overlap,
        sw_batch_size=args.sw_batch_size,
        device=setup["device"],
        dry_run=args.dry_run,
        settings={
            "data_dir": str(args.data_dir.resolve()),
            "split": args.split,
            "config_files": [str(f) for f in args.config_file],
            "overrides": overrides,
        },
    )
    return 0


def _score(args: argparse.Namespace, argv: Sequence[str]) -> int:
    names = CANDIDATE_RULES if args.rules is None else args.rules.split(",")
    unknown = [n for n in names if n not in CANDIDATE_RULES]
    if unknown:
        raise ConfigValueError(f"unknown rule(s) {unknown}; known: {', '.join(CANDIDATE_RULES)}.")
    profile = args.profile_scales[0] if args.profile_scales in (["9"], ["17"]) else parse_scales(args.profile_scales)
    result = score_cache(
        args.cache, args.calibration, profile, rules={n: CANDIDATE_RULES[n] for n in names}, loio=not args.in_sample
    )
    provenance = {"command": " ".join(shlex.quote(a) for a in [PROG, *argv]), "code": cache_code_version()}
    for path in write_report(result, args.out, provenance):
        print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[1])
    sub = parser.add_subparsers(dest="step", required=True)
    c = sub.add_parser("cache", help="predict and cache the heads of every validation image at each scale")
    c.add_argument("--checkpoint", required=True, type=Path, help="the model.pt (its folder is the bundle's ckpt_dir)")
    c.add_argument("--data-dir", required=True, type=Path, help="a prepared dataset folder (datalist.json)")
    c.add_argument("--out", required=True, type=Path, help="the cache folder (created; resumed when it exists)")
    c.add_argument("--scales", nargs="+", default=["eval9"], help="scales of the whole images (default eval9)")
    c.add_argument("--with-tiles", action="store_true", help="cache the split's items as they are (tiles) too")
    c.add_argument("--tile-scales", nargs="+", default=None, help="scales of the tiles (default: --scales)")
    c.add_argument("--split", default="validation", help="the datalist split (default validation)")
    c.add_argument("--config-file", action="append", default=[], help="bundle config (default train + calibrate)")
    c.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="config override, e.g. 'network_def#channels=[20,40,80,160,320]'",
    )
    c.add_argument("--roi-size", type=int, nargs="+", default=None, help="calibration#roi_size (default: whole)")
    c.add_argument("--overlap", type=float, default=0.25)
    c.add_argument("--sw-batch-size", type=int, default=4)
    c.add_argument("--dry-run", action="store_true", help="state the plan (megapixels) and stop")
    s = sub.add_parser("score", help="leave-one-image-out scores of the candidate rules (no network)")
    s.add_argument("--cache", required=True, type=Path)
    s.add_argument("--out", required=True, type=Path, help="folder for cv_report.json and cv_report.md")
    s.add_argument(
        "--calibration",
        choices=("whole", "tiles"),
        default="whole",
        help="calibrate on the other whole images (default) or on their tiles (the old default)",
    )
    s.add_argument(
        "--profile-scales",
        nargs="+",
        default=["9"],
        help="the profile's scales: 9 (0.5..2, default), 17 (0.25..4) or a list of cached scales",
    )
    s.add_argument("--rules", default=None, help=f"comma-separated subset of {', '.join(CANDIDATE_RULES)}")
    s.add_argument("--in-sample", action="store_true", help="calibrate on every image (in-sample check)")
    args = parser.parse_args(argv)
    # the package's log lines (plan, progress) on stdout while the command runs
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package = logging.getLogger("seunet_monai")
    level = package.level
    package.addHandler(handler)
    package.setLevel(logging.INFO)
    try:
        return _cache(args) if args.step == "cache" else _score(args, sys.argv[1:] if argv is None else argv)
    except SeunetError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
