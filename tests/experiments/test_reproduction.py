"""The Table 2 protocol (``seunet-experiment --preset``): a dry run lists every job with an estimate and writes
nothing; a wrong source or a folder of another run is one clear error; the report pools seeds (mean ± sd, range),
puts the paper's figure beside ours and draws one line per model; a tiny preset runs end to end and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seunet_monai.cli import experiment as cli
from seunet_monai.evaluation.report import write_csv_rows
from seunet_monai.experiments import presets
from seunet_monai.experiments import reproduction as rep
from seunet_monai.experiments.state import STATE_FILE
from seunet_monai.experiments.variants import DEFAULT_VARIANTS

FIXTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "monuseg-sample"


def _fake_source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for sub in ("images", "masks"):
        (src / sub).mkdir(parents=True)
    for stem in presets.MONUSEG_VALIDATION_IMAGES:
        (src / "images" / f"{stem}.tif").write_bytes(b"")
    return src


def test_dry_run_lists_every_job_with_an_estimate_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(["--preset", "monuseg-cpu", "--source", str(_fake_source(tmp_path)), "--out", str(out), "--dry-run"])
    text = capsys.readouterr().out
    assert rc == 0 and not out.exists()
    preset = presets.PRESETS["monuseg-cpu"]
    assert len(preset.jobs) == 11 and len(preset.scales) == 17
    assert {j.variant for j in preset.jobs} == {"seunet", "cnn", "unet", "sesn", "disco", "seunet_fixed", "seunet_free"}
    assert sorted(j.seed for j in preset.jobs if j.variant == "seunet") == [0, 1, 2]
    for job in preset.jobs:
        assert "pending  " in text and job.name in text
    assert "remaining (estimated)" in text


def test_the_instance_preset_compares_three_formulations_at_equal_budget(tmp_path, capsys):
    out = tmp_path / "out"
    source = str(_fake_source(tmp_path))
    rc = cli.main(["--preset", "instances-cpu", "--source", source, "--out", str(out), "--dry-run"])
    text = capsys.readouterr().out
    assert rc == 0 and not out.exists()
    preset, table2 = presets.PRESETS["instances-cpu"], presets.PRESETS["monuseg-cpu"]
    assert [(j.name, j.variant, j.seed) for j in preset.jobs] == [
        ("plain", "seunet", 0),
        ("boundary", "separation_boundary", 0),
        ("centre", "separation_centre", 0),
    ]
    assert preset.scales == tuple(s for s in table2.scales if 0.5 <= s <= 2) and len(preset.scales) == 9
    assert (preset.epochs, preset.widths) == (table2.epochs, table2.widths)  # the monuseg-cpu budget and recipe
    assert preset.train_overrides == table2.train_overrides and preset.report == "instances"
    for job in preset.jobs:
        assert "pending  " in text and f"{job.name} (variant {job.variant}, seed 0)" in text
    assert "remaining (estimated)" in text
    assert not {"separation_boundary", "separation_centre"} & set(DEFAULT_VARIANTS)  # not in plain experiments


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: p / "missing", "images/"),
        (lambda p: (p / "images").mkdir(parents=True) or (p / "masks").mkdir() or p, "lacks the validation images"),
    ],
)
def test_wrong_source_is_one_line_naming_it(tmp_path, capsys, make, needle):
    src = make(tmp_path / "src")
    rc = cli.main(["--preset", "monuseg-cpu", "--source", str(src), "--out", str(tmp_path / "o"), "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--source" in err[0] and needle in err[0]


def test_preset_needs_a_source(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--preset", "monuseg-cpu", "--out", "x"])
    assert e.value.code == 2 and "--source" in capsys.readouterr().err


def test_a_folder_of_another_run_is_refused(tmp_path):
    src = _fake_source(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / rep.STATE).write_text(json.dumps({"preset": "monuseg-cpu", "source": "/elsewhere", "steps": {}}))
    with pytest.raises(ValueError, match="refusing to mix runs"):
        rep.run_preset("monuseg-cpu", src, out, dry_run=True, log=lambda s: None)


def _finished_job(out: Path, name: str, model: str, ious: dict, params: int = 100) -> None:
    d = out / name
    (d / "eval").mkdir(parents=True)
    rows = [
        {"model": model, "strategy": s, "scale": sc, "iou": v, "iou_per_image": v, "dice": v, "num_images": 5}
        for s, curve in ious.items()
        for sc, v in curve.items()
    ]
    write_csv_rows(d / "eval" / "scale_sweep.csv", rows)
    (d / STATE_FILE).write_text(
        json.dumps(
            {
                "evaluation_finished": True,
                "parameters": params,
                "training_wall_s": 60.0,
                "evaluation_time_s": 30.0,
                "equivariance_error_mean": 0.3,
                "best_val_iou": 0.6,
            }
        )
    )


def test_report_pools_seeds_and_sets_the_paper_beside_ours(tmp_path):
    preset = presets.Preset(
        "p",
        "test preset",
        (
            presets.Job("seunet", "seunet", 0),
            presets.Job("seunet-seed1", "seunet", 1),
            presets.Job("cnn", "cnn", 0),
            presets.Job("unet", "unet", 0),
        ),
        1,
        (2, 2, 2, 2, 2),
        (0.5, 1.0),
        {},
        {},
    )
    fusions = ("mean", "pdist", "pens")
    heads = {"head1": {0.5: 0.56, 1.0: 0.60}, "head2": {0.5: 0.50, 1.0: 0.66}}  # best per scale: 0.56, 0.66
    _finished_job(tmp_path, "seunet", "seunet", {**{s: {0.5: 0.50, 1.0: 0.60} for s in fusions}, **heads})
    _finished_job(tmp_path, "seunet-seed1", "seunet-seed1", {**{s: {0.5: 0.54, 1.0: 0.64} for s in fusions}, **heads})
    _finished_job(tmp_path, "cnn", "cnn", {"head1": {0.5: 0.40, 1.0: 0.60}, "pens": {0.5: 0.40, 1.0: 0.60}})
    files = rep.write_reproduction(tmp_path, preset)
    md = (tmp_path / "reproduction.md").read_text()
    # seunet PEns: seed means 55 and 59 -> 57.00 ± 2.83 [55.00, 59.00]; the paper's 59.98 beside it
    assert "| seunet | pens | 57.00 ± 2.83 [55.00, 59.00] | 2 | 59.98 |" in md
    assert "| cnn | head1 | 50.00 | 1 | 54.94 |" in md
    assert "| cnn | pens |" not in md  # one-head models give one row
    assert "Jobs not finished" in md and "unet" in md.split("Jobs not finished")[1]
    assert (tmp_path / "reproduction_iou_vs_scale.png").stat().st_size > 1000
    rows = (tmp_path / "reproduction.csv").read_text().splitlines()
    # seunet: 3 fusions, 2 heads and the best head at each scale, 2 seeds x 2 scales; cnn: 1 row x 2 scales
    assert rows[0] == "model,strategy,seed,scale,iou" and len(rows) == 1 + 6 * 2 * 2 + 2
    assert "| seunet | head2 | 58.00 ± 0.00 [58.00, 58.00] | 2 |" in md
    assert (
        "| seunet | best_head | 61.00 ± 0.00 [61.00, 61.00] | 2 |" in md
    )  # max over heads per scale, then the mean over scales
    assert len(files) == 3


@pytest.mark.slow
@pytest.mark.skipif(not FIXTURE.is_dir(), reason="needs ../shared/fixtures/monuseg-sample")
def test_tiny_preset_runs_end_to_end_and_resumes(tmp_path, monkeypatch):
    images = sorted(p.stem for p in (FIXTURE / "images").iterdir())
    monkeypatch.setattr(rep, "MONUSEG_VALIDATION_IMAGES", (images[0],))
    tiny = presets.Preset(
        "tiny",
        "tiny",
        (presets.Job("cnn", "cnn", 0),),
        1,
        (4, 8, 8, 8, 8),
        (0.5, 1.0),
        {"calibrate_fusion": False, "patch_size": [64, 64], "batch_size": 2, "shift": 0},
        {
            "sweep#equivariance_images": 1,
            "sweep#equivariance_crop": 64,
            "sweep#num_examples": 1,
            "sweep#max_pixels": 1000000,
        },
    )
    monkeypatch.setitem(presets.PRESETS, "tiny", tiny)
    out = tmp_path / "out"
    lines: list[str] = []
    result = rep.run_preset("tiny", FIXTURE, out, log=lines.append)
    assert not result["failed"], result["failed"]
    state = json.loads((out / "cnn" / STATE_FILE).read_text())
    assert state["evaluation_finished"] and state["training_wall_s"] > 0
    swept = json.loads((out / "cnn" / "eval" / "scale_sweep.json").read_text())
    assert swept  # the sweep ran on the whole-image set, not on the tiles
    assert json.loads((out / "data" / "sweep" / "datalist.json").read_text())["test"]
    assert "| cnn | head1 |" in (out / "reproduction.md").read_text()
    lines.clear()
    rep.run_preset("tiny", FIXTURE, out, log=lines.append)
    assert any("already trained and evaluated" in s for s in lines)
    assert any(s.strip().startswith("done") for s in lines)


def test_ctrl_c_is_one_line_saying_how_to_resume(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_preset", interrupted)
    rc = cli.main(["--preset", "monuseg-cpu", "--source", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and len(err) == 1 and "run the same command again" in err[0]
