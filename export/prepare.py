"""PyTorch-side preparation of a checkpoint's model for ONNX export.

Three things happen before ``torch.onnx.export`` sees the model: gradual layers at alpha = 0
become true grouped convs (alpha > 0 is refused unless the dense form is asked for), BatchNorm is
folded into the transposed convs (the legacy exporter folds Conv+BN but not ConvTranspose+BN), and
a thin wrapper adds the input conversion for ``--input uint8`` and NHWC layouts.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from gradgroup.deploy.errors import RunError
from gradgroup.deploy.preprocess import Preprocess
from gradgroup.train.grouping import convert_to_grouped, gradual_layers

log = logging.getLogger(__name__)


def to_deploy_form(model: nn.Module, dense: bool = False) -> tuple[nn.Module, float]:
    """Convert gradual layers to grouped convs in place; returns (model, final alpha).

    Raises:
        RunError: a gradual layer still has alpha > 0 and ``dense`` is False.
    """
    layers = gradual_layers(model)
    alpha = max((float(m.alpha) for _, m in layers), default=0.0)
    if alpha > 0:
        name, layer = max(layers, key=lambda item: float(item[1].alpha))
        if not dense:
            raise RunError(
                f"layer {name} has alpha={float(layer.alpha):.4g} > 0, so it is not a grouped conv "
                "yet; train until alpha reaches 0, or pass --dense to export the masked dense form"
            )
        log.warning(
            "exporting the dense masked form (alpha=%.4g): no grouped convs in the graph", alpha
        )
        return model, alpha
    convert_to_grouped(model)
    return model, alpha


@torch.no_grad()
def fold_transposed_bn(model: nn.Module) -> int:
    """Fold ``bn`` into ``conv`` of every module with a ConvTranspose2d ``conv`` and a ``bn``.

    ERFNet's upsampler computes ``bn(conv(x))``; with ``y = s (conv(x) - mean) + beta`` and
    ``s = gamma / sqrt(var + eps)`` the fold scales output channel o of the weight (dim 1 of a
    ConvTranspose weight) by ``s[o]``. The BN is replaced by Identity. Returns how many were folded.
    """
    folded = 0
    for module in model.modules():
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if not isinstance(conv, nn.ConvTranspose2d) or not isinstance(bn, nn.BatchNorm2d):
            continue
        if conv.groups != 1:
            continue  # grouped deconv weights interleave groups on dim 0; not in the zoo
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight.mul_(scale[None, :, None, None])
        conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
        module.bn = nn.Identity()
        folded += 1
    return folded


class ExportWrapper(nn.Module):
    """The exported function: optional uint8 normalization and layout change, then the net.

    With ``uint8`` input the graph receives raw pixels in the model's colour order and layout and
    computes ``(x - mean) * (1 / std)`` in float32, the same operations in the same order as
    :func:`gradgroup.deploy.preprocess.normalize`, so the results are bit-identical.
    """

    def __init__(self, net: nn.Module, spec: Preprocess, uint8: bool) -> None:
        super().__init__()
        self.net, self.uint8, self.nhwc = net, uint8, spec.layout == "NHWC"
        mean = torch.tensor(spec.mean, dtype=torch.float32)
        inv_std = 1.0 / torch.tensor(spec.std, dtype=torch.float32)
        if spec.color_order == "BGR":  # the input arrives in the model's order, stats are RGB
            mean, inv_std = mean.flip(0), inv_std.flip(0)
        view = (1, 1, 1, 3) if self.nhwc else (1, 3, 1, 1)
        self.register_buffer("mean", mean.reshape(view))
        self.register_buffer("inv_std", inv_std.reshape(view))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.uint8:
            x = (x.float() - self.mean) * self.inv_std
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        return self.net(x)


def export_module(model: nn.Module, spec: Preprocess, uint8: bool) -> nn.Module:
    """A deep copy of ``model`` (deploy form) with transposed-conv BN folded, wrapped for export."""
    net = copy.deepcopy(model).eval()
    folded = fold_transposed_bn(net)
    log.debug("folded BatchNorm into %d transposed convs", folded)
    return ExportWrapper(net, spec, uint8).eval()
