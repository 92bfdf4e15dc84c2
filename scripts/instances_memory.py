#!/usr/bin/env python
"""Peak memory and time of :class:`seunet_monai.transforms.instances.NucleusInstances` on one image of a given
size: a measurement behind the memory notes of ``bundle/docs/README.md`` (inference outputs), not a test.

The input is what ``run inferring`` gives the transform: ``float32`` one-hot class probabilities ``(2, H, W)`` of
a synthetic nucleus mask (discs of 3-5 µm radius at 0.25 µm per pixel, a third of them touching a neighbour, at
about the nucleus density of MoNuSeg). The call runs in a fresh subprocess; the figures are the peak resident
memory during the call (Linux ``VmHWM``, reset just before it) less the resident memory at its start, and the peak of the allocations traced by
``tracemalloc`` (numpy reports its arrays to it) during the call, both in MB, with the wall time.

    python scripts/instances_memory.py [--size 1024] [--repeat 1]

Run it niced on a shared machine (``nice -n 19``); ``--size`` is the side of the square image in pixels.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def synthetic_probabilities(size: int, seed: int = 0):
    """``float32`` one-hot ``(2, size, size)`` of random discs (nucleus = channel 1), some touching."""
    import numpy as np

    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), dtype=bool)
    count = max(1, int(size * size / 2500))  # ~400 nuclei per Mpx at 0.25 µm/px (MoNuSeg: 300-700 per image)
    yy, xx = np.ogrid[:size, :size]
    for _ in range(count):
        r = rng.uniform(12, 20)
        cy, cx = rng.uniform(0, size, 2)
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


def measure(size: int) -> dict:
    """One call of ``NucleusInstances`` on a ``size`` x ``size`` input, in this process."""
    import time
    import tracemalloc

    import numpy as np

    from seunet_monai.transforms.instances import NucleusInstances

    probs = synthetic_probabilities(size)
    transform = NucleusInstances(pixel_size_um=0.25)
    transform(probs[:, :64, :64])  # imports and caches warmed up
    _reset_peak()
    rss = _status_mb("VmRSS")
    tracemalloc.start()
    t0 = time.perf_counter()
    labels = transform(probs)
    seconds = time.perf_counter() - t0
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    peak = _status_mb("VmHWM")
    return {
        "size": [size, size],
        "pixels": size * size,
        "nuclei": int(np.asarray(labels).max()),
        "input_mb": round(probs.nbytes / 2**20, 1),
        "rss_before_call_mb": round(rss, 1),
        "peak_rss_increase_mb": round(peak - rss, 1),
        "peak_traced_mb": round(traced, 1),
        "traced_bytes_per_pixel": round(traced * 2**20 / (size * size), 1),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="side of the square image in pixels")
    parser.add_argument("--repeat", type=int, default=1, help="fresh subprocesses (one figure each)")
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        print(json.dumps(measure(args.size)))
        return
    for _ in range(args.repeat):
        out = subprocess.run(
            [sys.executable, __file__, "--size", str(args.size), "--_child"], capture_output=True, text=True, check=True
        )
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
