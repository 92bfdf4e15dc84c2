"""What made the outputs, recorded and compared (``provenance``).

Inputs are small synthetic slides and images (:mod:`tests.apps.wsi.slides`); every test runs in seconds on a CPU.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from tests.apps.wsi.slides import (
    DarkBlobs,
    make_workflow,
    png,
)


def test_finished_outputs_of_other_settings_or_another_input_are_refused(tmp_path, tissue):
    """Item 6: re-running with other settings, or on a replaced input, skipped the old results."""
    (tmp_path / "in").mkdir()
    image = png(tmp_path / "in" / "a.png", tissue[:96, :96])
    out = tmp_path / "out"
    torch.save(DarkBlobs().state_dict(), tmp_path / "model.pt")
    make_workflow(tmp_path / "in", out, checkpoint=tmp_path / "model.pt", bundle_version="9.9").run()
    prov = json.loads((out / "a_summary.json").read_text())["provenance"]
    assert prov["model_file"] == str((tmp_path / "model.pt").resolve()) and len(prov["model_sha256"]) == 64
    assert (
        prov["bundle_version"] == "9.9"
        and prov["fusion"] == "pens"
        and prov["stain_normalisation"] == {"method": "none"}
    )
    assert prov["settings"]["separation"] is None and prov["settings"]["roi_size"] == [128, 128]
    assert prov["input_file"]["size_bytes"] == image.stat().st_size
    # the same settings: skipped
    same = make_workflow(tmp_path / "in", out, checkpoint=tmp_path / "model.pt")
    assert same.run()["skipped"] == ["a.png"]
    with pytest.raises(FileExistsError, match=r"a\.png.*marker_h_um: 0\.15 -> 0\.3.*--overwrite true"):
        make_workflow(tmp_path / "in", out, checkpoint=tmp_path / "model.pt", marker_h_um=0.3).run()
    with pytest.raises(FileExistsError, match="model_sha256"):
        make_workflow(tmp_path / "in", out).run()  # another model (here: none)
    png(image, tissue[100:196, :96])
    os.utime(image, ns=(1, 1))
    with pytest.raises(FileExistsError, match=r"input_file\.mtime_ns: \d+ -> 1"):
        make_workflow(tmp_path / "in", out, checkpoint=tmp_path / "model.pt").run()
    redo = make_workflow(tmp_path / "in", out, checkpoint=tmp_path / "model.pt", overwrite=True)
    assert redo.run()["done"] == ["a.png"]
    assert json.loads((out / "a_summary.json").read_text())["provenance"]["input_file"]["mtime_ns"] == 1


def test_stain_normalisation_and_its_reference_are_logged_and_recorded(tmp_path, tissue, caplog):
    """Item 7: the log and the summary name the stain reference used."""
    from seunet_monai.apps.wsi import patch_stain_transform
    from seunet_monai.data.stain.estimation import DEFAULT_MAX_CONCENTRATIONS, DEFAULT_STAIN_MATRIX

    ref = tmp_path / "ckpt" / "stain_reference.json"
    ref.parent.mkdir()
    ref.write_text(
        json.dumps(
            {
                "method": "macenko",
                "target_stain_matrix": DEFAULT_STAIN_MATRIX.tolist(),
                "target_max_concentrations": DEFAULT_MAX_CONCENTRATIONS.tolist(),
            }
        )
    )
    (tmp_path / "in").mkdir()
    png(tmp_path / "in" / "a.png", tissue[:96, :96])
    caplog.set_level("INFO", logger="seunet_monai.apps.wsi.workflow")
    make_workflow(tmp_path / "in", tmp_path / "out", image_transform=patch_stain_transform("auto", ref)).run()
    assert f"stain normalisation: macenko to the reference {ref}" in caplog.text
    stain = json.loads((tmp_path / "out" / "a_summary.json").read_text())["provenance"]["stain_normalisation"]
    assert stain["method"] == "macenko" and stain["reference"] == str(ref)
