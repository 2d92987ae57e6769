"""Parameter and MAC counts of a PyTorch model, by layer type.

MACs count multiply-accumulates of convolutions only (the convention of the paper's table):
``Conv`` = output elements x (C_in / groups) x kh x kw; ``ConvTranspose`` = input elements x
(C_out / groups) x kh x kw. A gradual-grouping layer counts as the grouped conv it becomes. The
ONNX-graph counter in ``gradgroup.deploy.graph.stats`` uses the same rules, so both agree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn

from gradgroup.deploy.graph.stats import conv_kind

from .grouping import GradualGroupConv2d


@dataclass(frozen=True)
class ModelCount:
    """Parameters (of the deployed, grouped form) and MACs per layer type for one input size."""

    params: int
    macs: int
    macs_by_type: dict[str, int] = field(default_factory=dict)


def _deployed_params(model: nn.Module) -> int:
    total = 0
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if isinstance(module, GradualGroupConv2d):
            total += module.weight.numel() // module.groups
            total += module.bias.numel() if module.bias is not None else 0
        else:
            total += sum(p.numel() for p in own)
    return total


@torch.no_grad()
def count_model(model: nn.Module, size: tuple[int, int]) -> ModelCount:
    """Count parameters and MACs of ``model`` on one (1, 3, H, W) input."""
    macs: Counter[str] = Counter()

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        if isinstance(module, nn.ConvTranspose2d):
            per = module.out_channels // module.groups * kh * kw
            macs["transposed"] += inputs[0].numel() * per
            return
        per = module.in_channels // module.groups * kh * kw
        kind = conv_kind(module.groups, module.in_channels, module.out_channels)
        macs[kind] += output.numel() * per

    convs = (nn.Conv2d, nn.ConvTranspose2d, GradualGroupConv2d)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, convs)]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        model(torch.zeros(1, 3, *size, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return ModelCount(_deployed_params(model), sum(macs.values()), dict(macs))
