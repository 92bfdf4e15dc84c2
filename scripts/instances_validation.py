#!/usr/bin/env python
"""Nucleus instances of a trained model on prepared validation images: connected components against the
watershed post-processing (:class:`seunet_monai.transforms.instances.NucleusInstances`) over a grid of its
parameters, scored with PQ / SQ / RQ, AJI, detection F1 and the object count ratio.

    python scripts/instances_validation.py --data DATA --out OUT [--checkpoint bundle/models/model.pt]
        [--split test] [--scales 1] [--pixel-size-um 0.25]

``DATA`` is a prepared dataset (``datalist.json`` with ``image``, ``label`` and ``instance`` items, e.g. the
``out/data/sweep`` folder of ``seunet-experiment --preset monuseg-cpu``, whose ``test`` split holds the 5 whole
validation images, already stain-normalised). The fused probabilities of every image and scale are cached in
``OUT/cache`` (the network runs once); the table goes to ``OUT/instances_validation.md`` and ``.json``.
The images and their instance labels are rescaled by each scale (nearest for labels) and the pixel size is
``pixel_size_um / scale``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import PILReader
from monai.transforms import LoadImage
from skimage.measure import label as connected_components

from seunet_monai.evaluation.instances import InstanceMetrics
from seunet_monai.evaluation.pretrained import BUNDLE_MODEL, load_pretrained
from seunet_monai.fusion.strategies import fuse
from seunet_monai.inferers import predict_heads
from seunet_monai.layers.rescale import rescale_image, rescale_label
from seunet_monai.runtime.files import atomic_write_json, atomic_write_text
from seunet_monai.transforms.instances import NucleusInstances

KEYS = ("pq", "sq", "rq", "aji", "f1", "count_ratio")


def _load(path: Path) -> np.ndarray:
    return np.asarray(LoadImage(image_only=True, reader=PILReader(reverse_indexing=False))(str(path)))


def _items(data: Path, split: str) -> list[dict]:
    datalist = json.loads((data / "datalist.json").read_text())
    items = datalist.get(split) or []
    if not items or any("instance" not in it for it in items):
        raise SystemExit(
            f"--data {data}: split {split!r} has no items with an 'instance' key; prepare the data with "
            "prepare_monuseg (it writes instance labels) and pass the split that holds them."
        )
    return items


def predict_cached(net: torch.nn.Module, image: np.ndarray, scale: float, fusion: str, cache: Path) -> np.ndarray:
    """Fused class probabilities ``(C, H, W)`` (float16 on disk) of ``image`` ``(H, W, 3)`` at ``scale``."""
    if cache.exists():
        return np.load(cache).astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = rescale_image(x, scale)
    with torch.no_grad():
        probs = predict_heads(net, x, None, torch.device("cpu"))  # (1, Ω, C, H, W)
        fused = fuse(probs, fusion, profile=net)[0].numpy()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, fused.astype(np.float16))
    tmp.replace(cache)
    return fused


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, default=BUNDLE_MODEL)
    ap.add_argument("--split", default="test")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0])
    ap.add_argument("--fusion", default="pens")
    ap.add_argument("--pixel-size-um", type=float, default=0.25, help="pixel size at scale 1 (MoNuSeg: ~0.25)")
    ap.add_argument("--marker-h-um", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--min-area-um2", type=float, nargs="+", default=[0.0, 5.0, 10.0, 20.0])
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        raise SystemExit(f"--checkpoint {args.checkpoint}: no such file.")
    items = _items(args.data, args.split)
    net = load_pretrained(args.checkpoint)
    t0 = time.perf_counter()
    configs = [("connected components", None, None)] + [
        ("watershed", h, a) for h, a in itertools.product(args.marker_h_um, args.min_area_um2)
    ]
    results = []
    for scale in args.scales:
        metrics = {c: InstanceMetrics() for c in configs}
        for it in items:
            image = _load(args.data / it["image"])[..., :3]
            truth = _load(args.data / it["instance"]).astype(np.int64)
            if image.shape[:2] != truth.shape[:2]:
                raise SystemExit(f"{it['image']}: image and instance label differ in size.")
            truth_s = rescale_label(torch.from_numpy(truth)[None], scale)[0].numpy()
            fused = predict_cached(
                net,
                image,
                scale,
                args.fusion,
                args.out / "cache" / f"{it.get('name', Path(it['image']).stem)}_s{scale:g}.npy",
            )
            size = args.pixel_size_um / scale
            for c in configs:
                kind, h, a = c
                if kind == "connected components":
                    pred = connected_components(fused.argmax(0) == 1, connectivity=1)
                else:
                    pred = NucleusInstances(pixel_size_um=size, marker_h_um=h, min_nucleus_area_um2=a, dtype=np.int64)(
                        fused
                    )[0]
                metrics[c].update(np.asarray(pred), truth_s)
        for c, m in metrics.items():
            agg = m.aggregate()
            results.append(
                {
                    "scale": scale,
                    "method": c[0],
                    "marker_h_um": c[1],
                    "min_area_um2": c[2],
                    **{k: float(agg[k]) for k in KEYS},
                }
            )
        print(f"scale {scale:g} done, {time.perf_counter() - t0:.0f} s", flush=True)
    lines = [
        f"# Nucleus instances on `{args.data}` ({args.split}, {len(items)} images)",
        "",
        f"checkpoint `{args.checkpoint}`, fusion {args.fusion}, pixel size {args.pixel_size_um} µm at scale 1; "
        f"{time.perf_counter() - t0:.0f} s",
        "",
        "| scale | method | marker h (µm) | min area (µm²) | PQ | SQ | RQ | AJI | F1 | pred/true |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['scale']:g} | {r['method']} | {r['marker_h_um'] if r['marker_h_um'] is not None else '–'} | "
            f"{r['min_area_um2'] if r['min_area_um2'] is not None else '–'} | "
            + " | ".join(f"{r[k]:.3f}" for k in KEYS)
            + " |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "instances_validation.md", "\n".join(lines) + "\n")
    atomic_write_json(
        args.out / "instances_validation.json", {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
