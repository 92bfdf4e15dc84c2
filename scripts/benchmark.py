#!/usr/bin/env python
"""Speed and memory of the GD layers and of one SEUNet training step against the paper's conventional CNN.

    python scripts/benchmark.py [--json FILE] [--device cpu|cuda] [--repeats N] [--threads N] [--quick]
                                [--only-inference] [--infer-repeats N]

Measures, in one run (both sides of every ratio in the same process, interleaved, best of ``--repeats``):

- one GD layer, forward + backward (Ω = 5, 32 channels per group, batch 4, 128×128, σ intervals
  (0,1), (1,2), ..., (4,5)): the dense reference (one convolution per group with the full k×k kernel, the
  paper's way) against the fast path -> ``gdconv_dense_ms``, ``gdconv_fast_ms``, ``gdconv_speedup``;
- one training step (forward + backward + Adam, batch 2 at 256×256) of the default SEUNet and of MONAI's
  ``BasicUNet(features=(60, 120, 240, 480, 960, 60))`` -> ``seunet_step_ms``, ``unet_step_ms``,
  ``seunet_vs_unet`` (SEUNet / UNet), parameter counts, and the peak memory of one step of each
  (``*_peak_mb``: on CUDA ``max_memory_allocated``; on CPU the peak of live tensor memory in the profiler's
  memory timeline, parameters and optimiser state included).

- inference on a 2048×2048 image with the bundle's inferer settings (MONAI ``PatchInferer`` over windows of
  512, overlap 0.25, batch 1, Gaussian blending by :class:`seunet_monai.apps.wsi.BandMerger`, eval mode, fused
  probabilities and head margins) for the same two networks -> ``seunet_infer_mpx_s``, ``unet_infer_mpx_s``
  (megapixels per second), ``seunet_infer_vs_unet`` (time ratio SEUNet / UNet), and the peak tensor memory
  of one window (``*_infer_window_peak_mb``). ``--infer-repeats`` (default 1) sets its repetitions.

- ``--cpu-options``: instead of the cases above, the CPU recipe of ``seunet-experiment --preset monuseg-cpu``
  (widths 20..320, one training step at batch 20 of 128² crops, one eval-mode prediction of a 1000×1000 image as
  the scale sweep makes it) for SEUNet and the paper's CNN (``CNNUNet``), each in float32 (the reference),
  under ``torch.autocast("cpu", dtype=torch.bfloat16)`` and in ``channels_last`` -> ``cpu_options`` (ms per case)
  and ``cpu_options_ratio`` (option / float32, both measured in this run, interleaved). ``--compile`` adds
  ``torch.compile`` (its compile time is reported apart).

``--quick`` shrinks everything (a demo that runs in well under a minute); its figures are not the contract's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings

import torch


def _gd_layer_case(quick: bool):
    from seunet_monai.layers import GDConv

    channels, batch, size = (8, 2, 64) if quick else (32, 4, 128)
    bounds = [(k * 1.0, (k + 1) * 1.0) for k in range(5)]
    layer = GDConv(2, channels, channels, bounds)
    # the fast path gets channels-last input, as inside the SEUNet; the dense reference converts it to the
    # contiguous format, its faster one on CPU (see GDConv._run)
    x = torch.randn(batch * 5, channels, size, size).contiguous(memory_format=torch.channels_last)
    return layer, x


def _nets(quick: bool):
    from monai.networks.nets import BasicUNet

    from seunet_monai.networks import SEUNet

    feats = (10, 20, 40, 80, 160) if quick else (60, 120, 240, 480, 960)
    seunet = SEUNet(spatial_dims=2, in_channels=3, out_channels=2, num_scales=5, channels=feats)
    unet = BasicUNet(spatial_dims=2, in_channels=3, out_channels=2, features=(*feats, feats[0]))
    return seunet, unet


def _train_step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        out = net(x)
        if out.ndim == x.ndim + 1:  # per-head logits (B, Ω, C, H, W): plain mean of the heads' losses
            target = y.unsqueeze(1).expand(-1, out.shape[1], *y.shape[1:]).reshape(-1, *y.shape[1:])
            out = out.reshape(-1, *out.shape[2:])
        else:
            target = y
        torch.nn.functional.cross_entropy(out, target).backward()
        opt.step()

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_interleaved(fns: dict, repeats: int, device: torch.device, warmup: dict | None = None) -> dict:
    """Best-of-``repeats`` wall time in ms of every callable, run in turn so that load affects all alike.

    ``warmup``: callables run once first instead of ``fns`` (allocator, oneDNN primitives, cached filters).
    """
    for fn in (warmup or fns).values():
        fn()
    _sync(device)
    best = {k: float("inf") for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            best[k] = min(best[k], (time.perf_counter() - t0) * 1000.0)
    return best


def _peak_mb_cpu(step) -> float:
    """Peak of live tensor memory during one call of ``step``, in MB (CPU).

    From the profiler's memory timeline (every allocation and free of tensors: parameters, gradients,
    optimiser state, activations, temporaries), so it is deterministic, unlike the process's resident set,
    which depends on when the allocator returns memory to the system.
    """
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "timeline.json")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prof.export_memory_timeline(path, device="cpu")
        with open(path) as f:
            _, sizes = json.load(f)
    return max(sum(row) for row in sizes) / 2**20


def _inference(net: torch.nn.Module, image_file: str, roi: int, device: torch.device):
    """One full inference of ``image_file`` as ``run inferring`` does it (without writing files)."""
    from seunet_monai.apps.wsi import HeadsPatchPredictor, PILImageReader, SlideInferer

    predictor = HeadsPatchPredictor(net.eval(), amp=device.type == "cuda")
    reader = PILImageReader(level=0, channel_dim=0)
    wsi = reader.read(image_file)
    inferer = SlideInferer([roi, roi], 0.25, sw_batch_size=1, device=device)

    def run() -> None:
        splitter = inferer.splitter(reader, 0)
        splitter.set_slide(image_file, wsi)
        inferer(image_file, predictor, splitter=splitter, sink=lambda *a: None)

    return run


def _inference_case(args, res: dict, seunet: torch.nn.Module, unet: torch.nn.Module, device: torch.device) -> None:
    from PIL import Image

    size, roi = (256, 128) if args.quick else (2048, 512)
    rng = torch.Generator().manual_seed(0)
    image = (torch.rand(size, size, 3, generator=rng) * 255).to(torch.uint8).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "image.png")
        Image.fromarray(image).save(path)
        runs = {"seunet": _inference(seunet, path, roi, device), "unet": _inference(unet, path, roi, device)}
        with torch.no_grad():
            window = torch.rand(1, 3, roi, roi, device=device)
            # warm-up on one window (not the whole image): oneDNN primitives and the GD layers' cached filters
            warm = {"seunet": lambda: seunet.eval()(window), "unet": lambda: unet.eval()(window)}
            t = _time_interleaved(runs, args.infer_repeats, device, warmup=warm)
            for name, net in (("seunet", seunet), ("unet", unet)):
                step = lambda: net(window)  # noqa: E731
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    step()
                    res[f"{name}_infer_window_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
                else:
                    res[f"{name}_infer_window_peak_mb"] = _peak_mb_cpu(step)
    mpx = size * size / 1e6
    res.update(
        seunet_infer_mpx_s=mpx / (t["seunet"] / 1000),
        unet_infer_mpx_s=mpx / (t["unet"] / 1000),
        seunet_infer_vs_unet=t["seunet"] / t["unet"],
        infer_image_size=size,
        infer_roi_size=roi,
    )
    print(
        f"inference ({size}x{size}, windows {roi}, overlap 0.25): SEUNet {res['seunet_infer_mpx_s']:.3f} Mpx/s, "
        f"UNet {res['unet_infer_mpx_s']:.3f} Mpx/s, time ratio {res['seunet_infer_vs_unet']:.2f}"
    )


def _cpu_option_cases(quick: bool, with_compile: bool) -> dict:
    """Callables per ``(network, stage, option)`` for ``--cpu-options`` (see the module docstring)."""
    from seunet_monai.networks import SEUNet
    from seunet_monai.networks.cnn import CNNUNet

    widths = (5, 10, 20, 40, 80) if quick else (20, 40, 80, 160, 320)
    batch, crop, image = (2, 64, 128) if quick else (20, 128, 1000)
    x, y = torch.randn(batch, 3, crop, crop), torch.randint(0, 2, (batch, crop, crop))
    big = torch.randn(1, 3, image, image)
    cases: dict = {}
    for name, cls in (("seunet", SEUNet), ("cnn", CNNUNet)):
        options = ["fp32", "bf16", "channels_last"] + (["compile"] if with_compile else [])
        for option in options:
            torch.manual_seed(0)
            kw = {"num_scales": 5} if cls is SEUNet else {}
            net = cls(spatial_dims=2, in_channels=3, out_channels=2, channels=widths, **kw)
            xs, bigs = x, big
            if option == "channels_last":
                net = net.to(memory_format=torch.channels_last)
                xs, bigs = (
                    x.contiguous(memory_format=torch.channels_last),
                    big.contiguous(memory_format=torch.channels_last),
                )
            model = torch.compile(net) if option == "compile" else net
            step = _train_step(model, xs, y)
            bf16 = option == "bf16"

            def train(step=step, bf16=bf16, net=net) -> None:
                net.train()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    step()

            def predict(model=model, net=net, bigs=bigs, bf16=bf16) -> None:
                net.eval()
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    model(bigs)

            cases[(name, "train_step", option)] = train
            cases[(name, "predict_1000px", option)] = predict
    return cases


def _cpu_options(args, res: dict) -> None:
    cases = _cpu_option_cases(args.quick, args.compile)
    if args.compile:
        for key, fn in cases.items():
            if key[2] == "compile":
                t0 = time.perf_counter()
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 - a failing option is reported, the others still measured
                    res.setdefault("compile_failed", {})["/".join(key[:2])] = f"{type(e).__name__}: {e}"[:300]
                    cases[key] = None
                res.setdefault("compile_first_call_s", {})["/".join(key[:2])] = round(time.perf_counter() - t0, 1)
        cases = {k: v for k, v in cases.items() if v is not None}
    t = _time_interleaved({"/".join(k): fn for k, fn in cases.items()}, args.repeats, torch.device("cpu"))
    res["cpu_options"] = t
    res["cpu_options_ratio"] = {
        k: v / t[k.rsplit("/", 1)[0] + "/fp32"] for k, v in t.items() if not k.endswith("/fp32")
    }
    for k, v in t.items():
        ratio = res["cpu_options_ratio"].get(k)
        print(f"{k:36s} {v:9.0f} ms" + ("" if ratio is None else f"   option / fp32 = {ratio:.2f}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per case (best is kept)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a demo, not the contract's figures")
    parser.add_argument("--infer-repeats", type=int, default=1, help="timed repetitions of the inference case")
    parser.add_argument("--only-inference", action="store_true", help="run the inference case alone")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads (torch.set_num_threads); default: torch's"
    )
    parser.add_argument(
        "--cpu-options",
        action="store_true",
        help="float32 / bfloat16 autocast / channels_last at the CPU protocol's sizes, alone",
    )
    parser.add_argument("--compile", action="store_true", help="with --cpu-options: also torch.compile")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    res: dict = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": bool(args.quick),
        "load_avg_start": _load_avg(),
    }

    if args.cpu_options:
        _cpu_options(args, res)
        return _write(args, res)
    if args.only_inference:
        seunet, unet = _nets(args.quick)
        _inference_case(args, res, seunet.to(device), unet.to(device), device)
        return _write(args, res)
    layer, x = _gd_layer_case(args.quick)
    layer, x = layer.to(device), x.to(device)
    dense = type(layer)(**{**_layer_kwargs(layer), "implementation": "dense"}).to(device)
    dense.load_state_dict(layer.state_dict())

    def fast_fn() -> None:
        layer(x).square().mean().backward()

    def dense_fn() -> None:
        dense(x).square().mean().backward()

    t = _time_interleaved({"fast": fast_fn, "dense": dense_fn}, args.repeats, device)
    res.update(gdconv_fast_ms=t["fast"], gdconv_dense_ms=t["dense"], gdconv_speedup=t["dense"] / t["fast"])
    print(
        f"GD layer fwd+bwd: dense {t['dense']:.1f} ms, fast {t['fast']:.1f} ms, speed-up {t['dense'] / t['fast']:.2f}x"
    )

    size, batch = (64, 2) if args.quick else (256, 2)
    seunet, unet = _nets(args.quick)
    seunet, unet = seunet.to(device), unet.to(device)
    xb = torch.randn(batch, 3, size, size, device=device)
    yb = torch.randint(0, 2, (batch, size, size), device=device)
    steps = {"seunet": _train_step(seunet, xb, yb), "unet": _train_step(unet, xb, yb)}
    t = _time_interleaved(steps, args.repeats, device)
    res.update(
        seunet_step_ms=t["seunet"],
        unet_step_ms=t["unet"],
        seunet_vs_unet=t["seunet"] / t["unet"],
        seunet_params=sum(p.numel() for p in seunet.parameters()),
        unet_params=sum(p.numel() for p in unet.parameters()),
    )
    if device.type == "cuda":
        for name, step in steps.items():
            torch.cuda.reset_peak_memory_stats(device)
            step()
            res[f"{name}_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        for name, step in steps.items():
            res[f"{name}_peak_mb"] = _peak_mb_cpu(step)

    print(
        f"training step (batch {batch}, {size}x{size}): SEUNet {t['seunet']:.0f} ms, UNet {t['unet']:.0f} ms, "
        f"ratio {res['seunet_vs_unet']:.2f}"
    )
    print(f"parameters: SEUNet {res['seunet_params']:,}, UNet {res['unet_params']:,}")
    print(f"peak memory of one step: SEUNet {res['seunet_peak_mb']:.0f} MB, UNet {res['unet_peak_mb']:.0f} MB")
    _inference_case(args, res, seunet, unet, device)
    return _write(args, res)


def _load_avg() -> list[float] | None:
    """The machine's 1, 5 and 15-minute load averages (other processes slow every figure down)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # not available on this platform
        return None


def _write(args, res: dict) -> int:
    res["load_avg_end"] = _load_avg()
    print(
        f"device: {res['device']} ({res['device_name']}), torch {res['torch']}, {res['threads']} threads, "
        f"load average {res['load_avg_start']} -> {res['load_avg_end']}"
    )
    if args.json:
        from seunet_monai.runtime.files import atomic_write_json

        atomic_write_json(args.json, res)
    return 0


def _layer_kwargs(layer) -> dict:
    return dict(
        spatial_dims=layer.spatial_dims,
        in_channels=layer.in_channels,
        out_channels=layer.out_channels,
        sigma_bounds=layer.scales.bounds().tolist(),
        order=layer.order,
        sigma_mode=layer.scales.mode,
        discretization=layer.discretization,
        lifting=layer.lifting,
        bias=layer.bias is not None,
        max_half_width=layer.max_half_width,
    )


if __name__ == "__main__":
    sys.exit(main())
