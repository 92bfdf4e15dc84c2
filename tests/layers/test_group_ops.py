"""The group-major folded layout and its inverse."""

import pytest
import torch

from seunet_monai.layers import fold_groups, unfold_groups


def test_fold_and_unfold_are_inverse_and_group_major():
    per_head = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).float().unsqueeze(-1)  # (B=2, Ω=3, C=4, 5, 1)
    folded = fold_groups(per_head)
    assert folded.shape == (6, 4, 5, 1)
    torch.testing.assert_close(folded[2 * 1 + 0], per_head[0, 1])  # rows k·B + b hold group k of sample b
    torch.testing.assert_close(unfold_groups(folded, 3), per_head)
    with pytest.raises(ValueError, match="multiple of num_scales"):
        unfold_groups(folded, 4)
