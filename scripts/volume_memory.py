#!/usr/bin/env python
"""Peak memory per voxel of the 3D SEUNet in eval mode (one forward pass) and in one training step (forward,
multi-head loss, backward, Adam step): a measurement behind the volume variant's window sizes and the 3D sweep's
voxel budget (``bundle/configs/variants/3d/``), not a test.

Each (mode, size) runs in a fresh subprocess on a random cube of ``size`` voxels a side (batch 1, one channel).
On the CPU the figure is the peak resident memory (``ru_maxrss``) less the memory after building the network;
on CUDA ``torch.cuda.max_memory_allocated``. The memory per voxel is the slope between the sizes (the fixed
cost cancels out), and the JSON also says how many voxels a 24 GB budget affords.

    python scripts/volume_memory.py [--sizes 32,48] [--modes eval,train] [--widths 60,120,240,480,960] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _measure(mode: str, size: int, widths: list[int], num_scales: int, device: str) -> dict:
    import torch

    from seunet_monai.losses import MultiHeadLoss
    from seunet_monai.networks import SEUNet

    dev = torch.device(device)
    net = SEUNet(spatial_dims=3, in_channels=1, out_channels=2, num_scales=num_scales, channels=widths).to(dev)
    x = torch.rand(1, 1, size, size, size, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if mode == "eval":
        net.eval()
        with torch.no_grad():
            net(x)
    else:
        net.train()
        loss_fn = MultiHeadLoss(num_heads=num_scales, spatial_dims=3).to(dev)
        opt = torch.optim.Adam(list(net.parameters()) + list(loss_fn.parameters()), lr=1e-3)
        y = (torch.rand(1, 1, size, size, size, device=dev) > 0.5).long()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "mode": mode,
        "size": size,
        "voxels": size**3,
        "base_mb": round(base, 1),
        "peak_mb": round(peak, 1),
        "delta_mb": round(peak - base, 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="32,48", help="cube sides to measure (default 32,48)")
    p.add_argument("--modes", default="eval,train", help="eval and/or train (default both)")
    p.add_argument("--widths", default="60,120,240,480,960", help="the five level widths (default: the paper's)")
    p.add_argument("--num-scales", type=int, default=5, help="scale groups (default 5)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--budget-gb", type=float, default=24.0, help="memory budget to size windows for (default 24)")
    p.add_argument("--child", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    widths = [int(v) for v in args.widths.split(",")]
    if args.child:
        print(json.dumps(_measure(args.child[0], int(args.child[1]), widths, args.num_scales, args.device)))
        return 0
    sizes = [int(v) for v in args.sizes.split(",")]
    results = {}
    for mode in args.modes.split(","):
        rows = []
        for size in sizes:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                mode,
                str(size),
                "--widths",
                args.widths,
                "--num-scales",
                str(args.num_scales),
                "--device",
                args.device,
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
        a, b = rows[0], rows[-1]
        per_voxel = (b["delta_mb"] - a["delta_mb"]) * 2**20 / max(1, b["voxels"] - a["voxels"])
        fixed = a["delta_mb"] - per_voxel * a["voxels"] / 2**20
        affordable = (
            (args.budget_gb * 1024 - b["base_mb"] - max(fixed, 0)) * 2**20 / per_voxel if per_voxel > 0 else None
        )
        results[mode] = {
            "runs": rows,
            "bytes_per_voxel": round(per_voxel),
            "fixed_mb": round(fixed, 1),
            f"voxels_in_{args.budget_gb:g}_gb": None if affordable is None else int(affordable),
            "cube_side": None if affordable is None else int(affordable ** (1 / 3)),
        }
    print(json.dumps({"device": args.device, "widths": widths, "num_scales": args.num_scales, **results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
