"""What TIDL 11.0 would not run on the accelerator: a static check of an ONNX graph.

TIDL silently places layers it cannot import on the ARM cores, splitting the network into
subgraphs (over 16 is very slow). This checker reads an ONNX file and lists, per node, the
constraints of TI's edgeai-tidl-tools operator table (docs/supported_ops_rts_versions.md, 11.0) it
breaks. Severity ``unsupported`` means TIDL will not accelerate the node; ``unverified`` means TI's
documentation does not cover the case either way (e.g. dilated depthwise convs).

Torch-free: only ``onnx`` and numpy, so it runs on the board and in CI without the training stack.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .core import Graph, attr, load_onnx

UNSUPPORTED, UNVERIFIED = "unsupported", "unverified"

# Ops TIDL imports (TI operator table) or removes at import; anything else falls back to the ARM.
# fmt: off
SUPPORTED_OPS = frozenset((
    "Conv", "ConvTranspose", "Relu", "PRelu", "LeakyRelu", "Clip", "Sigmoid", "Tanh",
    "HardSigmoid", "Elu", "Gelu", "BatchNormalization", "MaxPool", "AveragePool",
    "GlobalAveragePool", "Add", "Mul", "Sub", "Concat", "Split", "Flatten", "Gemm", "MatMul",
    "Softmax", "ArgMax", "Reshape", "Transpose", "Resize", "Upsample", "DepthToSpace", "Pad",
    "Gather", "ScatterND", "Identity", "Cast",
))
# fmt: on
DEPTHWISE_KERNELS = {(3, 3), (5, 5), (7, 7)}
DEPTHWISE_STRIDE2_KERNELS = {(3, 3)}
CONV_KERNELS = {(1, 1), (3, 3), (5, 5), (7, 7), (1, 3), (3, 1), (1, 5), (5, 1), (1, 7), (7, 1)}
DECONV_KERNELS = {(2, 2), (4, 4)}
POOL_KERNELS = {(1, 1), (2, 2), (3, 3)}
MAX_RANK = 6


@dataclass(frozen=True)
class Finding:
    """One thing TIDL would not (or might not) accelerate."""

    node: str
    op: str
    rule: str
    message: str
    severity: str = UNSUPPORTED

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _pair(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


Issue = tuple[str, str, str]  # (rule, message, severity)


def _no(rule: str, message: str) -> Issue:
    return rule, message, UNSUPPORTED


def _unsure(rule: str, message: str) -> Issue:
    return rule, message, UNVERIFIED


def _conv(m: Graph, node: Any) -> list[Issue]:
    weight = m.shape(node.input[1])
    if weight is None or len(weight) != 4:
        return [_no("conv-shape", "weight shape is not static 4-D")]
    kernel = _pair(attr(node, "kernel_shape", weight[2:]))
    strides = _pair(attr(node, "strides", [1, 1]))
    dilations = _pair(attr(node, "dilations", [1, 1]))
    group = attr(node, "group", 1)
    out = []
    if strides[0] != strides[1]:
        out.append(_no("conv-stride", f"strides {strides} differ between H and W"))
    if max(dilations) > 1 and max(strides) > 1:
        out.append(_no("conv-dilation", f"dilation {dilations} with stride {strides}"))
    k = f"{kernel[0]}x{kernel[1]}"
    if group > 1 and weight[1] == 1 and weight[0] == group:  # depthwise
        legal = DEPTHWISE_KERNELS if max(strides) == 1 else DEPTHWISE_STRIDE2_KERNELS
        if kernel not in legal or max(strides) > 2:
            msg = f"depthwise {k} stride {strides[0]}; TIDL takes 3x3/5x5/7x7 (stride 2: 3x3)"
            out.append(_no("depthwise-kernel", msg))
        if max(dilations) > 1:
            msg = f"depthwise dilation {dilations} is not documented by TI; check on the board"
            out.append(_unsure("depthwise-dilation", msg))
    elif kernel not in CONV_KERNELS and not (kernel[0] == kernel[1] == strides[0]):
        out.append(_unsure("conv-kernel", f"kernel {k} is not in TI's validated list"))
    return out


def _conv_transpose(m: Graph, node: Any) -> list[Issue]:
    weight = m.shape(node.input[1])
    kernel = _pair(attr(node, "kernel_shape", weight[2:] if weight else [0, 0]))
    strides = _pair(attr(node, "strides", [1, 1]))
    group = attr(node, "group", 1)
    dilations = _pair(attr(node, "dilations", [1, 1]))
    if kernel in DECONV_KERNELS and strides == (2, 2) and group == 1 and dilations == (1, 1):
        return []
    msg = (
        f"ConvTranspose {kernel[0]}x{kernel[1]} stride {strides} group {group} dilation "
        f"{dilations}; TIDL takes 2x2/4x4 stride 2 group 1 (or use Resize)"
    )
    return [_no("deconv-form", msg)]


def _resize_scales(m: Graph, node: Any) -> np.ndarray | None:
    """Scales of Upsample / Resize (opset 10: X, scales; 11+: X, roi, scales, sizes)."""
    scales = None
    if node.op_type == "Upsample" or len(node.input) == 2:
        scales = m.const(node.input[1]) if len(node.input) > 1 else attr(node, "scales")
    elif len(node.input) > 2 and node.input[2]:
        scales = m.const(node.input[2])
    if (scales is None or not len(scales)) and len(node.input) > 3 and node.input[3]:
        sizes, src = m.const(node.input[3]), m.shape(node.input[0])
        if sizes is not None and src is not None:
            scales = np.asarray(sizes, np.float64) / np.asarray(src, np.float64)
    return None if scales is None else np.asarray(scales, np.float64)


def _resize(m: Graph, node: Any) -> list[Issue]:
    mode = attr(node, "mode", "nearest")
    out = []
    if mode not in ("nearest", "linear"):
        out.append(_no("resize-mode", f"Resize mode {mode!r}; TIDL takes nearest or linear"))
    scales = _resize_scales(m, node)
    if scales is None or len(scales) != 4:
        return out + [_no("resize-scale", "Resize scale is not a static 4-D constant")]
    n, c, sh, sw = (float(s) for s in scales)
    power_of_two = sh >= 1 and float(np.log2(sh)).is_integer()
    if n != 1 or c != 1 or sh != sw or not power_of_two:
        msg = f"Resize scales {[n, c, sh, sw]}; TIDL takes symmetric power-of-2 spatial scales"
        out.append(_no("resize-scale", msg))
    return out


def _argmax(m: Graph, node: Any) -> list[Issue]:
    shape = m.shape(node.input[0])
    rank = len(shape) if shape else 4
    axis, keepdims = attr(node, "axis", 0), attr(node, "keepdims", 1)
    if (axis + rank if axis < 0 else axis) == 1 and keepdims == 1 and rank == 4:
        return []
    msg = (
        f"ArgMax axis {axis} keepdims {keepdims} on rank {rank}; TIDL takes axis 1 (-3), keepdims 1"
    )
    return [_no("argmax-form", msg)]


def _reshape_like(m: Graph, node: Any) -> list[Issue]:
    shape = m.shape(node.output[0])
    if node.op_type == "Reshape" and m.const(node.input[1]) is None:
        return [_no("dynamic-shape", "Reshape target shape is computed at run time")]
    rank = len(shape) if shape is not None else 0
    if rank > MAX_RANK:
        return [_no("rank", f"{rank}-D {node.op_type}; TIDL takes at most {MAX_RANK} dims")]
    if node.op_type == "Transpose" and rank > 4 and not _in_shuffle(m, node):
        msg = f"{rank}-D Transpose outside a channel shuffle; TI documents 4-D transposes"
        return [_unsure("transpose-rank", msg)]
    return []


def _in_shuffle(m: Graph, node: Any) -> bool:
    """True for the Transpose of a Reshape -> Transpose(0,2,1,3,4) -> Reshape channel shuffle."""
    users = m.consumers.get(node.output[0], [])
    perm = list(attr(node, "perm", []))
    return perm == [0, 2, 1, 3, 4] and len(users) == 1 and users[0].op_type == "Reshape"


def _gather(m: Graph, node: Any) -> list[Issue]:
    shape = m.shape(node.input[0])
    indices = m.const(node.input[1])
    if shape is None or indices is None:
        return [_no("gather-form", "Gather with a run-time input shape or indices")]
    axis = attr(node, "axis", 0)
    axis = axis + len(shape) if axis < 0 else axis
    if indices.ndim > 1 or any(d != 1 for d in shape[axis + 1 :]):
        msg = (
            f"Gather on axis {axis} of {shape}; TIDL needs every dimension after the axis to be 1 "
            "(a channel shuffle must be Reshape/Transpose/Reshape)"
        )
        return [_no("gather-form", msg)]
    return []


def _channelwise(m: Graph, node: Any) -> list[Issue]:
    """Sub: fine with a per-channel constant (imported as TIDL's BatchNorm), else unverified."""
    if any(m.const(name) is not None for name in node.input):
        return []
    return [_unsure("eltwise-sub", "Sub of two run-time tensors is not in TI's table")]


def _cast(m: Graph, node: Any) -> list[Issue]:
    inputs = {i.name for i in m.model.graph.input}
    outputs = {o.name for o in m.model.graph.output}
    if node.input[0] in inputs or node.output[0] in outputs:
        # A type conversion at the graph edge (uint8 input, uint8 class map) is what TIDL's
        # data-convert layer does, but TI's operator table does not list Cast itself.
        msg = "Cast at the graph edge; TI's table has no Cast, check the import log on the board"
        return [_unsure("cast-edge", msg)]
    return [_no("cast", "Cast inside the network is not in TI's operator table")]


def _dropout(m: Graph, node: Any) -> list[Issue]:
    return [_no("dropout", "Dropout must not appear in an inference graph; export in eval mode")]


def _pool(m: Graph, node: Any) -> list[Issue]:
    if node.op_type == "GlobalAveragePool":
        return []
    kernel = _pair(attr(node, "kernel_shape", [1, 1]))
    strides = _pair(attr(node, "strides", [1, 1]))
    if kernel in POOL_KERNELS and max(strides) <= 2:
        return []
    msg = f"{node.op_type} {kernel} stride {strides}; TI validated 1x1/2x2/3x3, stride <= 2"
    return [_unsure("pool-kernel", msg)]


def _batchnorm(m: Graph, node: Any) -> list[Issue]:
    if attr(node, "training_mode", 0):
        return [_no("batchnorm-training", "BatchNormalization in training mode")]
    return []


RULES = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "Resize": _resize, "Upsample": _resize,
    "ArgMax": _argmax, "Reshape": _reshape_like, "Transpose": _reshape_like, "Gather": _gather,
    "Sub": _channelwise, "Cast": _cast, "MaxPool": _pool, "AveragePool": _pool,
    "BatchNormalization": _batchnorm, "Dropout": _dropout,
}  # fmt: skip


