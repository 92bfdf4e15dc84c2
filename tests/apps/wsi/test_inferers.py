"""The slide inferer, the per-window preprocessing and the network call (``inferers``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
import tifffile
import torch
from monai.inferers import SlidingWindowInferer
from PIL import Image

from seunet_monai.apps.wsi import (
    HeadsPatchPredictor,
    PatchPreprocessing,
)
from seunet_monai.fusion.heads import head_margins
from seunet_monai.inferers import head_probabilities
from tests.apps.wsi.slides import (
    DarkBlobs,
    DarkBlobsWithMap,
    embed,
    make_workflow,
    write_pyramid,
)


def test_slide_inference_agrees_with_whole_image_inference(tmp_path, tissue):
    """The streamed, tissue-filtered slide path (pyramidal TIFF) against MONAI's SlidingWindowInferer on the
    whole image in memory: >= 99% of the tissue pixels get the same class."""
    slide = embed(tissue)
    (tmp_path / "in").mkdir()
    write_pyramid(tmp_path / "in" / "slide.tif", slide, mpp=0.5)
    make_workflow(tmp_path / "in", tmp_path / "out", target_mpp=0.5).run()
    mask = tifffile.imread(tmp_path / "out" / "slide_mask.tif")
    x = torch.as_tensor(slide).permute(2, 0, 1)[None].float() / 255
    ref = SlidingWindowInferer([128, 128], sw_batch_size=4, overlap=0.25, mode="gaussian")(x, DarkBlobs())
    ref = ref[0].argmax(0).numpy()
    region = (slice(300, 1000), slice(400, 1300))
    assert ref[region].mean() > 0.05  # the stand-in network finds nuclei
    assert (mask[region] == ref[region]).mean() >= 0.99
    assert (mask == ref).mean() >= 0.99


def test_image_smaller_than_the_window_is_segmented(tmp_path, tissue):

    (tmp_path / "in").mkdir()
    Image.fromarray(tissue[:96, :80]).save(tmp_path / "in" / "crop.png")
    make_workflow(tmp_path / "in", tmp_path / "big", roi=512).run()  # one window, larger than the image
    make_workflow(tmp_path / "in", tmp_path / "small", roi=64).run()
    big = tifffile.imread(tmp_path / "big" / "crop_mask.tif")
    small = tifffile.imread(tmp_path / "small" / "crop_mask.tif")
    assert big.shape == (96, 80) and 0.05 < (big == 1).mean() < 0.95
    assert (big == small).mean() >= 0.99


def test_patch_preprocessing_applies_the_image_transform_per_patch(tmp_path, caplog):
    """The stain-normalisation hook: a per-patch transform on (3, h, w) uint8 before scaling to [0, 1];
    `stain_norm none` or a missing reference file gives no transform (the latter with a notice)."""
    from seunet_monai.apps.wsi import patch_stain_transform

    patches = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    seen = []

    def invert(p):
        seen.append(p.shape)
        return 255 - p

    out = PatchPreprocessing(invert)(patches)
    assert seen == [(3, 8, 8), (3, 8, 8)]
    torch.testing.assert_close(out, (255 - patches).float() / 255)
    assert patch_stain_transform("none", tmp_path / "missing.json") is None
    assert patch_stain_transform("auto", tmp_path / "missing.json") is None
    assert "stain normalisation skipped" in caplog.text and "missing.json" in caplog.text


def test_stain_reference_file_gives_a_channel_first_normaliser(tmp_path, tissue):
    from seunet_monai.apps.wsi import patch_stain_transform
    from seunet_monai.data.stain.estimation import DEFAULT_MAX_CONCENTRATIONS, DEFAULT_STAIN_MATRIX

    ref = tmp_path / "stain_reference.json"
    ref.write_text(
        json.dumps(
            {
                "method": "macenko",
                "target_stain_matrix": DEFAULT_STAIN_MATRIX.tolist(),
                "target_max_concentrations": DEFAULT_MAX_CONCENTRATIONS.tolist(),
            }
        )
    )
    normalise = patch_stain_transform("auto", ref)
    patch = np.ascontiguousarray(np.moveaxis(tissue[:64, :64], -1, 0))
    out = np.asarray(normalise(patch))
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8 and not np.array_equal(out, patch)


def test_the_network_call_gives_fused_classes_then_fused_maps_then_head_margins():
    x = torch.rand(2, 3, 32, 32)
    net = DarkBlobsWithMap()
    call = HeadsPatchPredictor(net)
    out = call(x)
    assert call.aux_channels == 1 and out.shape == (2, 2 + 1 + 2, 32, 32)
    probs = head_probabilities(net, x, aux=True)
    assert torch.allclose(out[:, :3], net.fuse_heads(probs))  # classes, then the map fused with their head weights
    assert torch.allclose(out[:, 3:], head_margins(probs[:, :, :2]))
    plain = HeadsPatchPredictor(DarkBlobs())
    assert plain.aux_channels == 0 and plain(x).shape == (2, 2 + 2, 32, 32)
