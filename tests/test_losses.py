"""Specification of ``seunet_monai.losses.MultiHeadLoss`` (eq. 8-9)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from seunet_monai.losses import MultiHeadLoss
from seunet_monai.networks import SEUNet
from seunet_monai.transforms.separation import SeparationTarget


@pytest.mark.parametrize("num_heads", [1, 2, 5])
def test_initial_weights_are_uniform_and_sum_to_one(num_heads):
    loss = MultiHeadLoss(num_heads)
    w = loss.weights()
    assert w.shape == (num_heads,)
    torch.testing.assert_close(w, torch.full((num_heads,), 1.0 / num_heads))
    assert loss.eta.requires_grad and list(loss.parameters())[0] is loss.eta


@pytest.mark.parametrize("num_heads", [2, 3, 5])
def test_weights_stay_within_bounds_for_extreme_eta(num_heads):
    loss = MultiHeadLoss(num_heads)
    lo, hi = 1.0 / (2 * num_heads), (num_heads + 1) / (2 * num_heads)
    gen = torch.Generator().manual_seed(0)
    for scale in (1.0, 10.0, 1e3):
        with torch.no_grad():
            loss.eta.copy_(torch.randn(num_heads, generator=gen) * scale)
        w = loss.weights()
        torch.testing.assert_close(w.sum(), torch.tensor(1.0))
        assert (w >= lo - 1e-6).all() and (w <= hi + 1e-6).all()
    # one head completely dominant: the bounds are reached
    with torch.no_grad():
        loss.eta.copy_(torch.tensor([100.0] + [0.0] * (num_heads - 1)))
    w = loss.weights()
    torch.testing.assert_close(w[0], torch.tensor(hi))
    torch.testing.assert_close(w[1:], torch.full((num_heads - 1,), lo))


def test_value_is_weighted_sum_of_per_head_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, 6)  # (B, Ω, C, H, W)
    target = torch.randint(0, 4, (2, 1, 5, 6))
    loss = MultiHeadLoss(3)
    with torch.no_grad():
        loss.eta.copy_(torch.tensor([0.5, -1.0, 2.0]))
    value = loss(logits, target)
    per_head = torch.stack([F.cross_entropy(logits[:, k], target[:, 0]) for k in range(3)])
    beta = torch.softmax(loss.eta.detach(), 0)
    omega = (beta + 1 / 3) / (beta + 1 / 3).sum()
    torch.testing.assert_close(value, (omega * per_head).sum())
    torch.testing.assert_close(loss.last_head_losses, per_head)
    assert not loss.last_head_losses.requires_grad
    # the target may also come without its channel dim, as float
    torch.testing.assert_close(loss(logits, target[:, 0].float()), value)


def test_gradients_reach_eta_and_logits():
    torch.manual_seed(1)
    logits = torch.randn(2, 2, 2, 8, 8, requires_grad=True)
    target = torch.randint(0, 2, (2, 8, 8))
    loss = MultiHeadLoss(2)
    loss(logits, target).backward()
    assert loss.eta.grad is not None and loss.eta.grad.abs().sum() > 0
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # a better head gains weight after a gradient step on η
    opt = torch.optim.SGD(loss.parameters(), lr=10.0)
    good = torch.zeros(1, 1, 2, 4, 4)
    good[:, :, 1] = 10.0
    bad = torch.zeros(1, 1, 2, 4, 4)
    two_heads = torch.cat([good, bad], dim=1)
    tgt = torch.ones(1, 4, 4)
    for _ in range(3):
        opt.zero_grad()
        loss(two_heads, tgt).backward()
        opt.step()
    w = loss.weights()
    assert w[0] > w[1]  # minimising L shifts weight to the head with the lower loss


def test_ignore_index_excludes_pixels():
    torch.manual_seed(2)
    logits = torch.randn(1, 2, 3, 4, 4)
    target = torch.randint(0, 3, (1, 1, 4, 4))
    target[..., :2] = 255
    loss = MultiHeadLoss(2, ignore_index=255)
    value = loss(logits, target)
    keep = target[0, 0] != 255
    ref = torch.stack([F.cross_entropy(logits[0, k][:, keep].T, target[0, 0][keep]) for k in range(2)]).mean()
    torch.testing.assert_close(value, ref)
    assert torch.isfinite(value)


def test_custom_monai_loss_and_single_head_input():
    logits = torch.randn(2, 3, 6, 6)
    target = torch.randint(0, 3, (2, 1, 6, 6))
    dice = DiceLoss(softmax=True, to_onehot_y=True)
    loss = MultiHeadLoss(1, loss=dice, target_channel_dim=True)
    torch.testing.assert_close(loss(logits, target), dice(logits, target))
    assert "DiceLoss" in repr(loss) and "num_heads=1" in repr(loss)


def test_fixed_weights_have_no_parameters():
    loss = MultiHeadLoss(4, learn_weights=False)
    assert list(loss.parameters()) == []
    assert "eta" in loss.state_dict()
    torch.testing.assert_close(loss.weights(), torch.full((4,), 0.25))


def test_state_dict_round_trip():
    a = MultiHeadLoss(3)
    with torch.no_grad():
        a.eta.copy_(torch.tensor([1.0, 2.0, 3.0]))
    b = MultiHeadLoss(3)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b.weights(), a.weights())


@pytest.mark.parametrize(
    "kwargs, shape, tshape, match",
    [
        ({"num_heads": 0}, None, None, "num_heads"),
        ({"num_heads": 2}, (2, 3, 2, 4, 4), (2, 4, 4), "heads"),
        ({"num_heads": 2}, (2, 2, 4, 4), (2, 4, 4), "per-head logits"),
        ({"num_heads": 2}, (2, 2, 2, 4, 4), (2, 2, 4, 4), "class indices"),
        ({"num_heads": 2}, (2, 2, 2, 4, 4), (2, 5, 4), "does not match"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, shape, tshape, match):
    with pytest.raises(ValueError, match=match):
        loss = MultiHeadLoss(**kwargs)
        loss(torch.zeros(shape), torch.zeros(tshape))


def test_extra_maps_add_their_loss_to_each_head_under_the_same_weights():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 2 + 1, 5, 6)  # (B, Ω, C + A, H, W)
    classes = torch.randint(0, 2, (2, 1, 5, 6))
    maps = torch.rand(2, 1, 5, 6)
    loss = MultiHeadLoss(3, aux_channels=1, aux_weight=0.5)
    with torch.no_grad():
        loss.eta.copy_(torch.tensor([0.5, -1.0, 2.0]))
    value = loss(logits, torch.cat([classes.float(), maps], 1))
    ce = torch.stack([F.cross_entropy(logits[:, k, :2], classes[:, 0]) for k in range(3)])
    bce = torch.stack([F.binary_cross_entropy_with_logits(logits[:, k, 2:], maps) for k in range(3)])
    torch.testing.assert_close(value, (loss.weights().detach() * (ce + 0.5 * bce)).sum())
    torch.testing.assert_close(loss.last_head_losses, ce + 0.5 * bce)
    torch.testing.assert_close(loss.last_aux_losses, 0.5 * bce)
    mse = MultiHeadLoss(3, aux_channels=1, aux_loss="mse", learn_weights=False)
    expected = torch.stack(
        [
            F.cross_entropy(logits[:, k, :2], classes[:, 0]) + F.mse_loss(torch.sigmoid(logits[:, k, 2:]), maps)
            for k in range(3)
        ]
    ).mean()
    torch.testing.assert_close(mse(logits, torch.cat([classes.float(), maps], 1)), expected)


def test_extra_maps_leave_out_ignored_pixels_and_train_their_logits():
    logits = torch.zeros(1, 2, 3, 2, 2, requires_grad=True)
    target = torch.tensor([[[[1.0, 255.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]]])  # (1, 1 + 1, 2, 2)
    loss = MultiHeadLoss(2, aux_channels=1, ignore_index=255)
    value = loss(logits, target)
    value.backward()
    assert logits.grad[0, :, 2, 0, 1].abs().max() == 0  # the ignored pixel trains nothing
    assert logits.grad[0, :, 2, 0, 0].abs().min() > 0 and loss.eta.grad is not None
    torch.testing.assert_close(
        loss.last_aux_losses,
        torch.full((2,), F.binary_cross_entropy_with_logits(torch.zeros(3), torch.tensor([1.0, 0.0, 1.0])).item()),
    )


def test_a_tiny_network_with_a_separation_map_learns_it():
    torch.manual_seed(0)
    inst = torch.zeros(1, 1, 16, 16)
    inst[0, 0, 3:9, 3:9], inst[0, 0, 3:9, 9:14] = 1, 2
    target = torch.cat([(inst > 0).float(), torch.as_tensor(SeparationTarget("centre")(inst[0]))[None]], 1)
    x = torch.cat([(inst > 0).float(), torch.rand(1, 2, 16, 16)], 1)
    net = SEUNet(num_scales=2, channels=(4, 8, 8, 8, 8), aux_channels=1).train()
    loss = MultiHeadLoss(2, aux_channels=1)
    opt = torch.optim.Adam(list(net.parameters()) + list(loss.parameters()), lr=0.01)
    values = []
    for _ in range(5):
        opt.zero_grad()
        value = loss(net(x), target)
        value.backward()
        opt.step()
        values.append(float(value.detach()))
    assert all(torch.isfinite(torch.tensor(values))) and values[-1] < values[0]
    assert net.aux_head.weight.grad is not None and net.aux_head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, shape, tshape, match",
    [
        ({"aux_channels": -1}, None, None, "aux_channels"),
        ({"aux_channels": 1, "aux_loss": "l1"}, None, None, "aux_loss"),
        ({"aux_channels": 1, "aux_weight": -1.0}, None, None, "aux_weight"),
        ({"aux_channels": 1}, (2, 2, 1, 4, 4), (2, 2, 4, 4), "does the network predict them"),
        ({"aux_channels": 1}, (2, 2, 3, 4, 4), (2, 1, 4, 4), "class labels then the target maps"),
    ],
)
def test_extra_map_arguments_and_shapes_are_checked(kwargs, shape, tshape, match):
    with pytest.raises(ValueError, match=match):
        loss = MultiHeadLoss(2, **kwargs)
        loss(torch.zeros(shape), torch.zeros(tshape))
