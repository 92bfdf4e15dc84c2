"""``seunet-compare``: merge several scale-sweep outputs into comparison.csv, comparison.md and iou_vs_scale.png.

Usage: seunet-compare EVAL_DIR [EVAL_DIR ...] --out DIR [--strategies mean,pdist,pens] [--overwrite]
(EVAL_DIR: an ``output_dir/eval`` folder of the evaluating step, or its ``output_dir``.)
"""

from __future__ import annotations

import argparse
import sys

from seunet_monai.evaluation.compare import compare_evaluations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seunet-compare", description=__doc__.splitlines()[0])
    parser.add_argument("eval_dirs", nargs="+", help="evaluation folders (or run folders holding eval/)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--strategies", default="mean,pdist,pens", help="strategies drawn in the figure")
    parser.add_argument("--overwrite", action="store_true", help="replace existing comparison files")
    args = parser.parse_args(argv)
    try:
        result = compare_evaluations(
            args.eval_dirs, args.out, strategies=args.strategies.split(","), overwrite=args.overwrite
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"seunet-compare: error: {e}", file=sys.stderr)
        return 2
    for f in result["files"]:
        print(f)
    return 0
