"""Gradual grouping: a dense convolution that becomes a true grouped one.

``GradualGroupConv2d`` holds a dense weight W and a target group count G and computes
``conv(x, W * M(alpha))`` with ``M(alpha) = B + alpha * (1 - B)``, B the block-diagonal group mask
(G = channels gives depthwise). Training lowers alpha from 1 to 0; at alpha = 0 the layer is
replaced by a plain ``nn.Conv2d(groups=G)`` holding only the diagonal blocks, which computes exactly
the same function.

Two things keep the network continuous as alpha approaches 0 (measured in ``bench/NOTES.md``):

- :func:`cap_cross_weights`, applied after every optimizer step of the decay, holds the RMS of each
  layer's cross-group entries of W at most at the RMS of its diagonal blocks (what an untrained
  dense layer has). Adam's step does not shrink with alpha, so without the cap the optimizer
  re-inflates W_cross as alpha falls and the network keeps depending on the cross-group paths until
  the last iterations, then collapses. With it the effective cross-group weight alpha * W_cross
  falls at least in proportion to alpha.
- BatchNorm statistics are re-estimated before every validation and before conversion
  (:func:`gradgroup.train.evaluate.recalibrate_bn`): running averages lag a moving alpha.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from enum import StrEnum

import torch
import torch.nn.functional as F
from torch import nn

from gradgroup.deploy.errors import InputError, RunError

log = logging.getLogger(__name__)


class Form(StrEnum):
    """How the grouped layers of a model are built."""

    GRADUAL = "gradual"  # dense weight with an alpha mask, alpha starts at 1
    GROUPED = "grouped"  # true nn.Conv2d(groups=G) from the start (grouped from scratch)


def block_diagonal_mask(out_channels: int, in_channels: int, groups: int) -> torch.Tensor:
    """(out, in, 1, 1) float mask with ones on the ``groups`` diagonal blocks."""
    out_idx = torch.arange(out_channels) // (out_channels // groups)
    in_idx = torch.arange(in_channels) // (in_channels // groups)
    return (out_idx[:, None] == in_idx[None, :]).float()[:, :, None, None]


class GradualGroupConv2d(nn.Module):
    """Dense conv whose cross-group weights are scaled by ``alpha`` (a buffer, saved in state)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        groups: int,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise InputError(
                f"groups={groups} must divide in_channels={in_channels} "
                f"and out_channels={out_channels}"
            )
        # A dense conv gives the initialization a grouped conv of the same fan-in would not have;
        # the dense optimization space is the point of the method.
        dense = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding, dilation, 1, bias
        )
        self.weight = dense.weight
        self.bias = dense.bias
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = dense.kernel_size, dense.stride
        self.padding, self.dilation = dense.padding, dense.dilation
        self.register_buffer("alpha", torch.tensor(1.0))
        self.register_buffer(
            "group_mask", block_diagonal_mask(out_channels, in_channels, groups), persistent=False
        )

    def mask(self) -> torch.Tensor:
        """M(alpha) = B + alpha (1 - B), broadcastable over the weight."""
        return self.group_mask + self.alpha * (1.0 - self.group_mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight * self.mask().to(self.weight.dtype)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation)

    def to_grouped(self, name: str = "", force: bool = False) -> nn.Conv2d:
        """The equivalent ``nn.Conv2d(groups=G)``; refused while alpha > 0 unless ``force``."""
        alpha = float(self.alpha)
        if alpha > 0 and not force:
            raise RunError(
                f"layer {name or '<conv>'} has alpha={alpha:.4g} > 0; train until alpha reaches 0 "
                "before converting to a grouped conv (or export the dense form)"
            )
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.bias is not None,
        ).to(self.weight.device, self.weight.dtype)
        out_per, in_per = self.out_channels // self.groups, self.in_channels // self.groups
        with torch.no_grad():
            blocks = [
                self.weight[g * out_per : (g + 1) * out_per, g * in_per : (g + 1) * in_per]
                for g in range(self.groups)
            ]
            conv.weight.copy_(torch.cat(blocks, 0))
            if self.bias is not None:
                conv.bias.copy_(self.bias)
        return conv

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"groups={self.groups}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, alpha={float(self.alpha):.4g}"
        )


def group_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    groups: int,
    form: Form,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> nn.Module:
    """A conv that ends with ``groups`` groups, built in the requested form (groups=1 is dense)."""
    if groups == 1:
        return nn.Conv2d(in_channels, out_channels, kernel_size, 1, padding, dilation)
    if Form(form) is Form.GRADUAL:
        return GradualGroupConv2d(
            in_channels, out_channels, kernel_size, groups, padding=padding, dilation=dilation
        )
    return nn.Conv2d(in_channels, out_channels, kernel_size, 1, padding, dilation, groups)


