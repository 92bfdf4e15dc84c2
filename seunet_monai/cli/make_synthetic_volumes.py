"""``seunet-make-synthetic-volumes``: write a synthetic fluorescence-like 3D nuclei dataset (NIfTI volumes,
labels, datalist.json) for the bundle's volume variant (``configs/variants/3d/`` of the bundle).

Example::

    seunet-make-synthetic-volumes --dst data/volumes --n-train 8 --size 64
    seunet-make-synthetic-volumes --dst data/volumes_x2 --scale 2       # nuclei twice as large
    seunet-make-synthetic-volumes --dst data/volumes_aniso --spacing 1,1,2   # half as many, thicker slices
"""

from __future__ import annotations

import argparse
import sys

from seunet_monai.data.synthetic.volumes import make_synthetic_volumes

__all__ = ["main"]


def _spacing(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--spacing must be one number or three (x,y,z), got {text!r}") from e
    if len(values) not in (1, 3) or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"--spacing must be one positive number or three (x,y,z), got {text!r}")
    return values * 3 if len(values) == 1 else values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="seunet-make-synthetic-volumes", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dst", required=True, help="output folder (missing or empty unless --overwrite)")
    p.add_argument("--n-train", type=int, default=8, help="training volumes (default 8)")
    p.add_argument("--n-val", type=int, default=2, help="validation volumes (default 2)")
    p.add_argument("--n-test", type=int, default=2, help="test volumes (default 2)")
    p.add_argument("--size", type=int, default=64, help="voxels per axis (default 64)")
    p.add_argument("--scale", type=float, default=1.0, help="magnification of every length (default 1)")
    p.add_argument(
        "--spacing",
        type=_spacing,
        default=[1.0, 1.0, 1.0],
        help="voxel size x,y,z at scale 1 (default 1,1,1; e.g. 1,1,2 for anisotropic stacks)",
    )
    p.add_argument("--photons", type=float, default=60.0, help="photon count at full brightness (default 60)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the content of a non-empty --dst, only if a synthetic generator wrote it",
    )
    args = p.parse_args(argv)
    try:
        path = make_synthetic_volumes(
            args.dst,
            n_train=args.n_train,
            n_val=args.n_val,
            n_test=args.n_test,
            size=args.size,
            scale=args.scale,
            spacing=args.spacing,
            photons=args.photons,
            seed=args.seed,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError) as e:
        print(f"seunet-make-synthetic-volumes: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
