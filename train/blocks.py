"""Building blocks of ERFNet and its efficient variants.

``NonBottleneck1D`` is ERFNet's non-bt-1D block; ``SeparableNonBottleneck`` is the paper's D / DGg /
DGgS block (depthwise factorized convs, then a pointwise conv that may be grouped and shuffled).
Every conv that is grouped in the final model goes through ``group_conv`` so it can be trained with
gradual grouping.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .grouping import Form, group_conv

BN_EPS = 1e-3  # ERFNet's reference value


class Downsampler(nn.Module):
    """cat[conv3x3 stride 2 (out - in channels), maxpool 2] -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, 2, 1)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class NonBottleneck1D(nn.Module):
    """ERFNet's block: 3x1, 1x3, BN, 3x1 (dilated), 1x3 (dilated), BN, dropout, residual."""

    def __init__(self, channels: int, dropout: float, dilation: int) -> None:
        super().__init__()
        c, d = channels, dilation
        self.conv3x1_1 = nn.Conv2d(c, c, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(c, c, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(c, eps=BN_EPS)
        self.conv3x1_2 = nn.Conv2d(c, c, (3, 1), padding=(d, 0), dilation=(d, 1))
        self.conv1x3_2 = nn.Conv2d(c, c, (1, 3), padding=(0, d), dilation=(1, d))
        self.bn2 = nn.BatchNorm2d(c, eps=BN_EPS)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv3x1_1(x))
        out = F.relu(self.bn1(self.conv1x3_1(out)))
        out = F.relu(self.conv3x1_2(out))
        out = self.bn2(self.conv1x3_2(out))
        if self.dropout.p:
            out = self.dropout(out)
        return F.relu(out + x)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: reshape (g, C/g), transpose, flatten."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class SeparableNonBottleneck(nn.Module):
    """The paper's D / DGg / DGgS block.

    Each (3x1, 1x3) pair of non-bt-1D becomes depthwise and keeps its BN, followed by a 1x1
    pointwise conv (bias, ``groups`` groups) -> BN -> ReLU, with a channel shuffle after each
    grouped pointwise conv when ``shuffle``. The depthwise convs and the grouped pointwise convs
    are built in ``form`` (gradual grouping or grouped from the start).
    """

    def __init__(
        self,
        channels: int,
        dropout: float,
        dilation: int,
        groups: int = 1,
        shuffle: bool = False,
        form: Form = Form.GROUPED,
    ) -> None:
        super().__init__()
        c, d = channels, dilation
        self.conv3x1_1 = group_conv(c, c, (3, 1), c, form, padding=(1, 0))
        self.conv1x3_1 = group_conv(c, c, (1, 3), c, form, padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(c, eps=BN_EPS)
        self.pw1 = group_conv(c, c, 1, groups, form)
        self.bn_pw1 = nn.BatchNorm2d(c, eps=BN_EPS)
        self.conv3x1_2 = group_conv(c, c, (3, 1), c, form, padding=(d, 0), dilation=(d, 1))
        self.conv1x3_2 = group_conv(c, c, (1, 3), c, form, padding=(0, d), dilation=(1, d))
        self.bn2 = nn.BatchNorm2d(c, eps=BN_EPS)
        self.pw2 = group_conv(c, c, 1, groups, form)
        self.bn_pw2 = nn.BatchNorm2d(c, eps=BN_EPS)
        use_shuffle = shuffle and groups > 1
        self.shuffle1 = ChannelShuffle(groups) if use_shuffle else nn.Identity()
        self.shuffle2 = ChannelShuffle(groups) if use_shuffle else nn.Identity()
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv3x1_1(x))
        out = F.relu(self.bn1(self.conv1x3_1(out)))
        out = self.shuffle1(F.relu(self.bn_pw1(self.pw1(out))))
        out = F.relu(self.conv3x1_2(out))
        out = F.relu(self.bn2(self.conv1x3_2(out)))
        out = self.shuffle2(self.bn_pw2(self.pw2(out)))
        if self.dropout.p:
            out = self.dropout(out)
        return F.relu(out + x)


class Upsampler(nn.Module):
    """ERFNet's upsampler: ConvTranspose 3x3 stride 2 (pad 1, output pad 1) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1, output_padding=1)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class LightUpsampler(nn.Module):
    """The light decoder's upsampler: 1x1 conv -> BN -> ReLU -> bilinear x2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x)))
        return F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=False)
