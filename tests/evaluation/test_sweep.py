"""The scale sweep end to end on tiny models and data: rows, scores, every output file, the status file and the
instance metrics, guided by the network's separation map when it predicts one."""

from __future__ import annotations

import csv
import json
import logging
import math

import pytest
import torch

from seunet_monai.evaluation.instance_scoring import INSTANCE_COLUMNS
from seunet_monai.evaluation.outputs import OUTPUT_FILES
from seunet_monai.evaluation.sweep import ScaleSweep, run_scale_sweep
from seunet_monai.evaluation.sweep_results import SweepState
from seunet_monai.layers.rescale import rescale_image, rescale_label
from seunet_monai.metrics import SegmentationScores
from tests.instance_items import disk_items, square_pairs

from .conftest import ToyHeadsWithMap, toy_dataset

SCALES = [0.5, 1.0, 2.0]
INSTANCE_SCALES = [0.5, 1.0, 2.0, 4.0]
OPTS = dict(
    model_name="toy",
    roi_size=16,
    overlap=0.25,
    sw_batch_size=2,
    equivariance_images=0,
    num_examples=0,
    tensorboard=False,
)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _rows_by_key(path):
    return {(r["strategy"], float(r["scale"])): r for r in _rows(path)}


def test_sweep_writes_every_file_with_the_right_rows(tmp_path, toy_heads) -> None:
    data = toy_dataset(n=2, size=(40, 36))
    out = run_scale_sweep(
        toy_heads,
        data,
        tmp_path,
        scales=SCALES,
        model_name="toy",
        roi_size=16,
        overlap=0.25,
        sw_batch_size=2,
        equivariance_images=1,
        equivariance_crop=16,
        num_examples=1,
    )
    eval_dir = tmp_path / "eval"
    for name in OUTPUT_FILES:
        assert (eval_dir / name).is_file() and (eval_dir / name).stat().st_size > 0, name
    assert any((eval_dir / "tensorboard").iterdir())
    rows = _rows(eval_dir / "scale_sweep.csv")
    assert {"model", "strategy", "scale", "iou", "iou_per_image", "dice"} <= set(rows[0])
    expected = {(st, s) for s in SCALES for st in ("head1", "head2", "mean", "pdist", "pens")}
    assert {(r["strategy"], float(r["scale"])) for r in rows} == expected
    assert len(rows) == len(expected)
    # ToyHeads predicts the label exactly at scale 1 (every head, every strategy)
    for r in rows:
        if float(r["scale"]) == 1.0:
            assert float(r["iou"]) == pytest.approx(1.0)
            assert float(r["dice"]) == pytest.approx(1.0)
    # the sliding-window result equals a whole-image computation by hand (toy is pointwise)
    ref = SegmentationScores(2)
    for item in data:
        img, lab = rescale_image(item["image"], 2.0), rescale_label(item["label"], 2.0)
        ref.update((img[:1] > 0.5).long().unsqueeze(0), lab.unsqueeze(0))
    r2 = next(r for r in rows if r["strategy"] == "pens" and float(r["scale"]) == 2.0)
    assert float(r2["iou"]) == pytest.approx(ref.compute()["iou"], abs=1e-6)

    meta = json.loads((eval_dir / "scale_sweep.json").read_text())
    for key in (
        "checkpoint",
        "dataset",
        "scales",
        "elapsed_s",
        "peak_rss_mb",
        "time_per_scale_s",
        "rows",
        "summary",
        "equivariance",
        "equivariance_matrix",
        "scale_estimation",
    ):
        assert key in meta, key
    assert meta["scales"] == SCALES and meta["num_heads"] == 2 and meta["peak_rss_mb"] > 0
    est = meta["scale_estimation"]  # one estimator, the calibrated one: the toy is not calibrated
    assert set(est) == {"scale_fusion", "per_image"}
    assert est["scale_fusion"]["calibrated"] is False and est["scale_fusion"]["correlation"] is None
    assert [set(p) for p in est["per_image"]] == [{"name", "scale_fusion_estimate"}] * 2
    assert est["per_image"][0]["scale_fusion_estimate"] == [None] * len(SCALES)
    eq = _rows(eval_dir / "equivariance.csv")
    assert [float(r["scale"]) for r in eq] == SCALES
    assert all(float(r["equivariance_error"]) < 1e-8 for r in eq)  # linear pointwise features
    # the toy's last-layer σ are 1 and 2: at s = 2 only group 1 has a partner (σ ratio 2), at 0.5 only group 2
    by_scale = {float(r["scale"]): r for r in eq}
    assert by_scale[2.0]["matched_groups"] == "1>2" and by_scale[2.0]["groups_without_partner"] == "2"
    assert by_scale[0.5]["matched_groups"] == "2>1" and by_scale[0.5]["groups_without_partner"] == "1"
    assert by_scale[1.0]["matched_groups"] == "1>1 2>2" and by_scale[1.0]["groups_without_partner"] == ""
    assert by_scale[2.0]["pair_errors"].startswith("1>2=")
    matrix = _rows(eval_dir / "equivariance_matrix.csv")
    assert len(matrix) == len(SCALES) * 4
    assert [(r["group"], r["group_rescaled"]) for r in matrix if r["scale"] == "2.0" and r["matched"] == "True"] == [
        ("1", "2")
    ]
    assert {float(r["sigma_ratio"]) for r in matrix} == {0.5, 1.0, 2.0}
    md = (eval_dir / "scale_sweep.md").read_text()
    assert "Table 1 style" in md and "Table 2 style" in md and "| pens |" in md
    assert out["eval_dir"] == str(eval_dir)


