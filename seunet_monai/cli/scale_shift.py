"""``seunet-scale-shift``: train at synthetic scale 1, test on sets generated at other scales.

Usage::

    seunet-scale-shift --out O [--variants seunet,unet] [--test-scales 0.5,1,2]
        [--epochs N] [--widths 20,40,80,160,320] [--n-train 16] [--size 96] [--batch-size 4] [--tiny]
        [--field-of-view same|fixed]

Writes ``O/scale_shift.csv`` / ``O/scale_shift.md`` (IoU per model, strategy, test scale, generated or
resampled test set) and the runner's outputs in ``O/runs``. See
:func:`seunet_monai.experiments.scale_shift.run_scale_shift_benchmark`. Rerunning resumes.
"""

from __future__ import annotations

import argparse
import sys

from seunet_monai.experiments.scale_shift import FIELDS_OF_VIEW, run_scale_shift_benchmark

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seunet-scale-shift", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="benchmark folder")
    parser.add_argument("--variants", default="seunet,unet", help="comma-separated variant names")
    parser.add_argument("--test-scales", default="0.5,1,2", help="scales of the generated test sets")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the bundle's)")
    parser.add_argument("--widths", default=None, help="five level widths of every variant, e.g. 20,40,80,160,320")
    parser.add_argument("--n-train", type=int, default=16, help="training images at scale 1")
    parser.add_argument("--n-val", type=int, default=4, help="validation images")
    parser.add_argument("--n-test", type=int, default=4, help="test images per test set")
    parser.add_argument("--size", type=int, default=96, help="image side (pixels), also the training patch size")
    parser.add_argument("--batch-size", type=int, default=4, help="training batch size")
    parser.add_argument("--tiny", action="store_true", help="tiny networks (smoke test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator and the training")
    parser.add_argument(
        "--field-of-view",
        choices=FIELDS_OF_VIEW,
        default="same",
        help="same (default): the set generated at scale K shows the scale-1 test tissue in "
        "round(K*size)-px images; fixed: size-px images at every K (a K^2 times smaller area)",
    )
    args = parser.parse_args(argv)
    try:
        scales = [float(v) for v in args.test_scales.split(",")]
        widths = None if args.widths is None else [int(v) for v in args.widths.split(",")]
    except ValueError:
        parser.error("--test-scales must be numbers and --widths integers, comma-separated")
    overrides = {"batch_size": args.batch_size, "patch_size": [args.size, args.size]}
    try:
        result = run_scale_shift_benchmark(
            args.out,
            [v for v in args.variants.split(",") if v],
            scales,
            n_train=args.n_train,
            n_val=args.n_val,
            n_test=args.n_test,
            size=args.size,
            epochs=args.epochs,
            tiny=args.tiny,
            widths=widths,
            overrides=overrides,
            seed=args.seed,
            log=lambda s: print(s, flush=True),
            field_of_view=args.field_of_view,
        )
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"seunet-scale-shift: error: {e}", file=sys.stderr)
        return 2
    return 1 if result["failed"] else 0
