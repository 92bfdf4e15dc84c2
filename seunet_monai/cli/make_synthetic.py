"""``seunet-make-synthetic``: write a synthetic H&E-like dataset (images, labels, datalist.json) for the bundle.

Example::

    seunet-make-synthetic --dst data/synthetic --task nuclei --n-train 16 --size 128 --scale 1
    seunet-make-synthetic --dst data/synthetic_x2 --scale 2   # same tissue statistics, x2 magnified
"""

from __future__ import annotations

import argparse
import sys

from seunet_monai.data.synthetic.histology import TASKS, make_synthetic_dataset

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="seunet-make-synthetic", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dst", required=True, help="output folder (missing or empty unless --overwrite)")
    p.add_argument("--task", choices=TASKS, default="nuclei", help="nuclei: 0/1 masks; tissue: 5 region classes")
    p.add_argument("--n-train", type=int, default=16, help="training samples (default 16)")
    p.add_argument("--n-val", type=int, default=4, help="validation samples (default 4)")
    p.add_argument("--n-test", type=int, default=4, help="test samples (default 4)")
    p.add_argument("--size", type=int, default=128, help="image height and width in pixels (default 128)")
    p.add_argument("--scale", type=float, default=1.0, help="magnification of every length (default 1)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace the content of a non-empty --dst")
    args = p.parse_args(argv)
    try:
        path = make_synthetic_dataset(
            args.dst,
            task=args.task,
            n_train=args.n_train,
            n_val=args.n_val,
            n_test=args.n_test,
            size=args.size,
            scale=args.scale,
            seed=args.seed,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError) as e:
        print(f"seunet-make-synthetic: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