def test_scales_without_any_partner_are_left_out_of_the_mean(tmp_path, toy_heads) -> None:
    data = toy_dataset(n=1, size=(24, 24))
    out = run_scale_sweep(
        toy_heads,
        data,
        tmp_path,
        scales=[1.5, 2.0],
        roi_size=32,
        equivariance_images=1,
        equivariance_crop=24,
        num_examples=0,
        tensorboard=False,
    )
    eq = {float(r["scale"]): r for r in _rows(tmp_path / "eval" / "equivariance.csv")}
    assert eq[1.5]["equivariance_error"] == "nan" and eq[1.5]["groups_without_partner"] == "1 2"
    assert out["equivariance_error_mean"] == pytest.approx(float(eq[2.0]["equivariance_error"]))
    md = (tmp_path / "eval" / "scale_sweep.md").read_text()
    assert "groups without partner" in md


def test_existing_results_are_not_overwritten_silently(tmp_path, toy_heads) -> None:
    data = toy_dataset(n=1, size=(16, 16))
    kw = dict(scales=[1.0], roi_size=16, equivariance_images=0, num_examples=0, tensorboard=False)
    run_scale_sweep(toy_heads, data, tmp_path, model_name="first", **kw)
    with pytest.raises(FileExistsError, match="scale_sweep"):
        run_scale_sweep(toy_heads, data, tmp_path, model_name="second", if_exists="error", **kw)
    run_scale_sweep(toy_heads, data, tmp_path, model_name="second", if_exists="archive", **kw)
    archived = list((tmp_path / "eval" / "archive").iterdir())
    assert len(archived) == 1
    assert _rows(archived[0] / "scale_sweep.csv")[0]["model"] == "first"
    assert _rows(tmp_path / "eval" / "scale_sweep.csv")[0]["model"] == "second"
    run_scale_sweep(toy_heads, data, tmp_path, model_name="third", if_exists="overwrite", **kw)
    assert _rows(tmp_path / "eval" / "scale_sweep.csv")[0]["model"] == "third"
    with pytest.raises(ValueError, match="if_exists"):
        run_scale_sweep(toy_heads, data, tmp_path, if_exists="maybe", **kw)


