"""Figures of the scale sweep in the style of the paper's Figs. 2-7 (matplotlib, Agg, no pyplot state).

Every function writes one PNG atomically and returns its path. Figures are built with
``matplotlib.figure.Figure`` directly (the Agg canvas), so no global backend is touched.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from seunet_monai.evaluation.report import strategy_sort_key
from seunet_monai.runtime.files import atomic_write_bytes

__all__ = [
    "plot_equivariance",
    "plot_examples",
    "plot_filters",
    "plot_iou_vs_scale",
    "plot_message",
    "plot_sigmas",
]


def _save(fig: Figure, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def plot_message(path: str | Path, title: str, message: str) -> Path:
    """A figure holding only a message (e.g. "no learned σ in this network"), so the file set is uniform."""
    fig = Figure(figsize=(5, 2))
    ax = fig.add_subplot(111)
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return _save(fig, path)


def plot_iou_vs_scale(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    title: str = "IoU vs test scale",
    strategies: Sequence[str] | None = None,
) -> Path:
    """IoU (%) against test scale on a log axis, one line per (model, strategy) (Fig. 2).

    Args:
        rows: long-format rows with ``model, strategy, scale, iou``.
        path: output PNG.
        title: figure title.
        strategies: restrict to these strategies (default all).
    """
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot(111)
    keys = sorted({(str(r["model"]), str(r["strategy"])) for r in rows}, key=lambda k: (k[0], strategy_sort_key(k[1])))
    models = sorted({k[0] for k in keys})
    scales_all: set[float] = set()
    for model, strategy in keys:
        if strategies is not None and strategy not in strategies:
            continue
        pts = sorted(
            (float(r["scale"]), float(r["iou"]))
            for r in rows
            if (str(r["model"]), str(r["strategy"])) == (model, strategy)
        )
        scales_all.update(p[0] for p in pts)
        is_head = strategy.startswith("head")
        label = strategy if len(models) == 1 else f"{model} {strategy}"
        ax.plot(
            [p[0] for p in pts],
            [100 * p[1] for p in pts],
            marker="o" if not is_head else ".",
            linestyle=":" if is_head else "-",
            linewidth=1.0 if is_head else 2.0,
            markersize=3,
            label=label,
        )
    ax.set_xscale("log", base=2)
    if scales_all:
        ticks = sorted(scales_all)
        if len(ticks) > 9:
            ticks = ticks[:: int(math.ceil(len(ticks) / 9))]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:.2g}" for t in ticks])
        ax.minorticks_off()
    ax.set_xlabel("test scale s (log)")
    ax.set_ylabel("IoU (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_equivariance(
    errors: Sequence[Mapping[str, Any]],
    matrices: Mapping[float, np.ndarray],
    path: str | Path,
    title: str = "Equivariance error",
) -> Path:
    """Eq. 10 error against scale, and the Ω×Ω matrices of eq. 12 per scale with the minimum marked (Fig. 5).

    Args:
        errors: rows with ``scale`` and ``equivariance_error``.
        matrices: scale -> ``(Ω, Ω)`` mean errors ``[k, k']`` (group k on the original rescaled, group k' on
            the rescaled image).
        path: output PNG.
        title: figure title.
    """
    scales = sorted(matrices)
    n = len(scales) + 1
    ncol = min(6, n)
    nrow = int(math.ceil(n / ncol))
    fig = Figure(figsize=(2.6 * ncol, 2.4 * nrow))
    ax = fig.add_subplot(nrow, ncol, 1)
    pts = sorted((float(e["scale"]), float(e["equivariance_error"])) for e in errors)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("scale")
    ax.set_ylabel("Δ (eq. 10)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    for i, s in enumerate(scales):
        m = np.asarray(matrices[s], dtype=float)
        a = fig.add_subplot(nrow, ncol, i + 2)
        # log10: errors of mismatched groups can be orders of magnitude above the matched ones
        im = a.imshow(np.log10(np.clip(m, 1e-12, None)), cmap="viridis", origin="upper")
        if np.isfinite(m).any():
            k, kp = np.unravel_index(np.nanargmin(m), m.shape)
            a.plot([kp], [k], marker="x", color="red", markersize=10, mew=2)
        a.set_title(f"s = {s:.2f} (log10 error)", fontsize=8)
        a.set_xlabel("k' (rescaled)", fontsize=7)
        a.set_ylabel("k (original)", fontsize=7)
        a.set_xticks(range(m.shape[1]))
        a.set_yticks(range(m.shape[0]))
        a.set_xticklabels([str(j + 1) for j in range(m.shape[1])], fontsize=6)
        a.set_yticklabels([str(j + 1) for j in range(m.shape[0])], fontsize=6)
        fig.colorbar(im, ax=a, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, path)


def plot_sigmas(sigmas: Mapping[str, Any], bounds: Mapping[str, Any] | None, path: str | Path) -> Path:
    """Learned σ of every layer and group, allowed ranges dashed (Fig. 3).

    Args:
        sigmas: layer name -> ``(Ω,)`` σ (ordered by depth).
        bounds: layer name -> ``(Ω, 2)`` (lower b, upper a), or ``None``.
        path: output PNG.
    """
    names = list(sigmas)
    sig = np.stack([np.asarray(_np(sigmas[n]), dtype=float).reshape(-1) for n in names])  # (L, Ω)
    fig = Figure(figsize=(max(6, 0.45 * len(names) + 2), 4.5))
    ax = fig.add_subplot(111)
    x = np.arange(len(names))
    colors = [f"C{k % 10}" for k in range(sig.shape[1])]
    for k in range(sig.shape[1]):
        ax.plot(x, sig[:, k], marker="o", color=colors[k], label=f"group {k + 1}")
        if bounds:
            b = np.stack(
                [
                    np.asarray(_np(bounds[n]), dtype=float).reshape(-1, 2)[k] if n in bounds else [np.nan, np.nan]
                    for n in names
                ]
            )
            ax.plot(x, b[:, 0], linestyle="--", color=colors[k], linewidth=0.8)
            ax.plot(x, b[:, 1], linestyle="--", color=colors[k], linewidth=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("σ")
    # bounds exist only for learned, range-constrained σ (SEUNet); a fixed basis (SESN) has none
    ax.set_title("learned σ per layer and group (dashed: allowed range)" if bounds else "σ per layer and group")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_filters(filters: Any, path: str | Path, max_out: int = 8) -> Path:
    """First-layer filters per group (Fig. 4): rows = groups, columns = output channels (input channel 1).

    Args:
        filters: ``(Ω, C_out, C_in, kh, kw)`` dense filters (2D).
        path: output PNG.
        max_out: at most this many output channels are drawn.
    """
    f = np.asarray(_np(filters), dtype=float)
    if f.ndim != 5:
        return plot_message(path, "first-layer filters", f"only 2D filters are drawn (got shape {f.shape})")
    omega, c_out = f.shape[:2]
    n = min(c_out, max_out)
    fig = Figure(figsize=(1.3 * n + 1, 1.3 * omega + 0.6))
    for k in range(omega):
        vmax = np.abs(f[k, :n, 0]).max() or 1.0
        for j in range(n):
            a = fig.add_subplot(omega, n, k * n + j + 1)
            a.imshow(f[k, j, 0], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            a.set_xticks([])
            a.set_yticks([])
            if j == 0:
                a.set_ylabel(f"group {k + 1}", fontsize=8)
            if k == 0:
                a.set_title(f"out {j + 1}", fontsize=8)
    fig.suptitle("first-layer filters per scale group (input channel 1)")
    return _save(fig, path)


def plot_examples(examples: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Image, label, fused prediction and PDist winning head of a few test images at a few scales (Figs. 6-7).

    Args:
        examples: dicts with ``name``, ``scale``, ``image`` ``(C, H, W)``, ``label`` ``(H, W)``, ``pred``
            ``(H, W)``, ``winner`` ``(H, W)`` (0-based head), ``num_heads``, ``strategy``.
        path: output PNG.
    """
    if not examples:
        return plot_message(path, "examples", "no examples recorded")
    cols = ["image", "label", "prediction", "winning head"]
    fig = Figure(figsize=(2.4 * len(cols), 2.3 * len(examples)))
    for i, ex in enumerate(examples):
        img = np.asarray(_np(ex["image"]), dtype=float)
        img = np.moveaxis(img, 0, -1)
        if img.shape[-1] == 1:
            img = img[..., 0]
        lo, hi = np.nanmin(img), np.nanmax(img)
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        panels = [
            (img, None, None),
            (np.asarray(_np(ex["label"])), "tab10", (0, 9)),
            (np.asarray(_np(ex["pred"])), "tab10", (0, 9)),
            (np.asarray(_np(ex["winner"])) + 1, "viridis", (1, max(2, int(ex.get("num_heads", 1))))),
        ]
        for j, (arr, cmap, lim) in enumerate(panels):
            a = fig.add_subplot(len(examples), len(cols), i * len(cols) + j + 1)
            if cmap is None:
                a.imshow(arr, cmap="gray" if arr.ndim == 2 else None)
            else:
                im = a.imshow(arr, cmap=cmap, vmin=lim[0], vmax=lim[1], interpolation="nearest")
                if j == 3:  # winning head 1..Ω
                    fig.colorbar(im, ax=a, fraction=0.046, pad=0.04, ticks=range(1, int(lim[1]) + 1))
            a.set_xticks([])
            a.set_yticks([])
            if i == 0:
                a.set_title(cols[j] if j != 2 else f"prediction ({ex.get('strategy', '')})", fontsize=8)
            if j == 0:
                a.set_ylabel(f"{ex['name']}\ns = {float(ex['scale']):.2f}", fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)
