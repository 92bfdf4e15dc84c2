"""Exports valid at every input size: a network traced at 128x128 equals the eager one at other sizes, and
``torch.jit.script`` fails with one clear line."""

from __future__ import annotations

import warnings

import pytest
import torch

from seunet_monai.networks import CNNUNet, SEUNet

TINY = (5, 10, 20, 40, 80)


@pytest.mark.parametrize("cls", [SEUNet, CNNUNet])  # the padding is SEUNet._pad, shared by every subclass
def test_traced_at_128_is_exact_at_sizes_that_are_not_multiples_of_16(cls):
    torch.manual_seed(0)
    net = cls(channels=TINY).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about shapes: the graph records them as values
        traced = torch.jit.trace(net, torch.rand(1, 3, 128, 128))
        for shape in ((1, 3, 200, 200), (1, 3, 300, 411), (2, 3, 37, 21)):
            x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
            eager, out = net(x), traced(x)
            assert out.shape == eager.shape == (shape[0], 2, *shape[2:])
            # before the fix the padding branch was frozen at trace time (differences up to 0.05 when trained)
            torch.testing.assert_close(out, eager, rtol=0, atol=1e-6)


def test_script_export_fails_with_one_clear_line():
    net = SEUNet(channels=TINY).eval()
    with pytest.raises(RuntimeError, match="cannot be exported with torch.jit.script; export it by tracing") as err:
        torch.jit.script(net)
    assert "\n" not in str(err.value) and "--use_trace True" in str(err.value)