def test_plain_network_is_one_head(tmp_path, plain_pointwise) -> None:
    data = toy_dataset(n=1, size=(20, 20))
    run_scale_sweep(
        plain_pointwise,
        data,
        tmp_path,
        scales=[0.5, 1.0],
        roi_size=16,
        equivariance_images=1,
        equivariance_crop=16,
        num_examples=1,
        tensorboard=False,
    )
    rows = _rows(tmp_path / "eval" / "scale_sweep.csv")
    assert sorted({r["strategy"] for r in rows}) == ["head1", "mean", "pdist", "pens"]
    by = {(r["strategy"], r["scale"]): float(r["iou"]) for r in rows}
    for s in ("0.5", "1.0"):
        vals = [by[(st, s)] for st in ("head1", "mean", "pdist", "pens")]
        assert all(v == vals[0] or (math.isnan(v) and math.isnan(vals[0])) for v in vals)
    eq = _rows(tmp_path / "eval" / "equivariance.csv")
    assert all(float(r["equivariance_error"]) < 1e-8 for r in eq)  # hooks: input of the last (linear) conv
    for name in ("sigmas.png", "filters.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 0


def test_bad_arguments(tmp_path, toy_heads) -> None:
    data = toy_dataset(n=1, size=(16, 16))
    with pytest.raises(ValueError, match="scales"):
        run_scale_sweep(toy_heads, data, tmp_path, scales=[0.0, 1.0])
    with pytest.raises(KeyError, match="'img'"):
        run_scale_sweep(toy_heads, data, tmp_path, scales=[1.0], image_key="img", tensorboard=False)
    with pytest.raises(ValueError, match="empty"):
        run_scale_sweep(toy_heads, [], tmp_path / "x", scales=[1.0], tensorboard=False)
    bad = [{"image": torch.rand(3, 16, 16), "label": torch.zeros(1, 8, 8)}]
    with pytest.raises(ValueError, match="same spatial size"):
        run_scale_sweep(toy_heads, bad, tmp_path / "y", scales=[1.0], tensorboard=False)


def test_real_seunet_smoke(tmp_path) -> None:
    from seunet_monai.networks import SEUNet

    torch.manual_seed(0)
    net = SEUNet(spatial_dims=2, in_channels=3, out_channels=2, num_scales=2, channels=(2, 2, 2, 2, 2), norm=None)
    data = toy_dataset(n=1, size=(24, 24))
    run_scale_sweep(
        net,
        data,
        tmp_path,
        scales=[0.5, 1.0, 2.0],
        roi_size=32,
        equivariance_images=1,
        equivariance_crop=24,
        num_examples=1,
        tensorboard=False,
    )
    rows = _rows(tmp_path / "eval" / "scale_sweep.csv")
    assert len(rows) == 3 * (2 + 3)
    assert net.training and not net.output_heads  # modes restored
    eq = _rows(tmp_path / "eval" / "equivariance.csv")
    assert float(next(r for r in eq if r["scale"] == "1.0")["equivariance_error"]) == pytest.approx(0.0, abs=1e-10)
    assert SweepState.start(net, [1.0], partner_tolerance=0.1).sigma_source == "dec1.conv2"  # eq. 10's σ partners


def test_3d_volumes(tmp_path) -> None:
    class Pointwise3D(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Conv3d(1, 2, 1)

        def forward(self, x):
            return self.a(x)

    g = torch.Generator().manual_seed(0)
    vol = torch.rand(1, 1, 4, 4, 4, generator=g)
    vol = torch.nn.functional.interpolate(vol, size=(12, 12, 12), mode="trilinear")[0]
    data = [{"image": vol, "label": (vol > 0.5).long()}]
    run_scale_sweep(
        Pointwise3D(),
        data,
        tmp_path,
        scales=[0.5, 1.0],
        roi_size=8,
        equivariance_images=1,
        equivariance_crop=8,
        num_examples=1,
        tensorboard=False,
    )
    rows = _rows(tmp_path / "eval" / "scale_sweep.csv")
    assert len(rows) == 2 * 4
    assert (tmp_path / "eval" / "examples.png").stat().st_size > 0


def test_label_values_beyond_the_classes_name_the_image(tmp_path, toy_heads) -> None:
    img = torch.rand(3, 16, 16)
    lab = torch.zeros(1, 16, 16, dtype=torch.long)
    lab[0, 0, 0] = 3  # the toy has 2 classes; 3 is no class and not the ignore value
    with pytest.raises(ValueError, match=r"test item 0 \(image0000\).*label values"):
        run_scale_sweep(toy_heads, [{"image": img, "label": lab}], tmp_path, scales=[1.0], tensorboard=False)
    lab[0, 0, 0] = 255
    run_scale_sweep(
        toy_heads,
        [{"image": img, "label": lab}],
        tmp_path / "ok",
        scales=[1.0],
        ignore_index=255,
        equivariance_images=0,
        tensorboard=False,
    )


def test_images_smaller_than_the_window_are_not_padded(toy_heads) -> None:
    from monai.inferers import SlidingWindowInferer

    from seunet_monai.evaluation.heads import output_heads_mode
    from seunet_monai.inferers import predict_heads

    seen = []
    heads = toy_heads.forward_heads
    toy_heads.forward_heads = lambda x: seen.append(tuple(x.shape[2:])) or heads(x)
    inferer = SlidingWindowInferer(roi_size=(16, 16), sw_batch_size=1, overlap=0.25)
    with output_heads_mode(toy_heads):
        small = predict_heads(toy_heads, torch.rand(3, 10, 12), inferer, torch.device("cpu"))
        large = predict_heads(toy_heads, torch.rand(3, 20, 12), inferer, torch.device("cpu"))
    assert small.shape == (1, 2, 2, 10, 12) and large.shape == (1, 2, 2, 20, 12)
    assert seen[0] == (10, 12)  # whole image, no zero padding up to the window
    assert all(s == (16, 12) for s in seen[1:])  # larger ones through the sliding window, cut to the 12 columns


def test_sweep_window_rule() -> None:
    from seunet_monai.evaluation.sweep import DEFAULT_MAX_PIXELS
    from seunet_monai.inferers import sweep_window

    assert sweep_window((1000, 1000), DEFAULT_MAX_PIXELS, (128, 128), sw_batch_size=4) is None  # fits: whole
    assert sweep_window((2000, 2000), DEFAULT_MAX_PIXELS, (128, 128), sw_batch_size=4) is None  # MoNuSeg at s = 2
    # larger: windows as large as the budget allows for sw_batch_size windows, at least 512, at most the image
    assert sweep_window((4000, 4000), DEFAULT_MAX_PIXELS, (128, 128), sw_batch_size=4) == (1024, 1024)
    assert sweep_window((4000, 300), 10_000, (128, 128), sw_batch_size=4) == (512, 300)
    assert sweep_window((600, 600), 0, (16, 16), min_window=16) == (16, 16)
    assert sweep_window((4000, 4000), None, (128, 128)) is None


def test_the_sweep_writes_its_progress_and_results_to_a_status_file(tmp_path, toy_heads) -> None:
    from seunet_monai.runtime.status import read_status

    sweep = ScaleSweep(
        [0.5, 1.0], model_name="toy", roi_size=16, equivariance_images=0, num_examples=0, tensorboard=False
    )
    out = sweep.run(toy_heads, toy_dataset(n=2, size=(20, 20)), tmp_path / "eval")
    status = read_status(tmp_path / "eval" / "sweep_status.json")
    assert status["state"] == "finished" and status["images_done"] == status["num_images"] == 2
    assert status["num_scales"] == 2 and status["model"] == "toy"
    means = {s["strategy"]: s["iou_mean"] for s in out["summary"]}
    assert status["iou_mean_over_scales"] == pytest.approx(means)
    bad = [{"image": torch.rand(3, 16, 16), "label": torch.zeros(1, 8, 8)}]
    with pytest.raises(ValueError):
        sweep.run(toy_heads, bad, tmp_path / "bad")
    failed = read_status(tmp_path / "bad" / "sweep_status.json")
    assert failed["state"] == "failed" and "same spatial size" in failed["error"]


def test_sweep_instance_columns_defaults(tmp_path, toy_heads) -> None:
    run_scale_sweep(toy_heads, disk_items(), tmp_path, scales=INSTANCE_SCALES, pixel_size_um=0.25, **OPTS)
    rows = _rows_by_key(tmp_path / "eval" / "scale_sweep.csv")
    assert set(INSTANCE_COLUMNS) <= set(next(iter(rows.values())))
    for (st, s), r in rows.items():
        measured = not st.startswith("head") and 0.5 <= s <= 2  # the defaults: fusions, scales in [0.5, 2]
        assert math.isnan(float(r["pq"])) != measured, (st, s)
    for st in ("mean", "pdist", "pens"):
        r = rows[(st, 1.0)]
        for k in INSTANCE_COLUMNS:
            assert float(r[k]) == pytest.approx(1.0), (st, k)  # exact prediction at scale 1, 7 disks
    meta = json.loads((tmp_path / "eval" / "scale_sweep.json").read_text())
    inst = meta["instance_metrics"]
    assert inst["images"] == 2 and inst["scales"] == [0.5, 1.0, 2.0] and inst["strategies"] == ["mean", "pdist", "pens"]
    assert inst["pixel_size_um"] == 0.25 and inst["seconds"] >= 0
    pens = next(s for s in meta["summary"] if s["strategy"] == "pens")
    assert 0 < pens["pq_mean"] <= 1 and "aji_mean" in pens
    md = (tmp_path / "eval" / "scale_sweep.md").read_text()
    assert "instance PQ per strategy" in md and "| dice_obj |" in md


def test_sweep_instance_options(tmp_path, toy_heads) -> None:
    run_scale_sweep(
        toy_heads,
        disk_items(1),
        tmp_path,
        scales=INSTANCE_SCALES,
        pixel_size_um=0.25,
        instance_scales=[4.0],
        instance_strategies="all",
        **OPTS,
    )
    rows = _rows_by_key(tmp_path / "eval" / "scale_sweep.csv")
    measured = {k for k, r in rows.items() if not math.isnan(float(r["aji"]))}
    assert measured == {(st, 4.0) for st in ("head1", "head2", "mean", "pdist", "pens")}
    assert float(rows[("head1", 4.0)]["count_ratio"]) == pytest.approx(1.0)  # µm sizes follow the scale


def test_sweep_items_without_instances_skip_with_one_line(tmp_path, toy_heads, caplog) -> None:
    items = [{k: v for k, v in it.items() if k != "instance"} for it in disk_items()]
    with caplog.at_level(logging.INFO, logger="seunet_monai.evaluation.sweep_scoring"):
        run_scale_sweep(toy_heads, items, tmp_path, scales=[1.0], **OPTS)  # no pixel size needed
    lines = [r.getMessage() for r in caplog.records if "instance metrics skipped" in r.getMessage()]
    assert len(lines) == 1 and "'instance'" in lines[0]
    rows = _rows_by_key(tmp_path / "eval" / "scale_sweep.csv")
    assert all(math.isnan(float(r["pq"])) for r in rows.values())


def test_sweep_instance_errors(tmp_path, toy_heads) -> None:
    with pytest.raises(ValueError, match="pixel_size_um"):
        run_scale_sweep(toy_heads, disk_items(1), tmp_path, scales=[1.0], **OPTS)
    assert ScaleSweep([0.25 * 2**0.5, 1.0], instance_scales=[0.25 * 2**0.5 + 1e-12]).instance_scales == [0.25 * 2**0.5]
    with pytest.raises(ValueError, match="instance_scales"):
        ScaleSweep([1.0, 2.0], instance_scales=[3.0])
    with pytest.raises(ValueError, match="instance_strategies"):
        run_scale_sweep(
            toy_heads,
            disk_items(1),
            tmp_path / "b",
            scales=[1.0],
            pixel_size_um=0.25,
            instance_strategies=["nope"],
            **OPTS,
        )
    # instance_metrics=False: no pixel size needed, nothing measured
    run_scale_sweep(toy_heads, disk_items(1), tmp_path / "c", scales=[1.0], instance_metrics=False, **OPTS)


@pytest.mark.parametrize("mode", ["boundary", "centre"])
def test_the_sweep_separates_touching_nuclei_with_the_network_s_map(tmp_path, mode) -> None:
    torch.manual_seed(0)
    net, items = ToyHeadsWithMap(), square_pairs(mode)
    run_scale_sweep(net, items, tmp_path / "plain", scales=[1.0], pixel_size_um=0.25, **OPTS)
    run_scale_sweep(net, items, tmp_path / "sep", scales=[1.0], pixel_size_um=0.25, separation=mode, **OPTS)
    plain = _rows_by_key(tmp_path / "plain" / "eval" / "scale_sweep.csv")
    sep = _rows_by_key(tmp_path / "sep" / "eval" / "scale_sweep.csv")
    for st in ("mean", "pdist", "pens"):
        assert float(plain[(st, 1.0)]["count_ratio"]) == pytest.approx(0.5)  # each pair is one object
        assert float(sep[(st, 1.0)]["count_ratio"]) == pytest.approx(1.0) and float(sep[(st, 1.0)]["pq"]) > 0.8
        assert sep[(st, 1.0)]["iou"] == plain[(st, 1.0)]["iou"]  # the class mask is the same
    meta = json.loads((tmp_path / "sep" / "eval" / "scale_sweep.json").read_text())
    assert meta["instance_metrics"]["separation"] == mode
    assert meta["num_classes"] == 2


def test_a_separation_asked_of_a_network_without_maps_is_the_class_mask_alone(tmp_path, toy_heads, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="seunet_monai.evaluation.sweep"):
        run_scale_sweep(
            toy_heads,
            square_pairs("boundary"),
            tmp_path,
            scales=[1.0],
            pixel_size_um=0.25,
            separation="boundary",
            **OPTS,
        )
    assert any("predicts no separation map" in r.getMessage() for r in caplog.records)
    rows = _rows_by_key(tmp_path / "eval" / "scale_sweep.csv")
    assert float(rows[("pens", 1.0)]["count_ratio"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="separation must be one of"):
        ScaleSweep([1.0], separation="contour")
