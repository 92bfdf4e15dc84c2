"""Peak memory of whole-slide inference on a large, mostly blank pyramidal slide (a measurement, not a test).

Builds a SIZE x SIZE tiled, zlib-compressed, pyramidal TIFF (glass-grey background with a few islands of a
genuine MoNuSeg image; cheap to write because constant tiles compress to almost nothing), runs
:class:`seunet_monai.apps.wsi.SlideInferenceWorkflow` on it with a small SEUNet and reports the peak resident
memory of this process (``ru_maxrss``), the wall time and the patch counts as JSON.

    python scripts/wsi_memory.py --size 40000 [--islands 4] [--work DIR] [--widths 5,10,20,40,80]

``--work`` (default: a temporary folder, removed at the end) receives the slide and the outputs.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_slide(path: Path, size: int, tissue: np.ndarray, islands: int, mpp: float = 0.25, tile: int = 512) -> None:
    """A ``size`` x ``size`` RGB pyramid (factor 4 levels in SubIFDs) written tile by tile."""
    import tifffile

    rng = np.random.default_rng(0)
    th, tw = tissue.shape[:2]
    corners = [(int(rng.integers(0, size - th)), int(rng.integers(0, size - tw))) for _ in range(islands)]

    def level_tiles(step: int):
        n = -(-size // step)
        small = tissue[::step, ::step]
        for y in range(0, n, tile):
            for x in range(0, n, tile):
                t = np.full((tile, tile, 3), 238, np.uint8)
                for cy, cx in corners:
                    cy, cx = cy // step, cx // step
                    y0, y1 = max(y, cy), min(y + tile, cy + small.shape[0])
                    x0, x1 = max(x, cx), min(x + tile, cx + small.shape[1])
                    if y0 < y1 and x0 < x1:
                        t[y0 - y : y1 - y, x0 - x : x1 - x] = small[y0 - cy : y1 - cy, x0 - cx : x1 - cx]
                yield t

    steps = [1, 4, 16]
    opts = dict(tile=(tile, tile), compression="zlib", photometric="rgb", dtype=np.uint8, resolutionunit="CENTIMETER")
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for k, s in enumerate(steps):
            n = -(-size // s)
            extra = {"subifds": len(steps) - 1} if k == 0 else {"subfiletype": 1}
            tif.write(level_tiles(s), shape=(n, n, 3), resolution=(1e4 / (mpp * s),) * 2, **opts, **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=40000)
    parser.add_argument("--islands", type=int, default=4)
    parser.add_argument("--work", default=None, help="folder for the slide and the outputs (default: temporary)")
    parser.add_argument("--widths", default="5,10,20,40,80")
    parser.add_argument("--roi", type=int, default=512)
    args = parser.parse_args()
    if args.work is None:
        with tempfile.TemporaryDirectory(prefix="wsi_memory_") as tmp:
            return run(args, Path(tmp))
    work = Path(args.work)
    if work.exists() and any(work.iterdir()):
        parser.error(f"--work {work} is not empty; give an empty or new folder (nothing is deleted)")
    return run(args, work)


def run(args: argparse.Namespace, work: Path) -> None:
    """Build the slide under ``work``, segment it and print the figures."""
    import tifffile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from seunet_monai.apps.wsi import SlideInferenceWorkflow, SlideInferer
    from seunet_monai.networks import SEUNet

    (work / "in").mkdir(parents=True)
    images = sorted(
        (Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "monuseg-train" / "images").glob("*.tif")
    )
    tissue = tifffile.imread(images[0]) if images else np.full((1000, 1000, 3), (150, 80, 140), np.uint8)
    t0 = time.perf_counter()
    write_slide(work / "in" / "big.tif", args.size, tissue, args.islands)
    build_s = time.perf_counter() - t0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    widths = tuple(int(w) for w in args.widths.split(","))
    net = SEUNet(spatial_dims=2, in_channels=3, out_channels=2, num_scales=5, channels=widths)
    inferer = SlideInferer([args.roi] * 2, overlap=0.25, sw_batch_size=1)
    wf = SlideInferenceWorkflow(work / "in", work / "out", net, inferer, target_mpp=0.25, progress=False)
    t0 = time.perf_counter()
    wf.run()
    summary = json.loads((work / "out" / "big_summary.json").read_text())
    print(
        json.dumps(
            {
                "slide": [args.size, args.size],
                "slide_file_mb": round((work / "in" / "big.tif").stat().st_size / 2**20, 1),
                "build_s": round(build_s, 1),
                "inference_wall_s": round(time.perf_counter() - t0, 1),
                "peak_rss_mb_before_inference": round(rss_before / 1024, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "patches_run": summary["patches"]["run"],
                "patches_total": summary["patches"]["total"],
                "objects": summary["nuclei"]["count"],
                "widths": widths,
                "mask_tif_mb": round((work / "out" / "big_mask.tif").stat().st_size / 2**20, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
