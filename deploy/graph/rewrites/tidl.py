"""Rewrites that turn graph pieces TIDL 11.0 would not accelerate into legal, identical ones.

- ``depthwise_to_square``: a factorized depthwise kernel (k x 1 or 1 x k, k = 3/5/7) is not in
  TIDL's depthwise list; the same kernel zero-padded to k x k, with the padding of the short axis
  grown by (k - 1) / 2, computes the same outputs at the same positions.
- ``convtranspose_to_even``: ERFNet's 3 x 3 stride-2 transposed conv (pads 1, output_padding 1) is
  not a TIDL deconvolution; a 4 x 4 stride-2 one whose kernel has a zero last row and column
  produces the same full-resolution output, cropped with end pads ``pe - output_padding + 1``.

Both are proved exact by tests/deploy/test_rewrites.py with ONNX Runtime on random inputs.
"""

from __future__ import annotations

import numpy as np
import onnx

from ..core import Graph, attr, set_attr
from ._registry import register

TIDL_DEPTHWISE_KERNELS = (3, 5, 7)


def _explicit_pads(node: onnx.NodeProto) -> bool:
    """True when the node uses explicit ``pads`` (no auto_pad we would have to re-derive)."""
    return attr(node, "auto_pad", "NOTSET") == "NOTSET"


@register("depthwise_to_square", target="tidl")
def depthwise_to_square(model: onnx.ModelProto) -> int:
    """Factorized k x 1 / 1 x k depthwise Conv -> zero-padded k x k depthwise Conv."""
    g, changed = Graph(model), 0
    for node in g.nodes("Conv"):
        weight = g.const(node.input[1])
        group = attr(node, "group", 1)
        if weight is None or weight.ndim != 4 or not _explicit_pads(node):
            continue
        cout, cin_per, kh, kw = weight.shape
        if group < 2 or cin_per != 1 or cout != group:
            continue  # not depthwise
        if sorted((kh, kw)) != [1, kh * kw] or kh * kw not in TIDL_DEPTHWISE_KERNELS:
            continue  # not factorized, or a size TIDL would not take square either
        k = kh * kw
        axis = 1 if kh == k else 0  # the spatial axis (0 = H, 1 = W) whose kernel is 1 wide
        square = np.zeros((cout, 1, k, k), weight.dtype)
        if axis == 1:
            square[:, :, :, k // 2] = weight[:, :, :, 0]
        else:
            square[:, :, k // 2, :] = weight[:, :, 0, :]
        pads = list(attr(node, "pads", [0, 0, 0, 0]))
        dilations = list(attr(node, "dilations", [1, 1]))
        # The short axis's dilation never mattered (one tap); make it 1 and pad by the half-kernel.
        dilations[axis] = 1
        pads[axis] += k // 2
        pads[axis + 2] += k // 2
        node.input[1] = g.set_const(node.input[1], square)
        set_attr(node, "kernel_shape", [k, k])
        set_attr(node, "pads", pads)
        set_attr(node, "dilations", dilations)
        changed += 1
    g.commit()
    return changed


@register("convtranspose_to_even", target="tidl")
def convtranspose_to_even(model: onnx.ModelProto) -> int:
    """3 x 3 stride-2 ConvTranspose -> 4 x 4 stride-2 one with a zero last row and column."""
    g, changed = Graph(model), 0
    for node in g.nodes("ConvTranspose"):
        weight = g.const(node.input[1])
        if weight is None or weight.ndim != 4 or weight.shape[2:] != (3, 3):
            continue
        if list(attr(node, "strides", [1, 1])) != [2, 2] or attr(node, "output_shape") is not None:
            continue
        if list(attr(node, "dilations", [1, 1])) != [1, 1] or not _explicit_pads(node):
            continue
        pads = list(attr(node, "pads", [0, 0, 0, 0]))
        out_pad = list(attr(node, "output_padding", [0, 0]))
        # Output = full[pb : full_len - pe + op]. The 4x4 kernel makes full one longer and adds
        # only zero contributions at its new last position, so the begin pads stay and the end
        # crop grows by one; any output padding beyond that stays output padding.
        for axis in (0, 1):
            end = pads[axis + 2] - out_pad[axis] + 1
            pads[axis + 2], out_pad[axis] = max(end, 0), max(-end, 0)
        even = np.zeros(weight.shape[:2] + (4, 4), weight.dtype)
        even[:, :, :3, :3] = weight
        node.input[1] = g.set_const(node.input[1], even)
        set_attr(node, "kernel_shape", [4, 4])
        set_attr(node, "pads", pads)
        if any(out_pad) or attr(node, "output_padding") is not None:
            set_attr(node, "output_padding", out_pad)
        changed += 1
    g.commit()
    return changed


# Applied in this order by ``gradgroup export --target tidl``.
TIDL_REWRITES = (
    "remove_noops",
    "gather_to_shuffle",
    "depthwise_to_square",
    "convtranspose_to_even",
)
