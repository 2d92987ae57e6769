"""MAC counting by layer type on hand-checkable layers."""

import torch
from torch import nn

from gradgroup.train.flops import conv_kind, count_model
from gradgroup.train.grouping import GradualGroupConv2d


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Conv2d(3, 8, 3, padding=1)  # 8*4*4 outputs x 3*9
        self.dw = nn.Conv2d(8, 8, (3, 1), padding=(1, 0), groups=8)  # 128 x 3
        self.grouped = GradualGroupConv2d(8, 8, 1, groups=4)  # 128 x 2
        self.up = nn.ConvTranspose2d(8, 2, 2, stride=2)  # 128 inputs x 2*4

    def forward(self, x):
        return self.up(self.grouped(self.dw(self.dense(x))))


def test_counts_by_type_by_hand():
    count = count_model(Tiny(), (4, 4))
    assert count.macs_by_type == {
        "dense": 128 * 27,
        "depthwise": 128 * 3,
        "grouped": 128 * 2,
        "transposed": 128 * 8,
    }
    assert count.macs == sum(count.macs_by_type.values())
    dense_params = 3 * 8 * 9 + 8 + 8 * 3 + 8 + 2 * 8 + 8 + 8 * 2 * 4 + 2
    assert count.params == dense_params  # the gradual layer counts as its grouped form


def test_conv_kind():
    assert conv_kind(1, 4, 4) == "dense"
    assert conv_kind(4, 4, 4) == "depthwise"
    assert conv_kind(2, 4, 4) == "grouped"
    assert conv_kind(1, 4, 4, transposed=True) == "transposed"


def test_count_restores_training_mode():
    model = Tiny().train()
    count_model(model, (4, 4))
    assert model.training
    assert torch.is_grad_enabled()
