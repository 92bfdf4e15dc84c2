"""The shipped pretrained model: load it and score it on one real image, the way inference sees raw data.

Used by the regression test (``tests/bundle/test_pretrained.py``) and to record the figure it checks in
``bundle/configs/metadata.json`` (``eval_metrics``), so that both come from one code path:

    python -m seunet_monai.evaluation.pretrained IMAGE.tif LABEL.(png|xml)

The image is read raw (8-bit RGB), stain-normalised whole with the bundle's ``stain_reference.json`` (as the
preparation normalised the training images), scaled to ``[0, 1]`` and predicted whole (a 1000 x 1000 MoNuSeg
image needs about 2.5 GB in eval mode); the score is the nucleus IoU of the fused prediction.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from seunet_monai.checkpoint import load_network
from seunet_monai.data.annotations import parse_aperio_xml, rasterise_regions, read_png_mask
from seunet_monai.data.io import read_rgb
from seunet_monai.data.stain.reference import stain_transform
from seunet_monai.runtime.resources import bundle_path, config_path

__all__ = ["BUNDLE_MODEL", "load_pretrained", "predict_image", "nucleus_iou", "score_image", "main"]

BUNDLE_MODEL = bundle_path() / "models" / "model.pt"  # the checkout's bundle/ or the installed package data


def load_pretrained(checkpoint: str | os.PathLike = BUNDLE_MODEL, fusion: str | None = None) -> torch.nn.Module:
    """The bundle's default SEUNet (``network_def`` of ``train.json``) with the weights of ``checkpoint``.

    Args:
        checkpoint: a ``model.pt`` state dict (default: the shipped one).
        fusion: eval-mode fusion (default: the bundle's ``fusion`` key).
    """
    parser = ConfigParser()
    parser.read_config(str(config_path("train.json")))
    net = parser.get_parsed_content("network_def")
    load_network(net, checkpoint)
    net.fusion = fusion or parser.get_parsed_content("fusion")
    return net.eval()


def predict_image(net: torch.nn.Module, rgb: np.ndarray, stain_reference: str | os.PathLike | None) -> np.ndarray:
    """Class ids ``(H, W)`` of an ``(H, W, 3)`` uint8 image, normalised with ``stain_reference`` (None: raw)."""
    if stain_reference is not None:
        normalizer = stain_transform("auto", stain_reference, channel_dim=-1)
        if normalizer is not None:
            rgb = normalizer(rgb)
    x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        probs = net(x)
    return probs.argmax(dim=1)[0].numpy().astype(np.uint8)


def nucleus_iou(pred: np.ndarray, label: np.ndarray) -> float:
    """IoU of class 1 (nucleus) between two ``(H, W)`` class maps."""
    p, t = pred == 1, label == 1
    union = int((p | t).sum())
    return float((p & t).sum()) / union if union else float("nan")


def _read_label(path: Path, shape: Sequence[int]) -> np.ndarray:
    if path.suffix.lower() == ".xml":
        return rasterise_regions(parse_aperio_xml(path).regions, shape)[0]

    return read_png_mask(path)


def score_image(
    image: str | os.PathLike,
    label: str | os.PathLike,
    checkpoint: str | os.PathLike = BUNDLE_MODEL,
    stain_reference: str | os.PathLike | None = None,
) -> float:
    """Nucleus IoU of the pretrained model on one raw image (module docstring).

    Args:
        image: the raw RGB image (TIFF/PNG).
        label: its Aperio XML (integer-centre rasterisation) or binary PNG mask.
        checkpoint: the model file.
        stain_reference: the stain reference record (default: ``stain_reference.json`` next to ``checkpoint``).
    """
    rgb, _ = read_rgb(image)
    ref = Path(checkpoint).with_name("stain_reference.json") if stain_reference is None else stain_reference
    pred = predict_image(load_pretrained(checkpoint), rgb, ref)
    return nucleus_iou(pred, _read_label(Path(label), rgb.shape))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m seunet_monai.evaluation.pretrained", description=__doc__.split("\n")[0])
    p.add_argument("image")
    p.add_argument("label")
    p.add_argument("--checkpoint", default=str(BUNDLE_MODEL))
    args = p.parse_args(argv)
    print(f"{Path(args.image).stem}: nucleus IoU {score_image(args.image, args.label, args.checkpoint):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
