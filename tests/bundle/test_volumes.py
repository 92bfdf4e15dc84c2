"""The volume variant (the overlays of bundle/configs/variants/3d/) end to end through the bundle commands on tiny synthetic
volumes: `training` (1 epoch, embedded 3D default generated), `evaluating` (test split plus the isotropic and the
axial-only scale sweeps at 2 scales) and `inferring` (NIfTI masks with the input's affine, from NIfTI and MHA
inputs; the per-head probabilities of the package's inferer blended across 3D windows, then fused by the network's
fusion); and a 2D dataset given to the 3D variant, or volumes to the 2D bundle, fail with one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import INFERENCE, REPO, TINY_NET, bundle

VARIANT = "bundle/configs/variants/3d"
TRAIN_3D = f"['bundle/configs/train.json','{VARIANT}/train.json']"
EVALUATE_3D = (
    f"['bundle/configs/train.json','bundle/configs/evaluate.json','{VARIANT}/train.json','{VARIANT}/evaluate.json']"
)
INFER_3D = f"['{INFERENCE}','{VARIANT}/inference.json']"
TINY_VOLUMES = [
    "--synthetic#n_train",
    "2",
    "--synthetic#n_val",
    "1",
    "--synthetic#n_test",
    "1",
    "--synthetic#size",
    "32",
    "--synthetic#spacing",
    "[1.0,1.0,2.0]",
    "--patch_size",
    "[32,32,32]",
    "--window",
    "[32,32,32]",
]
SPACING = [1.0, 1.0, 2.0]


def _one_error_line(proc, *expected: str) -> str:
    assert proc.returncode == 2, proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout, proc.stdout[-3000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("error: ")]
    for text in expected:
        assert text in line, line
    return line


@pytest.fixture(scope="module")
def trained3d(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("trained3d")
    dirs = {"dataset_dir": root / "data", "output_dir": root / "logs", "ckpt_dir": root / "models"}
    args = [a for k, v in dirs.items() for a in (f"--{k}", str(v))]
    proc = bundle(
        "training",
        TRAIN_3D,
        *TINY_NET,
        *TINY_VOLUMES,
        *args,
        "--epochs",
        "1",
        "--batch_size",
        "2",
        "--calibration#scales",
        "[1.0]",
    )
    return {**dirs, "root": root, "log": proc.stdout, "dir_args": args}


def test_training_generates_volumes_and_trains_a_3d_network(trained3d):
    import nibabel as nib
    import torch

    assert "SYNTHETIC fluorescence-like 3D nuclei" in trained3d["log"]
    datalist = json.loads((trained3d["dataset_dir"] / "datalist.json").read_text())
    image = nib.load(trained3d["dataset_dir"] / datalist["training"][0]["image"])
    assert image.shape == (32, 32, 32) and np.allclose(image.header.get_zooms(), SPACING)
    state = torch.load(trained3d["ckpt_dir"] / "model.pt", map_location="cpu", weights_only=True)
    state = state.get("model", state)
    first = next(v for k, v in state.items() if k.startswith("enc1.") and v.ndim >= 2)
    assert (trained3d["ckpt_dir"] / "last.pt").is_file()
    assert first.shape[1] == 1  # one input channel


def test_evaluating_sweeps_isotropic_and_axial_scales(trained3d):
    bundle(
        "evaluating",
        EVALUATE_3D,
        *TINY_NET,
        *trained3d["dir_args"],
        "--patch_size",
        "[32,32,32]",
        "--window",
        "[32,32,32]",
        "--scales",
        "[0.5,1.0]",
        "--sweep#equivariance_crop",
        "24",
        "--sweep#equivariance_images",
        "1",
    )
    eval_dir = trained3d["output_dir"] / "eval"
    metrics = json.loads((eval_dir / "metrics.json").read_text())["metrics"]
    assert {"test_iou", "test_iou_head1", "test_iou_head2"} <= set(metrics)
    for folder, axes in ((eval_dir, "all"), (eval_dir / "axial", [2])):
        sweep = json.loads((folder / "scale_sweep.json").read_text())
        assert sweep["scale_axes"] == axes and sweep["scales"] == [0.5, 1.0]
        assert sweep["images"] == ["test_0000"]  # named without the .nii.gz
        rows = {(r["strategy"], r["scale"]) for r in sweep["rows"]}
        assert {("head1", 0.5), ("head2", 0.5), ("pens", 1.0)} <= rows  # IoU per scale and head
        assert [e["scale"] for e in sweep["equivariance"]] == [0.5, 1.0]
        assert all(e["equivariance_error"] is None or e["equivariance_error"] >= 0 for e in sweep["equivariance"])


def test_inferring_writes_nifti_masks_with_the_input_affine(tmp_path, trained3d):
    import nibabel as nib

    itk = pytest.importorskip("itk")
    inputs = tmp_path / "in"
    inputs.mkdir()
    src = trained3d["dataset_dir"] / "images" / "test_0000.nii.gz"
    (inputs / "a.nii.gz").write_bytes(src.read_bytes())
    volume = np.asarray(nib.load(src).dataobj)[:, :24, :20]  # not cubic: the orientation must be kept
    mha = itk.image_from_array(np.ascontiguousarray(volume.transpose(2, 1, 0)))
    mha.SetSpacing([0.5, 0.75, 3.0])
    itk.imwrite(mha, str(inputs / "b.mha"))
    out = tmp_path / "out"
    args = [
        *TINY_NET,
        "--ckpt_dir",
        str(trained3d["ckpt_dir"]),
        "--input_dir",
        str(inputs),
        "--output_dir",
        str(out),
        "--window",
        "[32,32,32]",
    ]
    bundle("inferring", INFER_3D, *args)
    assert sorted(p.name for p in out.iterdir()) == ["a_seg.nii.gz", "b_seg.nii.gz"]  # no staging folder left
    a_in, a_out = nib.load(inputs / "a.nii.gz"), nib.load(out / "a_seg.nii.gz")
    assert a_out.shape == a_in.shape and a_out.get_data_dtype() == np.uint8
    np.testing.assert_allclose(a_out.affine, a_in.affine)
    assert set(np.unique(np.asarray(a_out.dataobj))) <= {0, 1}
    b_out = nib.load(out / "b_seg.nii.gz")
    assert b_out.shape == (32, 24, 20)
    np.testing.assert_allclose(np.abs(np.diag(b_out.affine))[:3], [0.5, 0.75, 3.0])
    again = bundle("inferring", INFER_3D, *args, check=False)
    _one_error_line(again, "a_seg.nii.gz", "--overwrite")


def test_3d_inference_fuses_the_per_head_probabilities_of_the_package_inferer(tmp_path, monkeypatch):
    """The 3D ``inferring`` workflow is the 2D tensors' path: ``HeadsInferer`` (per-head probabilities blended across
    the windows; the network's fused eval-mode ``forward`` is never called), the network's fusion, then MONAI's
    writer; the mask written is the argmax of ``fuse(infer_heads(...))``, and nothing of the slide workflow is
    built."""
    import nibabel as nib
    import torch
    from monai.bundle import ConfigParser
    from monai.inferers import SlidingWindowInferer

    from seunet_monai.inferers import HeadsInferer, infer_heads

    inputs = tmp_path / "in"
    inputs.mkdir()
    volume = np.random.default_rng(0).random((20, 18, 12)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.diag([1.0, 1.0, 2.0, 1.0])), inputs / "v.nii.gz")
    parser = ConfigParser()
    parser.read_config([INFERENCE, f"{REPO}/{VARIANT}/inference.json"])
    parser.update(
        {
            "bundle_root": str(REPO / "bundle"),
            "device": "$torch.device('cpu')",
            "amp": False,
            "handlers": [],
            "network_def#num_scales": 2,
            "network_def#channels": [4, 8, 16, 32, 64],
            "window": [16, 16, 16],
            "input_dir": str(inputs),
            "output_dir": str(tmp_path / "out"),
        }
    )
    parser.parse()
    assert "stain_transform" not in parser.config and "SlideInferer" not in json.dumps(parser.config["inferer"])
    inferer = parser.get_parsed_content("inferer")
    assert isinstance(inferer, HeadsInferer) and inferer.spatial_dims == 3
    network = parser.get_parsed_content("network")  # untrained: any weights show the path
    image = parser.get_parsed_content("dataset")[0]["image"]
    monkeypatch.setattr(network, "forward", lambda x: pytest.fail("windows must blend per-head probabilities"))
    parser.get_parsed_content("evaluator").run()

    windows = SlidingWindowInferer(roi_size=(16, 16, 16), overlap=0.25, mode="gaussian")  # Z cut to the 12 slices
    with torch.no_grad():
        expected = network.eval().fuse_heads(infer_heads(network, image[None], windows)).argmax(1)[0]
    written = nib.load(tmp_path / "out" / "v_seg.nii.gz")
    np.testing.assert_array_equal(np.asarray(written.dataobj), expected.numpy().astype(np.uint8))
    np.testing.assert_allclose(written.affine, np.diag([1.0, 1.0, 2.0, 1.0]))


def test_a_2d_dataset_given_to_the_3d_variant_is_one_clear_line(tmp_path):
    from seunet_monai.data.synthetic.histology import make_synthetic_dataset

    make_synthetic_dataset(tmp_path / "data2d", n_train=1, n_val=1, n_test=0, size=16)
    proc = bundle(
        "training",
        TRAIN_3D,
        *TINY_NET,
        "--dataset_dir",
        str(tmp_path / "data2d"),
        "--output_dir",
        str(tmp_path / "logs"),
        "--ckpt_dir",
        str(tmp_path / "models"),
        check=False,
    )
    _one_error_line(proc, "holds a 2D image", "network is 3D", "without that variant")
    assert not (tmp_path / "models").exists()


def test_volumes_given_to_the_2d_bundle_are_one_clear_line(tmp_path, trained3d):
    proc = bundle(
        "training",
        "bundle/configs/train.json",
        *TINY_NET,
        "--dataset_dir",
        str(trained3d["dataset_dir"]),
        "--output_dir",
        str(tmp_path / "logs"),
        "--ckpt_dir",
        str(tmp_path / "models"),
        check=False,
    )
    _one_error_line(proc, "holds a volume", "network is 2D", "variants/3d/")
    assert not (tmp_path / "models").exists()