def gradual_layers(model: nn.Module) -> list[tuple[str, GradualGroupConv2d]]:
    """All gradual-grouping layers of ``model`` with their qualified names."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, GradualGroupConv2d)]


LAYER_ALPHA = ("share", "uniform")


def share_alpha(progress: float, groups: int) -> float:
    """A layer's alpha when the diagonal blocks' share of it should follow ``progress``.

    With equal-sized entries a dense layer's cross-group paths carry k = sqrt(G - 1) times the
    norm of its diagonal blocks, alpha * k once scaled: for a depthwise target (G = 128, k = 11)
    a uniform alpha of 0.2 still leaves the cross-group paths twice the diagonal, and most of the
    function changes in the last tenth of the decay. Choosing alpha = g / (1 + k (1 - g)) makes
    the diagonal share 1 / (1 + alpha k) move linearly with the scheduled value g instead, at
    the same pace for every layer (g for k = 0; 1 and 0 at the ends).
    """
    k = math.sqrt(max(groups - 1, 0))
    return progress / (1.0 + k * (1.0 - progress))


def set_alpha(model: nn.Module, alpha: float, layer_alpha: str = "uniform") -> None:
    """Set every gradual layer's alpha to the scheduled ``alpha`` (``uniform``), or to the alpha
    at which its diagonal share follows it (``share``, :func:`share_alpha`)."""
    if layer_alpha not in LAYER_ALPHA:
        raise InputError(f"layer alpha {layer_alpha!r} is not one of {', '.join(LAYER_ALPHA)}")
    for _, layer in gradual_layers(model):
        value = share_alpha(alpha, layer.groups) if layer_alpha == "share" else alpha
        layer.alpha.fill_(float(value))


def get_alpha(model: nn.Module) -> float:
    """The largest alpha in the model (0.0 when it has no gradual layers left)."""
    return max((float(m.alpha) for _, m in gradual_layers(model)), default=0.0)


def cross_ratios(model: nn.Module) -> dict[str, float]:
    """Per gradual layer, ``||alpha * W_cross|| / ||W_diag||``: how much of the layer the
    cross-group paths still carry (sqrt(G - 1) for a dense layer with equal-sized entries)."""
    ratios = {}
    with torch.no_grad():
        for name, layer in gradual_layers(model):
            diag, cross = _split(layer)
            ratios[name] = float(layer.alpha * cross.norm() / diag.norm().clamp_min(1e-12))
    return ratios


def cap_cross_weights(model: nn.Module) -> int:
    """Scale down W_cross of every gradual layer with 0 < alpha < 1 whose cross-group RMS exceeds
    its diagonal RMS; returns how many layers were capped. Exact no-op at alpha 1 and 0."""
    capped = 0
    with torch.no_grad():
        for _, layer in gradual_layers(model):
            if not 0.0 < float(layer.alpha) < 1.0:
                continue
            diag, cross = _split(layer)
            n_diag = layer.group_mask.sum() * layer.weight[0, 0].numel()
            n_cross = layer.weight.numel() - n_diag
            rms_diag = diag.norm() / n_diag.sqrt()
            rms_cross = cross.norm() / n_cross.sqrt()
            if rms_cross > rms_diag * (1.0 + 1e-6):  # (rounding of an earlier cap)
                layer.weight.sub_(cross * (1.0 - rms_diag / rms_cross))
                capped += 1
    return capped


def _split(layer: GradualGroupConv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(diagonal blocks, cross-group entries) of the layer's dense weight, zeros elsewhere."""
    mask = layer.group_mask.to(layer.weight.dtype)
    return layer.weight * mask, layer.weight * (1.0 - mask)


def convert_to_grouped(
    model: nn.Module, force: bool = False, names: Iterable[str] | None = None
) -> int:
    """Replace every gradual layer (or only those in ``names``) by its true grouped conv in
    place; returns how many changed."""
    wanted = None if names is None else set(names)
    layers = [(n, m) for n, m in gradual_layers(model) if wanted is None or n in wanted]
    for name, layer in layers:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, layer.to_grouped(name, force=force))
    if layers:
        log.debug("converted %d gradual layers to grouped convs", len(layers))
    return len(layers)


def grouped_early(model: nn.Module) -> list[str]:
    """Names of the layers of a gradual-form model that are already true grouped convs while
    others still decay (a start whose layers were grouped already, see ``init_from``); empty
    for a model that is all gradual or all converted."""
    if getattr(model, "form", None) is not Form.GRADUAL or not gradual_layers(model):
        return []
    return [n for n, m in model.named_modules() if type(m) is nn.Conv2d and m.groups > 1]
