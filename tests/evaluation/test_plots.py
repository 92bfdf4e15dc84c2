"""Specification of ``seunet_monai.evaluation.plots``: every figure is written as a PNG at the given path."""

from __future__ import annotations

import torch

from seunet_monai.evaluation.plots import plot_examples, plot_iou_vs_scale, plot_message

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_message_and_iou_vs_scale_write_pngs(tmp_path):
    assert plot_message(tmp_path / "m.png", "title", "nothing here").read_bytes().startswith(PNG)
    rows = [
        {"model": "m", "strategy": st, "scale": s, "iou": 0.5 + 0.1 * s} for st in ("mean", "pens") for s in (0.5, 2)
    ]
    out = plot_iou_vs_scale(rows, tmp_path / "sub" / "iou.png", strategies=["pens"])
    assert out == tmp_path / "sub" / "iou.png" and out.read_bytes().startswith(PNG)


def test_plot_examples_draws_one_row_per_example_or_a_message(tmp_path):
    example = {
        "name": "a",
        "scale": 1.0,
        "image": torch.rand(3, 8, 8),
        "label": torch.zeros(8, 8, dtype=torch.long),
        "pred": torch.ones(8, 8, dtype=torch.long),
        "winner": torch.zeros(8, 8, dtype=torch.long),
        "num_heads": 2,
        "strategy": "pens",
    }
    one = plot_examples([example], tmp_path / "one.png")
    none = plot_examples([], tmp_path / "none.png")
    assert one.read_bytes().startswith(PNG) and none.read_bytes().startswith(PNG)
