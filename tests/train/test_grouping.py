"""Gradual-grouping conv: the mask, exact conversion to grouped convs, refusal at alpha > 0."""

import pytest
import torch
from torch import nn

from gradgroup.deploy.errors import InputError, RunError
from gradgroup.train.grouping import (
    Form,
    GradualGroupConv2d,
    block_diagonal_mask,
    cap_cross_weights,
    convert_to_grouped,
    cross_ratios,
    get_alpha,
    group_conv,
    set_alpha,
    share_alpha,
)

CASES = [
    # (in, out, kernel, groups, padding, dilation)
    (8, 8, 1, 2, 0, 1),
    (8, 8, 1, 4, 0, 1),
    (8, 16, 1, 4, 0, 1),  # in != out
    (16, 8, 1, 8, 0, 1),
    (8, 8, (3, 1), 8, (1, 0), 1),  # depthwise 3x1
    (8, 8, (1, 3), 8, (0, 1), 1),  # depthwise 1x3
    (8, 8, (3, 1), 8, (4, 0), (4, 1)),  # dilated depthwise
    (8, 8, (1, 3), 2, (0, 2), (1, 2)),  # dilated grouped
    (12, 6, 3, 3, 1, 1),
]


def test_block_diagonal_mask_shape_and_blocks():
    mask = block_diagonal_mask(6, 4, 2)[:, :, 0, 0]
    expected = torch.tensor([[1, 1, 0, 0]] * 3 + [[0, 0, 1, 1]] * 3, dtype=torch.float32)
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("cin,cout,k,g,pad,dil", CASES)
def test_conversion_at_alpha_zero_is_exact(cin, cout, k, g, pad, dil):
    torch.manual_seed(0)
    layer = GradualGroupConv2d(cin, cout, k, g, padding=pad, dilation=dil)
    layer.alpha.fill_(0.0)
    x = torch.randn(2, cin, 11, 9)
    grouped = layer.to_grouped("layer")
    assert isinstance(grouped, nn.Conv2d) and grouped.groups == g
    assert grouped.weight.shape[1] == cin // g
    torch.testing.assert_close(grouped(x), layer(x), rtol=1e-5, atol=1e-5)


def test_alpha_one_is_the_dense_conv_and_alpha_scales_cross_group_weights():
    torch.manual_seed(0)
    layer = GradualGroupConv2d(4, 4, 1, 2, bias=False)
    x = torch.randn(1, 4, 5, 5)
    dense = nn.functional.conv2d(x, layer.weight)
    torch.testing.assert_close(layer(x), dense)
    layer.alpha.fill_(0.25)
    mask = layer.mask()[:, :, 0, 0]
    assert mask[0, 0] == 1 and mask[0, 3] == pytest.approx(0.25)


def test_gradients_flow_to_cross_group_weights_only_while_alpha_positive():
    layer = GradualGroupConv2d(4, 4, 1, 2, bias=False)
    layer.alpha.fill_(0.0)
    layer(torch.randn(1, 4, 3, 3)).sum().backward()
    grad = layer.weight.grad[:, :, 0, 0]
    assert torch.all(grad[:2, 2:] == 0) and torch.any(grad[:2, :2] != 0)


def test_conversion_refused_while_alpha_positive_names_layer():
    model = nn.Sequential(GradualGroupConv2d(4, 4, 1, 2))
    model[0].alpha.fill_(0.3)
    with pytest.raises(RunError, match=r"layer 0 has alpha=0\.3"):
        convert_to_grouped(model)
    assert convert_to_grouped(model, force=True) == 1


def test_alpha_is_saved_in_state_dict_and_helpers():
    model = nn.Sequential(GradualGroupConv2d(4, 4, 1, 2), GradualGroupConv2d(4, 4, 1, 4))
    set_alpha(model, 0.5)
    assert get_alpha(model) == 0.5
    state = model.state_dict()
    assert float(state["0.alpha"]) == 0.5 and "0.group_mask" not in state
    set_alpha(model, 0.0)
    assert convert_to_grouped(model) == 2 and get_alpha(model) == 0.0


def test_group_conv_forms():
    assert isinstance(group_conv(4, 4, 1, 2, Form.GRADUAL), GradualGroupConv2d)
    conv = group_conv(4, 4, 1, 2, Form.GROUPED)
    assert isinstance(conv, nn.Conv2d) and conv.groups == 2
    assert group_conv(4, 4, 1, 1, Form.GRADUAL).groups == 1


def test_invalid_groups_rejected():
    with pytest.raises(InputError, match="must divide"):
        GradualGroupConv2d(6, 4, 1, 4)


def _rms(layer):
    mask = layer.group_mask.expand_as(layer.weight).bool()
    w = layer.weight.detach()
    return w[mask].pow(2).mean().sqrt(), w[~mask].pow(2).mean().sqrt()


