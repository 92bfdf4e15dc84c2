"""``seunet-prepare-bcss``: prepare BCSS (RGB regions + code masks) as a 5-class tiled dataset folder.

Usage::

    seunet-prepare-bcss --images DIR --masks DIR --dst DST [--tile 512] [--test-institutions CODES]
        [--class-map FILE] [--overwrite] [--skip-bad] [--val-fraction F] [--seed S]
        [--stain-norm none|vahadane|macenko] [--stain-reference IMG]

The preparation itself: :func:`seunet_monai.data.prepare.bcss.prepare_bcss`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from seunet_monai.data.prepare.bcss import DEFAULT_TEST_INSTITUTIONS, prepare_bcss
from seunet_monai.data.stain.normalizers import STAIN_METHODS
from seunet_monai.errors import PreparationError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of ``seunet-prepare-bcss`` (``scripts/prepare_bcss.py``)."""
    p = argparse.ArgumentParser(
        prog="prepare_bcss.py",
        description="Turn BCSS regions and code masks into a 5-class tiled dataset folder with datalist.json.",
    )
    p.add_argument("--images", required=True, help="folder of RGB regions (TCGA-XX-...png)")
    p.add_argument("--masks", required=True, help="folder of code masks with the same file names")
    p.add_argument("--dst", required=True, help="output dataset folder (must be empty unless --overwrite)")
    p.add_argument("--tile", type=int, default=512, help="tile size (all splits)")
    p.add_argument(
        "--test-institutions",
        default=None,
        help=f"comma-separated held-out site codes (default {','.join(DEFAULT_TEST_INSTITUTIONS)})",
    )
    p.add_argument("--class-map", default=None, help="JSON or TSV file code -> class merged onto the default")
    p.add_argument("--overwrite", action="store_true", help="replace the content of a non-empty --dst")
    p.add_argument("--skip-bad", action="store_true", help="skip (and report) bad files instead of failing")
    p.add_argument("--val-fraction", type=float, default=0.2, help="fraction of non-test slides for validation")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation split")
    p.add_argument("--stain-norm", choices=STAIN_METHODS, default="none", help="stain normalisation")
    p.add_argument("--stain-reference", default=None, help="reference image (default: a training tile)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 when something was written)."""
    args = build_parser().parse_args(argv)
    tests = args.test_institutions.split(",") if args.test_institutions else None
    try:
        report = prepare_bcss(
            args.images,
            args.masks,
            args.dst,
            tile=args.tile,
            test_institutions=tests,
            class_map=args.class_map,
            overwrite=args.overwrite,
            skip_bad=args.skip_bad,
            val_fraction=args.val_fraction,
            seed=args.seed,
            stain_norm=args.stain_norm,
            stain_reference=args.stain_reference,
        )
    except (PreparationError, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"prepare_bcss: error: {e}", file=sys.stderr)
        return 1
    print(
        f"prepare_bcss: images {report['images']}, tiles {report['tiles']}, dropped empty tiles "
        f"{report['dropped_empty_tiles']}, skipped files {len(report['skipped_files'])} "
        f"-> {Path(args.dst) / 'datalist.json'}"
    )
    return 0
