"""``scripts/scale_fusion_cv.py`` (:mod:`seunet_monai.cli.scale_fusion_cv`): ``cache`` builds the network and the
validation split as the bundle's ``calibrating`` command does and caches them; ``score`` writes the report with
what produced it; bad inputs end in one ``error:`` line and status 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seunet_monai.cli.scale_fusion_cv import main, parse_scales
from seunet_monai.errors import ConfigValueError
from seunet_monai.networks import SEUNet

REPO = Path(__file__).resolve().parents[2]
TINY = ["--set", "network_def#channels=[2,4,8,16,32]", "--set", "network_def#num_scales=2"]


def _prepared(root: Path) -> Path:
    """A prepared dataset: two 32-px images cut into four 16-px tiles each, named as the preparation names them."""
    items = []
    for index, source in enumerate(("img-a", "img-b")):
        rng = np.random.default_rng(index)
        label = np.kron(rng.random((4, 4)) > 0.5, np.ones((8, 8))).astype(np.uint8)
        rgb = (40 + 160 * label[..., None] + rng.integers(0, 40, (32, 32, 3))).astype(np.uint8)
        for r in (0, 16):
            for c in (0, 16):
                name = f"{source}_r{r}_c{c}"
                for kind, array in (("images", rgb[r : r + 16, c : c + 16]), ("labels", label[r : r + 16, c : c + 16])):
                    (root / "validation" / kind).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(array).save(root / "validation" / kind / f"{name}.png")
                items.append(
                    {
                        "image": f"validation/images/{name}.png",
                        "label": f"validation/labels/{name}.png",
                        "name": name,
                        "source": source,
                    }
                )
    (root / "datalist.json").write_text(json.dumps({"training": [], "validation": items, "test": []}))
    return root


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    torch.save(SEUNet(2, 3, 2, num_scales=2, channels=[2, 4, 8, 16, 32]).state_dict(), path)
    return path


def test_named_scales() -> None:
    assert len(parse_scales(["eval9"])) == 9 and parse_scales(["paper17"])[0] == 0.25
    assert parse_scales(["0.5", "2"]) == [0.5, 2.0]
    with pytest.raises(ConfigValueError, match="eval9, paper17"):
        parse_scales(["many"])


def test_cache_then_score_writes_the_report_with_its_provenance(tmp_path, capsys) -> None:
    data, ckpt = _prepared(tmp_path / "data"), _checkpoint(tmp_path / "model.pt")
    cache, report = tmp_path / "cache", tmp_path / "report"
    args = ["cache", "--checkpoint", str(ckpt), "--data-dir", str(data), "--out", str(cache), *TINY]
    assert main([*args, "--scales", "0.5", "1", "--with-tiles", "--dry-run"]) == 0
    assert "2 whole image(s) x 2 scales" in capsys.readouterr().out and not cache.exists()
    assert main([*args, "--scales", "0.5", "1", "--with-tiles"]) == 0
    manifest = json.loads((cache / "manifest.json").read_text())
    assert [it["name"] for it in manifest["items"] if it["kind"] == "whole"] == ["img-a", "img-b"]
    assert manifest["settings"]["overrides"] == {"network_def#channels": [2, 4, 8, 16, 32], "network_def#num_scales": 2}
    score = ["score", "--cache", str(cache), "--out", str(report), "--calibration", "tiles"]
    assert main([*score, "--profile-scales", "0.5", "1", "--rules", "scale,lcb_z1"]) == 0
    result = json.loads((report / "cv_report.json").read_text())
    assert result["provenance"]["command"].startswith("scale_fusion_cv score --cache")
    assert set(result["provenance"]["code"]) >= {"seunet_monai", "git_rev"}
    assert result["cache"]["checkpoint"]["sha256"] == manifest["checkpoint"]["sha256"]
    assert list(result["rules"]) == ["scale", "lcb_z1"] and result["scales"] == [0.5, 1.0]
    assert "| lcb_z1 |" in (report / "cv_report.md").read_text()


@pytest.mark.parametrize("case", ["checkpoint", "datalist", "cache"])
def test_bad_inputs_end_in_one_error_line(tmp_path, capsys, case) -> None:
    data, ckpt = tmp_path / "data", tmp_path / "model.pt"
    data.mkdir()
    if case == "checkpoint":
        _prepared(data)
        argv = ["cache", "--checkpoint", str(ckpt), "--data-dir", str(data), "--out", str(tmp_path / "c")]
        expected = "does not exist"
    elif case == "datalist":
        argv = ["cache", "--checkpoint", str(_checkpoint(ckpt)), "--data-dir", str(data), "--out", str(tmp_path / "c")]
        expected = "holds no datalist.json"
    else:
        argv = ["score", "--cache", str(tmp_path / "c"), "--out", str(tmp_path / "r")]
        expected = "is empty"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("scale_fusion_cv: error: ") and expected in err and "\n" not in err


def test_the_script_is_the_same_main() -> None:
    spec = importlib.util.spec_from_file_location("scale_fusion_cv_script", REPO / "scripts" / "scale_fusion_cv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main is main
