"""The shipped pretrained SEUNet on real MoNuSeg images: the figure recorded in metadata.json, and the stain
normalisation of inference matching the preparation of the training data.

Both need the real training set in ``../shared/data/monuseg-train`` and skip cleanly without it. They run the
paper-width network on CPU (a few seconds per image).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from .conftest import INFERENCE, REPO, bundle

REAL = REPO / ".." / "shared" / "data" / "monuseg-train"
MODELS = REPO / "bundle" / "models"
METADATA = REPO / "bundle" / "configs" / "metadata.json"
REGRESSION_PREFIX = "regression_iou_"  # eval_metrics key: nucleus IoU of one raw validation image

pytestmark = pytest.mark.skipif(
    not (REAL / "images").is_dir() or not (MODELS / "model.pt").is_file(),
    reason=f"needs the real MoNuSeg training set at {REAL} and the shipped bundle/models/model.pt",
)


def _regression_entry() -> tuple[str, float]:
    metrics = json.loads(METADATA.read_text())["eval_metrics"]
    (key,) = [k for k in metrics if k.startswith(REGRESSION_PREFIX)]
    return key[len(REGRESSION_PREFIX) :], float(metrics[key])


def test_shipped_model_scores_as_recorded_in_metadata():
    from seunet_monai.evaluation.pretrained import score_image

    stem, recorded = _regression_entry()
    label = REAL / "annotations" / f"{stem}.xml"
    iou = score_image(REAL / "images" / f"{stem}.tif", label if label.is_file() else REAL / "masks" / f"{stem}.png")
    assert abs(iou - recorded) <= 0.02, f"{stem}: nucleus IoU {iou:.4f}, metadata.json records {recorded:.4f}"
    assert iou > 0.5  # a real segmentation, not an empty or full mask


def test_inferring_a_raw_tile_matches_inferring_its_prepared_tile(tmp_path):
    """The same normalisation at training (whole prepared images) and at inference (per window, raw input)."""
    from seunet_monai.data.io import read_rgb
    from seunet_monai.data.stain.reference import stain_transform

    stem, _ = _regression_entry()
    raw, _ = read_rgb(REAL / "images" / f"{stem}.tif")
    prepared = stain_transform("auto", MODELS / "stain_reference.json", channel_dim=-1)(raw)  # as preparation
    box = (slice(300, 700), slice(200, 600))  # a 400-px tile, as the preparation cuts them
    for name, img in (("raw", raw), ("prepared", prepared)):
        (tmp_path / name).mkdir()
        Image.fromarray(np.ascontiguousarray(img[box])).save(tmp_path / name / "tile.png")
    masks = {}
    for name, norm in (("raw", "auto"), ("prepared", "none")):
        bundle(
            "inferring",
            INFERENCE,
            "--input_dir",
            str(tmp_path / name),
            "--output_dir",
            str(tmp_path / f"out_{name}"),
            "--stain_norm",
            norm,
            "--progress",
            "false",
        )
        masks[name] = np.asarray(Image.open(tmp_path / f"out_{name}" / "tile_mask.png"))
    assert masks["raw"].shape == (400, 400)
    agreement = float((masks["raw"] == masks["prepared"]).mean())
    assert agreement >= 0.99, f"pixel agreement {agreement:.4f}"
    assert 0.05 < masks["raw"].mean() < 0.6  # nuclei found, not everything
