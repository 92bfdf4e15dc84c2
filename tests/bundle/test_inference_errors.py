"""Issue 25 through real ``python -m monai.bundle run inferring`` commands: inference takes the stain reference
of the model's ``ckpt_dir``, and bad values raised inside config expressions reach the user as one line.

No training is needed: every case fails while the config is instantiated, before the checkpoint is read.
"""

from __future__ import annotations

import numpy as np
import pytest
from monai.bundle import ConfigParser
from PIL import Image

from seunet_monai.errors import config_error_line

from .conftest import EVALUATE, INFERENCE, TINY_NET, TRAIN
from .test_data_safety import assert_one_line_error, run


def test_inference_takes_the_stain_reference_from_ckpt_dir_like_evaluation(tmp_path):
    """Item 7: inference used bundle/models/stain_reference.json for any --ckpt_dir."""
    expected = str(tmp_path / "stain_reference.json")
    for configs in ([INFERENCE], [TRAIN, EVALUATE]):
        parser = ConfigParser()
        parser.read_config(configs)
        parser["ckpt_dir"] = str(tmp_path)
        assert parser.get_parsed_content("stain_reference") == expected


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / "a.png")
    return folder


def _infer(tmp_path, inputs, *overrides: str):
    return run(
        "inferring",
        [INFERENCE],
        *TINY_NET,
        "--input_dir",
        str(inputs),
        "--output_dir",
        str(tmp_path / "out"),
        "--ckpt_dir",
        str(tmp_path / "models"),
        "--progress",
        "false",
        *overrides,
    )


@pytest.mark.parametrize("content", ['{"method": "vahadane", "target_st', "{}"], ids=["truncated", "empty"])
def test_corrupt_stain_reference_of_the_checkpoint_is_one_line(tmp_path, inputs, content):
    """A corrupt ckpt_dir/stain_reference.json ended in 63-78 lines ("Failed to evaluate ConfigExpression")."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "stain_reference.json").write_text(content)
    proc = _infer(tmp_path, inputs)
    assert_one_line_error(proc, str(tmp_path / "models" / "stain_reference.json"), "--stain_norm none")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["-0.25", "0"])
def test_target_mpp_that_is_not_positive_is_one_line(tmp_path, inputs, value):
    """`--target_mpp -0.25` ended in "math domain error"."""
    proc = _infer(tmp_path, inputs, "--target_mpp", value, "--stain_norm", "none")
    assert_one_line_error(proc, "target_mpp must be a positive resolution", "--target_mpp")
    assert not (tmp_path / "out").exists()


def test_output_dir_that_is_a_file_is_one_line(tmp_path, inputs):
    """An --output_dir that is a file ended in a 49-line traceback."""
    (tmp_path / "out").write_text("a file")
    proc = _infer(tmp_path, inputs, "--stain_norm", "none")
    assert_one_line_error(proc, str(tmp_path / "out"), "is a file")
    assert (tmp_path / "out").read_text() == "a file"


def test_an_error_inside_a_config_item_is_one_line_naming_the_key(tmp_path, inputs):
    """Errors raised inside config expressions and components reach the user as one line naming the key, not
    MONAI's "Failed to evaluate/instantiate" traceback."""
    parser = ConfigParser()
    parser.read_config(INFERENCE)
    parser["target_mpp"] = "$1 / 0"
    with pytest.raises(RuntimeError) as info:
        parser.get_parsed_content("target_mpp")
    assert config_error_line(info.value) == "config key 'target_mpp': ZeroDivisionError: division by zero"
    assert config_error_line(ValueError("not from a config")) is None
    proc = _infer(tmp_path, inputs, "--network_def#num_scales", "0", "--stain_norm", "none")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert lines == ["error: config key 'network_def': ValueError: num_scales must be >= 1, got 0."], proc.stderr
