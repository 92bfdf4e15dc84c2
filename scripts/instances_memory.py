#!/usr/bin/env python
"""Peak memory and time of :class:`seunet_monai.transforms.instances.NucleusInstances` on one image of a given
size: a measurement behind the memory notes of ``bundle/docs/README.md`` (inference outputs), not a test.

The input is what ``run inferring`` gives the transform: ``float32`` one-hot class probabilities ``(2, H, W)`` of
a synthetic nucleus mask (discs of 3-5 µm radius at 0.25 µm per pixel, a third of them touching a neighbour, at
about the nucleus density of MoNuSeg). The call runs in a fresh subprocess; the figures are the peak resident
memory during the call (Linux ``VmHWM``, reset just before it) less the resident memory at its start, and the peak of the allocations traced by
``tracemalloc`` (numpy reports its arrays to it) during the call, both in MB, with the wall time.

    python scripts/instances_memory.py [--size 1024] [--width SIZE] [--repeat 1] [--band 0]

With ``--band N`` the figures are those of the slide path instead: the class mask in a raw file on disk (as
``run inferring`` stores it) labelled band by band (:func:`seunet_monai.apps.wsi.iter_nucleus_bands`, ``N`` rows
per band), whose memory follows the width and the band, not the image's height.

Run it niced on a shared machine (``nice -n 19``); ``--size`` is the height of the image in pixels (and its width
unless ``--width`` is given).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def synthetic_probabilities(size: int, seed: int = 0, width: int | None = None):
    """``float32`` one-hot ``(2, size, width)`` (``width`` default ``size``) of random discs (nucleus = channel 1),
    some touching."""
    import numpy as np

    rng = np.random.default_rng(seed)
    width = size if width is None else int(width)
    mask = np.zeros((size, width), dtype=bool)
    count = max(1, int(size * width / 2500))  # ~400 nuclei per Mpx at 0.25 µm/px (MoNuSeg: 300-700 per image)
    yy, xx = np.ogrid[:size, :width]
    for _ in range(count):
        r = rng.uniform(12, 20)
        cy, cx = rng.uniform(0, size), rng.uniform(0, width)
        box = (slice(max(0, int(cy - r)), int(cy + r) + 1), slice(max(0, int(cx - r)), int(cx + r) + 1))
        mask[box] |= (yy[box[0]] - cy) ** 2 + (xx[:, box[1]] - cx) ** 2 <= r * r
        if rng.random() < 0.33:  # a touching neighbour
            cy2, cx2 = cy + 1.6 * r * np.cos(a := rng.uniform(0, 2 * np.pi)), cx + 1.6 * r * np.sin(a)
            box = (
                slice(max(0, int(cy2 - r)), max(0, int(cy2 + r) + 1)),
                slice(max(0, int(cx2 - r)), max(0, int(cx2 + r) + 1)),
            )
            mask[box] |= (yy[box[0]] - cy2) ** 2 + (xx[:, box[1]] - cx2) ** 2 <= r * r
    return np.stack([~mask, mask]).astype(np.float32)


def _status_mb(key: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process in MB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def _reset_peak() -> None:
    """Reset ``VmHWM`` to the current resident memory (Linux ``clear_refs``, value 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def measure(size: int, band: int = 0, width: int | None = None) -> dict:
    """One call of ``NucleusInstances`` on a ``size`` x ``width`` input (``band`` 0), or the bands of its class
    mask stored on disk (``band`` rows each), in this process."""
    import tempfile
    import time
    import tracemalloc
    from pathlib import Path

    import numpy as np

    from seunet_monai.apps.wsi import RawMask, iter_nucleus_bands
    from seunet_monai.transforms.instances import NucleusInstances

    probs = synthetic_probabilities(size, width=width)
    width = probs.shape[2]
    transform = NucleusInstances(pixel_size_um=0.25)
    transform(probs[:, :64, :64])  # imports and caches warmed up
    tmp = tempfile.TemporaryDirectory(prefix="instances_memory_")
    mask = RawMask(Path(tmp.name) / "mask.raw", (size, width))
    mask.write_rows(0, probs[1] > probs[0])
    if band:
        del probs

    def call() -> int:
        if not band:
            return int(np.asarray(transform(probs)).max())
        return sum(part.count for part in iter_nucleus_bands(mask, transform, 0.25, band=band))

    _reset_peak()
    rss = _status_mb("VmRSS")
    tracemalloc.start()
    t0 = time.perf_counter()
    count = call()
    seconds = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    peak = _status_mb("VmHWM")
    tmp.cleanup()
    guard = int(10.0 / 0.25**2) + 1  # the rows of iter_nucleus_bands' hole guard at the defaults
    return {
        "size": [size, width],
        "pixels": size * width,
        "band": band or None,
        "window_rows": min(size, guard + band + guard + 120) if band else None,
        "nuclei": count,
        "input_mb": round(mask.shape[0] * mask.shape[1] * (1 if band else 8) / 2**20, 1),
        "rss_before_call_mb": round(rss, 1),
        "peak_rss_increase_mb": round(peak - rss, 1),
        "peak_traced_mb": round(traced, 1),
        "traced_bytes_per_pixel": round(traced * 2**20 / (size * width), 1),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="side of the square image in pixels")
    parser.add_argument("--repeat", type=int, default=1, help="fresh subprocesses (one figure each)")
    parser.add_argument("--width", type=int, default=None, help="width in pixels (default: --size)")
    parser.add_argument("--band", type=int, default=0, help="rows per band of the slide path (0: one call)")
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        print(json.dumps(measure(args.size, args.band, args.width)))
        return
    for _ in range(args.repeat):
        cmd = [sys.executable, __file__, "--size", str(args.size), "--band", str(args.band), "--_child"]
        cmd += ["--width", str(args.width)] if args.width else []
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
