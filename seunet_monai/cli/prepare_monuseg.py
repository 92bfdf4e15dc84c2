"""``seunet-prepare-monuseg``: prepare MoNuSeg (official layout) as a dataset folder with datalist.json.

Usage::

    seunet-prepare-monuseg --src SRC --dst DST [--val-fraction F] [--tile 400] [--stride 200]
        [--stain-norm vahadane|macenko|none] [--stain-reference IMG] [--overwrite] [--skip-bad] [--strict] [--seed S]

The preparation itself: :func:`seunet_monai.data.prepare.monuseg.prepare_monuseg`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from seunet_monai.data.prepare.monuseg import prepare_monuseg
from seunet_monai.data.stain.normalizers import STAIN_METHODS
from seunet_monai.errors import PreparationError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``seunet-prepare-monuseg`` (``scripts/prepare_monuseg.py``)."""
    p = argparse.ArgumentParser(
        prog="prepare_monuseg.py",
        description="Turn the official MoNuSeg folders into a dataset folder with datalist.json (tiles + masks).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--src", help="folder holding MoNuSegTrainingData/ and/or MoNuSegTestData/ (official layout)")
    src.add_argument("--images", help="flat folder of images (.tif/.tiff/.png); all in the training part")
    p.add_argument("--annotations", help="flat folder of Aperio XML files (with --images)")
    p.add_argument("--masks", help="flat folder of binary PNG masks, {0,1} or {0,255} (with --images)")
    p.add_argument("--dst", required=True, help="output dataset folder (must be empty unless --overwrite)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of training images for validation")
    p.add_argument("--val-images", help="comma-separated stems of the validation images (instead of --val-fraction)")
    p.add_argument("--test-images", help="comma-separated stems moved to the test split")
    p.add_argument("--test-tiles", action="store_true", help="tile test images like training ones (paper protocol)")
    p.add_argument("--tile", type=int, default=400, help="tile size (training/validation)")
    p.add_argument("--stride", type=int, default=200, help="tile stride")
    p.add_argument("--stain-norm", choices=STAIN_METHODS, default="vahadane", help="stain normalisation")
    p.add_argument("--stain-reference", default=None, help="reference image (default: a training tile)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --dst written by this script (the new dataset is written beside it and "
        "swapped in when complete)",
    )
    p.add_argument("--skip-bad", action="store_true", help="skip (and report) bad files instead of failing")
    p.add_argument(
        "--strict",
        action="store_true",
        help="an annotation with no region, or most regions outside its image, is a bad file (default: warn)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the training/validation split")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 when something was written)."""
    args = build_parser().parse_args(argv)
    try:
        report = prepare_monuseg(
            args.src,
            args.dst,
            images=args.images,
            annotations=args.annotations,
            masks=args.masks,
            val_images=args.val_images,
            test_images=args.test_images,
            test_tiles=args.test_tiles,
            val_fraction=args.val_fraction,
            tile=args.tile,
            stride=args.stride,
            stain_norm=args.stain_norm,
            stain_reference=args.stain_reference,
            overwrite=args.overwrite,
            skip_bad=args.skip_bad,
            seed=args.seed,
            strict=args.strict,
        )
    except (PreparationError, ValueError) as e:
        print(f"prepare_monuseg: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a missing input, a full disk: the new dataset is never swapped in half-written
        print(f"prepare_monuseg: error: {e} (--dst {args.dst} is unchanged)", file=sys.stderr)
        return 1
    print(
        f"prepare_monuseg: images {report['images']}, tiles {report['tiles']}, regions {report['regions']} "
        f"(skipped {report['skipped_regions']}, clipped vertices {report['clipped_vertices']}), "
        f"skipped files {len(report['skipped_files'])} -> {Path(args.dst) / 'datalist.json'}"
    )
    return 0
