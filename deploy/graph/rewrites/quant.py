"""Rewrites around quantization: BatchNorm the int8 kernels cannot take, and TIDL's scales.

- ``fold_bn_into_conv_transpose`` (float): ORT folds BatchNormalization into Conv but not into
  ConvTranspose; an unfolded BN after a transposed conv stays a float island in an int8 graph.
- ``bn_to_depthwise_conv`` (float): a BatchNormalization that could not be folded is the 1x1
  depthwise Conv with its per-channel scale and shift, which quantizes.
- ``power_of_two_scales`` (QDQ, TIDL): every QDQ scale rounded up to a power of two, as TIDL
  holds them on TDA4VM.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..core import Graph, drop_unused_initializers
from ._registry import register


def _set_initializer(model: onnx.ModelProto, name: str, value: np.ndarray) -> None:
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(value, name))
            return
    raise KeyError(name)


@register("fold_bn_into_conv_transpose")
def fold_bn_into_conv_transpose(model: onnx.ModelProto) -> int:
    """Fold each BatchNormalization that alone consumes a ConvTranspose output into its weights.

    ``W[ci, co] *= a[co]``, ``b = (b - mean) * a + beta`` with ``a = gamma / sqrt(var + eps)``;
    the graph computes the same function with one node fewer. Returns the number folded.
    """
    g = Graph(model)
    inits, consumers = g.inits, g.consumers
    graph_outputs = {o.name for o in model.graph.output}
    folded, remove = 0, []
    for conv in model.graph.node:
        if conv.op_type != "ConvTranspose" or conv.output[0] in graph_outputs:
            continue
        users = consumers.get(conv.output[0], [])
        if len(users) != 1 or users[0].op_type != "BatchNormalization":
            continue
        bn = users[0]
        names = list(bn.input[1:5])
        if len(bn.output) != 1 or not all(n in inits for n in names) or conv.input[1] not in inits:
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in names)
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        groups = next((a.i for a in conv.attribute if a.name == "group"), 1)
        weight = numpy_helper.to_array(inits[conv.input[1]])
        cin, cout_g = weight.shape[:2]
        a = gamma / np.sqrt(var + eps)
        # ConvTranspose weight is (Cin, Cout/g, kh, kw); output channel = group * Cout/g + j.
        w = weight.reshape(groups, cin // groups, cout_g, *weight.shape[2:]).astype(np.float64)
        w *= a.reshape(groups, 1, cout_g, *([1] * (weight.ndim - 2)))
        has_bias = len(conv.input) > 2 and conv.input[2] in inits
        bias = numpy_helper.to_array(inits[conv.input[2]]) if has_bias else np.zeros(len(a))
        new_bias = (bias.astype(np.float64) - mean) * a + beta
        w_name, b_name = conv.input[1] + "_bnfold", conv.output[0] + "_bnfold_bias"
        model.graph.initializer.append(
            numpy_helper.from_array(w.reshape(weight.shape).astype(weight.dtype), w_name)
        )
        model.graph.initializer.append(numpy_helper.from_array(new_bias.astype(np.float32), b_name))
        inputs = [conv.input[0], w_name, b_name]
        del conv.input[:]
        conv.input.extend(inputs)
        conv.output[0] = bn.output[0]
        remove.append(bn)
        folded += 1
    for bn in remove:
        model.graph.node.remove(bn)
    if folded:
        drop_unused_initializers(model)
    return folded


def pow2_ceil(scale: np.ndarray) -> np.ndarray:
    """Smallest power of two >= each scale (the range never shrinks, so nothing new clips)."""
    scale = np.asarray(scale, np.float64)
    return np.exp2(np.ceil(np.log2(scale))).astype(np.float32)


def _requantize(
    q: np.ndarray, zp: np.ndarray, old: np.ndarray, new: np.ndarray, axis: int
) -> np.ndarray:
    """Re-express integer constants ``q`` (scale ``old``) on scale ``new``: same float values."""
    shape = [1] * q.ndim
    if np.ndim(old) == 1 and q.ndim > 0 and old.size > 1:
        shape[axis] = -1
    ratio = (np.asarray(old, np.float64) / np.asarray(new, np.float64)).reshape(shape)
    zp64 = np.asarray(zp, np.int64).reshape(shape) if np.ndim(zp) else np.int64(zp)
    value = np.rint((q.astype(np.int64) - zp64) * ratio) + zp64
    info = np.iinfo(q.dtype)
    return np.clip(value, info.min, info.max).astype(q.dtype)


@register("power_of_two_scales", stage="qdq", target="tidl")
def power_of_two_scales(model: onnx.ModelProto) -> int:
    """TIDL-style scales: zero-point-free activations and power-of-two scales everywhere.

    - Activations (QuantizeLinear scale/zero point, shared with the matching DequantizeLinear): a
      uint8 tensor with zero point 0 (a ReLU output) stays unsigned; any other is made symmetric
      (zero point 128 for uint8, 0 for int8, scale ``max|range| / 127``), which is how TIDL holds
      non-negative and signed feature maps. The scale is then rounded up: ``2**ceil(log2 s)``.
    - Weights (a DequantizeLinear reading an integer initializer): scale rounded up the same way and
      the integers re-quantized to it (``q' = round(q * s / s')``): same values, coarser step.
    - int32 biases: scale set to ``s_input' * s_weight'`` (as ORT's integer kernels require, and a
      power of two itself) and re-quantized.

    Rounding up never shrinks a range, so nothing clips that did not clip before; the cost is up
    to one bit of resolution per tensor, which is what TDA4VM's power-of-two scales cost.

    Returns:
        Number of scale tensors changed.
    """
    g = Graph(model)
    inits, producers, consumers = g.inits, g.producer, g.consumers
    dq_nodes = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]

    bias_dqs = _bias_dequantizers(dq_nodes, consumers, inits)
    new_scales: dict[str, np.ndarray] = {}
    new_zero_points: dict[str, np.ndarray] = {}
    for node in q_nodes:
        name = node.input[1]
        if name in new_scales or name not in inits:
            continue
        scale = numpy_helper.to_array(inits[name]).astype(np.float64)
        if len(node.input) > 2 and node.input[2] in inits:
            zp = numpy_helper.to_array(inits[node.input[2]])
            scale, zp = _symmetric(scale, zp)
            new_zero_points[node.input[2]] = zp
        new_scales[name] = pow2_ceil(scale)
    for node in dq_nodes:
        name = node.input[1]
        if id(node) in bias_dqs or name in new_scales or name not in inits:
            continue
        new_scales[name] = pow2_ceil(numpy_helper.to_array(inits[name]))

    def scale_of(tensor: str) -> np.ndarray | None:
        """Power-of-two scale of the DequantizeLinear producing ``tensor``."""
        dq = producers.get(tensor)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        return new_scales.get(dq.input[1])

    changed = 0
    for node in dq_nodes:
        if node.input[0] not in inits:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        q = numpy_helper.to_array(inits[node.input[0]])
        old = numpy_helper.to_array(inits[node.input[1]])
        zp = (
            numpy_helper.to_array(inits[node.input[2]])
            if len(node.input) > 2 and node.input[2] in inits
            else np.zeros((), q.dtype)
        )
        if id(node) in bias_dqs:
            conv = bias_dqs[id(node)]
            s_x, s_w = scale_of(conv.input[0]), scale_of(conv.input[1])
            if s_x is None or s_w is None:
                continue
            new = (
                (s_x.astype(np.float64) * s_w.astype(np.float64))
                .astype(np.float32)
                .reshape(old.shape)
            )
            new_scales[node.input[1]] = new
        else:
            new = new_scales[node.input[1]]
        _set_initializer(model, node.input[0], _requantize(q, zp, old, new, axis))
    for name, value in new_zero_points.items():
        _set_initializer(model, name, value)
    for name, value in new_scales.items():
        old = numpy_helper.to_array(inits[name])
        if not np.array_equal(old, value):
            changed += 1
        _set_initializer(model, name, value.reshape(old.shape).astype(old.dtype))
    return changed


def _symmetric(scale: np.ndarray, zp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero point) of an activation made zero-point-free; uint8 with zp 0 stays unsigned."""
    info = np.iinfo(zp.dtype)
    z = zp.astype(np.float64)
    if zp.dtype == np.uint8 and np.all(zp == 0):
        return scale, zp
    amax = np.maximum((z - info.min) * scale, (info.max - z) * scale)
    mid = np.full_like(zp, 128 if zp.dtype == np.uint8 else 0)
    return amax / 127.0, mid


