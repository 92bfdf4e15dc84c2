"""Specification of ``seunet_monai.checkpoint``: one reader for model.pt and last.pt."""

from __future__ import annotations

import pytest
import torch

from seunet_monai.checkpoint import check_state_dict


def test_check_state_dict(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))
    torch.save(net.state_dict(), tmp_path / "bare.pt")
    torch.save({"model": net.state_dict()}, tmp_path / "dict.pt")
    check_state_dict(net, tmp_path / "bare.pt")
    check_state_dict(net, tmp_path / "dict.pt")
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 2, 1))
    with pytest.raises(ValueError, match=r"bare\.pt.*shape"):
        check_state_dict(other, tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="missing keys"):
        check_state_dict(
            torch.nn.Sequential(
                torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(2, 2, 1)
            ),
            tmp_path / "bare.pt",
        )
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        check_state_dict(net, tmp_path / "nothing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        check_state_dict(net, tmp_path / "junk.pt")


def test_model_pt_and_last_pt_share_one_key_and_old_last_pt_files_still_read(tmp_path):
    from seunet_monai.checkpoint import MODEL_KEY, is_training_checkpoint, load_network, read_state_dict
    from seunet_monai.errors import CheckpointError

    net = torch.nn.Conv2d(3, 2, 1)
    assert MODEL_KEY == "model"
    torch.save({"model": net.state_dict(), "optimizer": {}}, tmp_path / "last.pt")
    torch.save({"network": net.state_dict(), "optimizer": {}}, tmp_path / "old_last.pt")  # before the key was unified
    for name in ("last.pt", "old_last.pt"):
        content, state = read_state_dict(tmp_path / name)
        assert is_training_checkpoint(content) and set(state) == {"weight", "bias"}
        check_state_dict(net, tmp_path / name, allow_training_checkpoint=True)
        # evaluation expects a model file: a resumable checkpoint is named as such
        with pytest.raises(CheckpointError, match="resumable training checkpoint.*model.pt"):
            check_state_dict(net, tmp_path / name)
    other = torch.nn.Conv2d(3, 2, 1)
    load_network(other, tmp_path / "old_last.pt")
    assert torch.equal(other.weight, net.weight)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_network(torch.nn.Conv2d(3, 4, 1), tmp_path / "last.pt")
