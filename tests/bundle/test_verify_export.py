"""`verify_net_in_out` against metadata.json, and a traced TorchScript export matching the eager network."""

from __future__ import annotations

import sys

import torch

from .conftest import INFERENCE, REPO, TINY_NET, run_cmd

META = str(REPO / "bundle" / "configs" / "metadata.json")


def test_verify_net_in_out():
    proc = run_cmd([sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def", "--meta_file", META,
                    "--config_file", INFERENCE, *TINY_NET])
    assert "verified with no error" in proc.stdout


def test_traced_export_matches_eager(tmp_path, trained):
    ts = tmp_path / "model.ts"
    run_cmd([sys.executable, "-m", "monai.bundle", "ckpt_export", "network_def", "--filepath", str(ts),
             "--ckpt_file", str(trained["ckpt_dir"] / "model.pt"), "--meta_file", META, "--config_file", INFERENCE,
             *TINY_NET, "--use_trace", "True", "--input_shape", "[1,3,64,64]"])
    assert ts.is_file()
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(INFERENCE)
    parser["network_def"]["num_scales"] = 2
    parser["network_def"]["channels"] = [4, 8, 16, 32, 64]
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(trained["ckpt_dir"] / "model.pt", map_location="cpu", weights_only=True))
    net.eval()
    scripted = torch.jit.load(str(ts), map_location="cpu")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager, traced = net(x), scripted(x)
    assert traced.shape == eager.shape == (1, 2, 64, 64)
    torch.testing.assert_close(traced, eager, rtol=1e-4, atol=1e-5)