def test_cross_ratio_is_alpha_times_cross_over_diagonal_norm():
    layer = GradualGroupConv2d(4, 4, 1, 2, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    model = nn.Sequential(layer)
    assert cross_ratios(model) == {"0": pytest.approx(1.0)}  # 2 groups: equal entry counts
    set_alpha(model, 0.25)
    assert cross_ratios(model)["0"] == pytest.approx(0.25)


@pytest.mark.parametrize("groups", [2, 4, 8])
def test_cap_holds_cross_rms_at_diagonal_rms_only_while_alpha_decays(groups):
    torch.manual_seed(0)
    layer = GradualGroupConv2d(8, 8, (3, 1), groups, padding=(1, 0))
    with torch.no_grad():
        layer.weight.mul_(1.0 + 4.0 * (1.0 - layer.group_mask))  # cross entries 5x inflated
    model = nn.Sequential(layer)
    before = layer.weight.detach().clone()
    for alpha in (1.0, 0.0):  # dense start and grouped end are never touched
        set_alpha(model, alpha)
        assert cap_cross_weights(model) == 0 and torch.equal(layer.weight, before)
    set_alpha(model, 0.5)
    assert cap_cross_weights(model) == 1
    diag, cross = _rms(layer)
    assert cross == pytest.approx(float(diag), rel=1e-5)
    mask = layer.group_mask.expand_as(before).bool()
    assert torch.equal(layer.weight[mask], before[mask])  # the diagonal blocks are kept
    assert cap_cross_weights(model) == 0  # already within the cap


def test_capped_adam_cannot_reinflate_cross_weights():
    """Adam's step does not shrink with alpha: uncapped, the cross-group weights grow back."""
    torch.manual_seed(0)
    x, target = torch.randn(8, 8, 6, 6), torch.randn(8, 8, 6, 6)
    dense = nn.Conv2d(8, 8, 1, bias=False)
    with torch.no_grad():
        target = dense(x) * 3  # needs the cross-group paths

    def train(cap):
        torch.manual_seed(1)
        layer = GradualGroupConv2d(8, 8, 1, 4, bias=False)
        model = nn.Sequential(layer)
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        for step in range(60):
            set_alpha(model, 1.0 - step / 60)
            opt.zero_grad()
            nn.functional.mse_loss(model(x), target).backward()
            opt.step()
            if cap:
                cap_cross_weights(model)
        return _rms(layer)

    diag, cross = train(cap=False)
    assert cross > 1.5 * diag  # the failure the cap exists for
    diag, cross = train(cap=True)
    assert cross <= diag * (1 + 1e-5)


def test_recalibrate_bn_is_the_plain_average_over_the_batches_without_dropout():
    from gradgroup.train.evaluate import recalibrate_bn

    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Dropout2d(0.5), nn.BatchNorm2d(3)).train()
    batches = [torch.randn(4, 3, 5, 5) * 2 + 1 for _ in range(3)]
    assert recalibrate_bn(model, batches, torch.device("cpu")) == 12
    everything = torch.cat(batches)
    torch.testing.assert_close(model[0].running_mean, everything.mean((0, 2, 3)))
    batch_vars = torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches])
    torch.testing.assert_close(model[0].running_var, batch_vars.mean(0))  # as precise BN does
    assert model.training and model[0].momentum == 0.1
    # Dropout was off: the second BN saw the first one's output unmasked, mean ~0 and var ~1.
    torch.testing.assert_close(model[2].running_var, torch.ones(3), rtol=0.1, atol=0.1)
    assert recalibrate_bn(model, [], torch.device("cpu")) == 0  # nothing to average: untouched


def test_share_alpha_moves_every_layers_diagonal_share_linearly():
    for groups in (2, 4, 128):
        k = (groups - 1) ** 0.5
        assert share_alpha(1.0, groups) == 1.0 and share_alpha(0.0, groups) == 0.0
        shares = [1 / (1 + share_alpha(g / 10, groups) * k) for g in range(10, -1, -1)]
        steps = [b - a for a, b in zip(shares, shares[1:])]
        assert steps == pytest.approx([steps[0]] * 10)  # equal steps: linear in the schedule
    assert share_alpha(0.3, 1) == pytest.approx(0.3)  # no cross-group paths: alpha itself
    assert share_alpha(0.2, 128) < 0.02 < share_alpha(0.2, 4)  # depthwise targets go early


def test_set_alpha_per_layer():
    model = nn.Sequential(GradualGroupConv2d(8, 8, 1, 2), GradualGroupConv2d(8, 8, 1, 8))
    set_alpha(model, 0.5, "share")
    assert float(model[0].alpha) == pytest.approx(share_alpha(0.5, 2))
    assert float(model[1].alpha) == pytest.approx(share_alpha(0.5, 8))
    set_alpha(model, 0.5)
    assert float(model[0].alpha) == float(model[1].alpha) == 0.5
    with pytest.raises(InputError, match="layer alpha"):
        set_alpha(model, 0.5, "bogus")
