"""`verify_net_in_out` against metadata.json, and a traced TorchScript export matching the eager network."""

from __future__ import annotations

import sys

import torch

from .conftest import INFERENCE, REPO, TINY_NET, run_cmd

META = str(REPO / "bundle" / "configs" / "metadata.json")


def test_verify_net_in_out():
    proc = run_cmd(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "verify_net_in_out",
            "network_def",
            "--meta_file",
            META,
            "--config_file",
            INFERENCE,
            *TINY_NET,
        ]
    )
    assert "verified with no error" in proc.stdout


def _export(tmp_path, trained, *extra: str, check: bool = True):
    ts = tmp_path / "model.ts"
    proc = run_cmd(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "ckpt_export",
            "network_def",
            "--filepath",
            str(ts),
            "--ckpt_file",
            str(trained["ckpt_dir"] / "model.pt"),
            "--meta_file",
            META,
            "--config_file",
            INFERENCE,
            *TINY_NET,
            *extra,
        ],
        check=check,
    )
    return ts, proc


def _eager(trained):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(INFERENCE)
    parser["network_def"]["num_scales"] = 2
    parser["network_def"]["channels"] = [4, 8, 16, 32, 64]
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(trained["ckpt_dir"] / "model.pt", map_location="cpu", weights_only=True))
    return net.eval()


def test_traced_export_matches_eager(tmp_path, trained):
    ts, _ = _export(tmp_path, trained, "--use_trace", "True", "--input_shape", "[1,3,64,64]")
    assert ts.is_file()
    net, scripted = _eager(trained), torch.jit.load(str(ts), map_location="cpu")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager, traced = net(x), scripted(x)
    assert traced.shape == eager.shape == (1, 2, 64, 64)
    torch.testing.assert_close(traced, eager, rtol=1e-4, atol=1e-5)


def test_export_traced_at_128_is_correct_at_every_size(tmp_path, trained):
    """The README's export (traced at 128x128) at sizes that are not multiples of 16."""
    ts, _ = _export(tmp_path, trained, "--use_trace", "True", "--input_shape", "[1,3,128,128]")
    net, exported = _eager(trained), torch.jit.load(str(ts), map_location="cpu")
    for shape in ((1, 3, 200, 200), (1, 3, 300, 411)):
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            eager, out = net(x), exported(x)
        assert out.shape == eager.shape == (1, 2, *shape[2:])
        torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-5)


def test_script_export_fails_with_a_clear_message(tmp_path, trained):
    ts, proc = _export(tmp_path, trained, check=False)
    assert proc.returncode == 2 and not ts.exists()
    assert "Traceback" not in proc.stdout  # one line, not MONAI's traceback
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("error: ")]
    assert "cannot be exported with torch.jit.script; export it by tracing" in line and "--use_trace True" in line
