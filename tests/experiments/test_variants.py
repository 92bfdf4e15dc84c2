"""Specification of ``seunet_monai.experiments.variants``: each variant is the bundle's configs plus its override
file, and its command-line overrides name the dataset, the folders, the seed and the widths."""

from __future__ import annotations

from pathlib import Path

import pytest

from seunet_monai.experiments import variants
from seunet_monai.experiments.variants import (
    DEFAULT_VARIANTS,
    TINY_DATA,
    VARIANTS,
    bundle_overrides,
    cli_args,
    cli_value,
    config_files,
)


def test_every_variant_override_file_exists():
    assert set(DEFAULT_VARIANTS) <= set(VARIANTS)
    for name, spec in VARIANTS.items():
        files = config_files(spec, evaluating=True)
        assert [Path(f).name for f in files[:2]] == ["train.json", "evaluate.json"], name
        assert all(Path(f).is_file() for f in files), name
    assert [Path(f).name for f in config_files(VARIANTS["seunet"], evaluating=False)] == ["train.json"]
    assert config_files(VARIANTS["unet"], evaluating=False)[-1].endswith("variants/unet.json")


def test_bundle_overrides_name_the_folders_seed_and_tiny_settings(tmp_path):
    ov = bundle_overrides("seunet", tmp_path / "data", tmp_path / "v", epochs=3, tiny=True, seed=2)
    assert ov["dataset_dir"] == str((tmp_path / "data").resolve())
    assert ov["output_dir"] == str((tmp_path / "v").resolve()) and ov["ckpt_dir"] == str((tmp_path / "v" / "models"))
    assert ov["epochs"] == 3 and ov["seed"] == 2 and ov["network_def#channels"] == [5, 10, 20, 40, 80]
    assert TINY_DATA.items() <= ov.items()
    assert "epochs" not in bundle_overrides("seunet", "d", "o")


def test_widths_are_checked_and_basic_unet_repeats_the_first():
    assert bundle_overrides("unet", "d", "o", widths=[1, 2, 3, 4, 5])["network_def#features"] == [1, 2, 3, 4, 5, 1]
    assert bundle_overrides("cnn", "d", "o", widths=[1, 2, 3, 4, 5])["network_def#channels"] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="5 positive numbers"):
        bundle_overrides("seunet", "d", "o", widths=[1, 2, 3])


def test_cli_args_write_values_as_the_bundle_reads_them():
    assert [cli_value(v) for v in (True, False, "pens", 3, [0.5, 2])] == ["true", "false", "pens", "3", "[0.5, 2]"]
    assert cli_args({"epochs": 2, "fusion": "pdist"}) == ["--epochs", "2", "--fusion", "pdist"]


def test_overrides_reach_every_variants_bundle_arguments():
    """The runner's ``overrides`` (``--override KEY=VALUE``, parsed in tests/cli/test_experiment.py) are in every
    variant's bundle arguments."""
    overrides = {"scale_augmentation": True, "scale_range": [0.5, 2], "fusion": "pdist"}
    ov = variants.bundle_overrides("unet", Path("d"), Path("o"), None, False, 0, None, overrides)
    assert ov["scale_augmentation"] is True and ov["scale_range"] == [0.5, 2] and ov["fusion"] == "pdist"