def check_tidl(model_or_path: Any) -> list[Finding]:
    """List the nodes of an ONNX model that TIDL 11.0 would not (or might not) accelerate.

    Args:
        model_or_path: an ``onnx.ModelProto`` or the path of an ONNX file.

    Returns:
        Findings in graph order; an empty list means every node maps to a TIDL layer.

    Raises:
        InputError: the file is missing or not ONNX.
    """
    if isinstance(model_or_path, (str, Path)):
        model_or_path = load_onnx(model_or_path)
    m = Graph(model_or_path, shapes=True)
    findings = []
    for info in itertools.chain(m.model.graph.input, m.model.graph.output):
        if info.name not in m.inits and m.shapes.get(info.name) is None:
            msg = f"tensor {info.name!r} has no static shape; export with fixed sizes"
            findings.append(Finding(info.name, "graph", "dynamic-shape", msg))
    for i, node in enumerate(m.model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        if node.op_type == "Constant":
            continue
        if node.op_type not in SUPPORTED_OPS and node.op_type not in RULES:
            msg = f"{node.op_type} is not in TIDL's operator table; it runs on the ARM"
            findings.append(Finding(name, node.op_type, "unknown-op", msg))
            continue
        for rule, message, severity in RULES.get(node.op_type, lambda *_: [])(m, node):
            findings.append(Finding(name, node.op_type, rule, message, severity))
    return findings


def count_findings(findings: list[Finding]) -> dict[str, int]:
    """``{"unsupported": n, "unverified": m}``."""
    return {s: sum(f.severity == s for f in findings) for s in (UNSUPPORTED, UNVERIFIED)}