def _bias_dequantizers(
    dq_nodes: list[onnx.NodeProto],
    consumers: dict[str, list[onnx.NodeProto]],
    inits: dict[str, onnx.TensorProto],
) -> dict[int, onnx.NodeProto]:
    """id(DequantizeLinear) -> the Conv/ConvTranspose/Gemm whose int32 bias it dequantizes."""
    out = {}
    for dq in dq_nodes:
        if dq.input[0] not in inits or inits[dq.input[0]].data_type != onnx.TensorProto.INT32:
            continue
        for user in consumers.get(dq.output[0], []):
            is_bias = len(user.input) > 2 and user.input[2] == dq.output[0]
            if user.op_type in ("Conv", "ConvTranspose", "Gemm") and is_bias:
                out[id(dq)] = user
    return out


@register("bn_to_depthwise_conv")
def bn_to_depthwise_conv(model: onnx.ModelProto) -> int:
    """Turn each remaining BatchNormalization on a 4-D tensor into an equivalent 1×1 depthwise Conv.

    A BN that could not be folded (ERFNet's downsampler normalizes a Concat) has no integer
    kernel in ONNX Runtime: it stays float between DequantizeLinear and QuantizeLinear and breaks
    the int8 chain. ``y = a * x + b`` per channel is exactly a ``group=C`` 1×1 Conv with weight
    ``a`` and bias ``b``, which quantizes to a QLinearConv. Returns the number converted.
    """
    inits = Graph(model).inits
    ranks = {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in list(model.graph.value_info) + list(model.graph.input)
        if v.type.tensor_type.HasField("shape")
    }
    nodes, converted = [], 0
    for node in model.graph.node:
        names = list(node.input[1:5])
        if (
            node.op_type != "BatchNormalization"
            or len(node.output) != 1
            or not all(n in inits for n in names)
            or ranks.get(node.input[0], 4) != 4
        ):
            nodes.append(node)
            continue
        gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in names)
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        a = gamma / np.sqrt(var + eps)
        channels = len(a)
        w_name, b_name = node.name + "_dw_weight", node.name + "_dw_bias"
        model.graph.initializer.append(
            numpy_helper.from_array(a.reshape(channels, 1, 1, 1).astype(np.float32), w_name)
        )
        model.graph.initializer.append(
            numpy_helper.from_array((beta - mean * a).astype(np.float32), b_name)
        )
        nodes.append(
            onnx.helper.make_node(
                "Conv",
                [node.input[0], w_name, b_name],
                [node.output[0]],
                name=node.name + "_dw",
                group=channels,
                kernel_shape=[1, 1],
            )
        )
        converted += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if converted:
        drop_unused_initializers(model)
    return converted
