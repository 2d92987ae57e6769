"""Model facts counted from an ONNX graph: parameters, MACs per op type, precision, memory.

MACs follow ``gradgroup.train.flops`` exactly, so a graph and the PyTorch model it came from agree:
``Conv`` = output elements x (C_in / groups) x kh x kw; ``ConvTranspose`` = input elements x
(C_out / groups) x kh x kw; types dense / grouped / depthwise / transposed. ``MatMul`` / ``Gemm``
(absent from the zoo) count output elements x K under the type ``matmul``.

Parameters are those of the *deployed* graph: weights and biases of Conv, ConvTranspose, Gemm and
MatMul plus the scale and shift of BatchNormalization nodes the exporter could not fold
(running statistics are buffers, not parameters). A BN folded into the conv before it is gone
from the graph, so the count is 2 x C lower than PyTorch's for each folded BN. In QDQ int8
graphs a weight is counted once, as the quantized initializer behind its ``DequantizeLinear``.

:func:`layer_table` lists the same graph node by node (:class:`Layer`: kind, MACs, channels,
kernel, element counts) for per-layer latency models such as :mod:`gradgroup.deploy.estimate`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, first_line
from .core import Graph, load_onnx

log = logging.getLogger(__name__)

WEIGHT_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "QLinearConv", "QLinearMatMul",
              "ConvInteger", "MatMulInteger"}  # fmt: skip
# Ops that only exist in an already-quantized graph.
QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul",
                       "ConvInteger", "MatMulInteger", "QLinearAdd", "QLinearConcat",
                       "DynamicQuantizeLinear"})  # fmt: skip
# Which inputs of a weight op are parameters (data inputs excluded).
_PARAM_INPUTS = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "MatMul": (1,),
    "QLinearConv": (3, 8), "QLinearMatMul": (3,), "ConvInteger": (1,), "MatMulInteger": (1,),
    "BatchNormalization": (1, 2),
}  # fmt: skip
_PASS_THROUGH = {"DequantizeLinear", "Identity", "Cast", "Transpose", "Reshape"}


@dataclass(frozen=True)
class TensorUse:
    """One tensor of the graph as the energy model sees it."""

    name: str
    nbytes: int
    kind: str  # "weight" | "activation" | "input" | "output"
    live_bytes: int = 0  # intermediate bytes live while this tensor is produced


@dataclass(frozen=True)
class Layer:
    """One node of the graph as a per-layer latency model sees it.

    Counts are elements, not bytes: the bit width is the target's (TIDL compiles a float graph to
    8 or 16 bits). For a ``ConvTranspose`` of stride s, ``kernel`` is the kernel of each of its
    s x s phases (k / s) and ``out_pixels`` counts output pixels, so that MACs = out_pixels x
    (cin / groups) x kh x kw x (cout / groups) x groups holds for every conv kind.

    Attributes:
        name: node name (``OP_index`` when unnamed, as :func:`check_tidl` names it).
        op: ONNX op type.
        kind: dense / grouped / depthwise / transposed / matmul for weight ops, else "other".
        macs: multiply-accumulates (0 for "other").
        groups, cin, cout, kernel: conv geometry (MatMul / Gemm: 1, K, N, (1, 1)).
        out_pixels: output positions (N x H x W; MatMul: rows).
        in_elems, out_elems: activation elements read and written (constants excluded).
        weight_elems: parameter elements of the node.
    """

    name: str
    op: str
    kind: str
    macs: int = 0
    groups: int = 1
    cin: int = 0
    cout: int = 0
    kernel: tuple[int, int] = (1, 1)
    out_pixels: int = 0
    in_elems: int = 0
    out_elems: int = 0
    weight_elems: int = 0


@dataclass(frozen=True)
class GraphStats:
    """What an ONNX graph costs.

    Attributes:
        params: parameters of the deployed graph (see module docstring).
        macs: multiply-accumulates per frame (conv convention of ``train/flops.py``).
        macs_by_type: MACs per type (dense / grouped / depthwise / transposed / matmul).
        macs_by_precision: MACs run in "fp32" and in "int8" (weights behind DequantizeLinear).
        precision: "int8" when the graph holds QDQ / QLinear nodes, else "fp32".
        file_bytes: size of the ONNX file (0 for an in-memory model).
        weight_bytes: bytes of all initializers and constants as stored.
        peak_activation_bytes: largest sum of live activation bytes over the node order.
        peak_intermediate_bytes: the same without the graph inputs and outputs (the on-chip
            working set; camera and result buffers live in DRAM).
        tensors: every tensor with its size and role (input to the energy model).
    """

    params: int
    macs: int
    macs_by_type: dict[str, int]
    macs_by_precision: dict[str, int]
    precision: str
    file_bytes: int
    weight_bytes: int
    peak_activation_bytes: int
    peak_intermediate_bytes: int = 0
    tensors: tuple[TensorUse, ...] = field(repr=False, default=())


def graph_stats(model: str | Path | Any, input_size: tuple[int, int] | None = None) -> GraphStats:
    """Count parameters, MACs, precision and memory of an ONNX model.

    Args:
        model: path of an ONNX file or an ``onnx.ModelProto``.
        input_size: (H, W) to use where the graph input has symbolic spatial dims.

    Returns:
        The model's :class:`GraphStats`.

    Raises:
        InputError: unreadable file, or shapes that cannot be inferred.
    """
    import onnx

    file_bytes = 0
    if isinstance(model, (str, Path)):
        file_bytes = Path(model).stat().st_size if Path(model).is_file() else 0
        model = load_onnx(model)
    model = _fix_input_shape(model, input_size)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:  # onnx raises InferenceError / ValidationError
        raise InputError(f"cannot infer the ONNX graph's shapes ({first_line(exc)})") from None
    g = Graph(inferred)
    graph, consts, producer = g.graph, g.constants(), g.producer
    shapes = _shapes(graph, consts)
    params, macs, by_prec = _count(graph, consts, shapes, producer)
    quantized = any(n.op_type in QUANT_OPS for n in graph.node)
    peak, peak_inner, tensors = _liveness(graph, consts, shapes)
    weight_bytes = sum(int(a.nbytes) for a in consts.values())
    tensors = tuple(TensorUse(n, int(a.nbytes), "weight") for n, a in consts.items()) + tensors
    return GraphStats(
        params=params,
        macs=sum(macs.values()),
        macs_by_type=dict(macs),
        macs_by_precision={k: v for k, v in by_prec.items() if v},
        precision="int8" if quantized else "fp32",
        file_bytes=file_bytes,
        weight_bytes=weight_bytes,
        peak_activation_bytes=peak,
        peak_intermediate_bytes=peak_inner,
        tensors=tensors,
    )


def layer_table(model: str | Path | Any, input_size: tuple[int, int] | None = None) -> list[Layer]:
    """Every compute node of an ONNX model, in graph order, as a :class:`Layer`.

    Nodes fed only by constants (a weight's DequantizeLinear, shape arithmetic) are left out:
    a runtime folds them.

    Args:
        model: path of an ONNX file or an ``onnx.ModelProto``.
        input_size: (H, W) to use where the graph input has symbolic spatial dims.

    Raises:
        InputError: unreadable file, or shapes that cannot be inferred.
    """
    import onnx

    if isinstance(model, (str, Path)):
        model = load_onnx(model)
    model = _fix_input_shape(model, input_size)
    try:
        g = Graph(onnx.shape_inference.infer_shapes(model, strict_mode=False))
    except Exception as exc:  # onnx raises InferenceError / ValidationError
        raise InputError(f"cannot infer the ONNX graph's shapes ({first_line(exc)})") from None
    graph, consts, producer = g.graph, g.constants(), g.producer
    shapes = _shapes(graph, consts)
    folded = set(consts)

    def elems(name: str) -> int:
        return int(np.prod(shapes[name][0])) if name in shapes else 0

    layers = []
    for i, node in enumerate(graph.node):
        if all(not name or name in folded for name in node.input):
            folded.update(node.output)
            continue
        data = [n for n in node.input if n and n not in folded]
        common = dict(name=node.name or f"{node.op_type}_{i}", op=node.op_type,
                      in_elems=sum(elems(n) for n in data),
                      out_elems=sum(elems(n) for n in node.output if n))  # fmt: skip
        kind, macs = (
            _node_macs(node, shapes, producer, consts) if node.op_type in WEIGHT_OPS else ("", 0)
        )
        if not kind:
            layers.append(Layer(kind="other", **common))
            continue
        layers.append(_weight_layer(node, kind, macs, shapes, producer, consts, common))
    return layers


def _weight_layer(node: Any, kind: str, macs: int, shapes: dict, producer: dict, consts: dict,
                  common: dict) -> Layer:  # fmt: skip
    """Conv geometry of one weight op (see :class:`Layer` for the transposed-conv convention)."""
    op = node.op_type
    slots = _PARAM_INPUTS.get(op, ())
    w = shapes[_source(node.input[slots[0]], producer, consts)[0]][0]
    weight_elems = 0
    for slot in slots:
        if slot < len(node.input) and node.input[slot]:
            src = _source(node.input[slot], producer, consts)[0]
            weight_elems += int(np.prod(shapes[src][0])) if src in shapes else 0
    groups = next((a.i for a in node.attribute if a.name == "group"), 1)
    if kind == "matmul":
        k = macs // max(common["out_elems"], 1)
        n = int(w[-1]) if len(w) >= 2 else 1
        return Layer(kind=kind, macs=macs, cin=k, cout=n, out_pixels=macs // max(k * n, 1),
                     weight_elems=weight_elems, **common)  # fmt: skip
    out_shape = shapes[node.output[0]][0] if node.output[0] in shapes else ()
    pixels = int(np.prod(out_shape)) // max(int(out_shape[1]), 1) if len(out_shape) > 1 else 0
    if kind == "transposed":
        strides = next((tuple(a.ints) for a in node.attribute if a.name == "strides"), (1, 1))
        kernel = tuple(max(int(k) // max(int(s), 1), 1) for k, s in zip(w[2:], strides))
        cin, cout = int(w[0]), int(w[1]) * groups
    else:
        kernel = tuple(int(k) for k in w[2:]) or (1, 1)
        cin, cout = int(w[1]) * groups, int(w[0])
    return Layer(kind=kind, macs=macs, groups=groups, cin=cin, cout=cout,
                 kernel=(kernel + (1, 1))[:2], out_pixels=pixels, weight_elems=weight_elems,
                 **common)  # fmt: skip


def _fix_input_shape(model: Any, size: tuple[int, int] | None) -> Any:
    """Copy of ``model`` with symbolic input dims pinned (batch 1, spatial from ``size``)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
        return model
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    dims = model.graph.input[0].type.tensor_type.shape.dim
    nhwc = len(dims) == 4 and dims[3].HasField("dim_value") and dims[3].dim_value == 3
    spatial = (1, 2) if nhwc else (2, 3)
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            continue
        if i == 0:
            d.dim_value = 1
        elif size is not None and i in spatial:
            d.dim_value = size[spatial.index(i)]
        else:
            raise InputError(
                f"graph input dim {i} is symbolic ({d.dim_param!r}); pass the input size (HxW)"
            )
    return model


def _shapes(graph: Any, consts: dict[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], int]]:
    """name -> (shape, bytes per element) for every tensor with a static inferred shape."""
    from onnx import helper

    out: dict[str, tuple[tuple[int, ...], int]] = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        t = info.type.tensor_type
        dims = tuple(d.dim_value for d in t.shape.dim)
        if t.elem_type and all(v > 0 for v in dims):
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).itemsize
            out[info.name] = (dims, itemsize)
    for name, arr in consts.items():
        out[name] = (tuple(arr.shape), arr.dtype.itemsize)
    return out


def _source(name: str, producer: dict[str, Any], consts: dict[str, np.ndarray]) -> tuple[str, bool]:
    """Follow a weight back through DequantizeLinear/Identity/...: (source, quantized)."""
    quantized = False
    while name not in consts and name in producer and producer[name].op_type in _PASS_THROUGH:
        node = producer[name]
        quantized |= node.op_type == "DequantizeLinear"
        name = node.input[0]
    return name, quantized


def _count(graph: Any, consts: dict, shapes: dict, producer: dict) -> tuple[int, Counter, Counter]:
    """Parameters, MACs per type and MACs per precision."""
    counted: set[str] = set()
    params = 0
    macs: Counter[str] = Counter()
    by_prec: Counter[str] = Counter()
    for node in graph.node:
        slots = _PARAM_INPUTS.get(node.op_type, ())
        weight_quantized = node.op_type.startswith(("QLinear", "ConvInteger", "MatMulInteger"))
        for slot in slots:
            if slot >= len(node.input) or not node.input[slot]:
                continue
            name = node.input[slot]
            src, quantized = _source(name, producer, consts)
            # Keyed by the consumed name: a tensor read by two nodes counts once, while the
            # exporter's de-duplicated initializers (equal values behind Identity) count per use.
            if src in consts and name not in counted:
                counted.add(name)
                params += int(consts[src].size)
            if slot == slots[0]:
                weight_quantized |= quantized
        if node.op_type not in WEIGHT_OPS:
            continue
        kind, n = _node_macs(node, shapes, producer, consts)
        if kind:
            macs[kind] += n
            by_prec["int8" if weight_quantized else "fp32"] += n
    return params, macs, by_prec


def _node_macs(node: Any, shapes: dict, producer: dict, consts: dict) -> tuple[str, int]:
    """(type, MACs) of one weight op; ("", 0) when its shapes are unknown."""
    op = node.op_type
    w_slot = 3 if op.startswith("QLinear") else 1
    data = node.input[0]
    w_name = _source(node.input[w_slot], producer, consts)[0]
    out = node.output[0]
    if w_name not in shapes or (op.endswith("Conv") or op == "ConvInteger") and out not in shapes:
        log.debug("no static shape for %s (%s); its MACs are not counted", node.name, op)
        return "", 0
    w = shapes[w_name][0]
    if op in ("Conv", "QLinearConv", "ConvInteger"):
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        c_in, c_out = w[1] * groups, w[0]
        kind = conv_kind(groups, c_in, c_out)
        return kind, int(np.prod(shapes[out][0])) * int(np.prod(w[1:]))
    if op == "ConvTranspose":
        if data not in shapes:
            return "", 0
        return "transposed", int(np.prod(shapes[data][0])) * int(np.prod(w[1:]))
    if out not in shapes:
        return "", 0
    # MatMul / Gemm: every output element is a K-long dot product.
    trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
    k = w[-1] if (op == "Gemm" and trans_b) else w[-2] if len(w) >= 2 else w[0]
    return "matmul", int(np.prod(shapes[out][0])) * int(k)


def conv_kind(groups: int, in_channels: int, out_channels: int, transposed: bool = False) -> str:
    """Layer type in MAC tables, for PyTorch modules and ONNX nodes alike: dense, grouped,
    depthwise or transposed."""
    if transposed:
        return "transposed"
    if groups == 1:
        return "dense"
    if groups == in_channels == out_channels:
        return "depthwise"
    return "grouped"


def _liveness(graph: Any, consts: Any, shapes: dict) -> tuple[int, int, tuple[TensorUse, ...]]:
    """Peak live bytes (all, and intermediates only) over the node order, and every tensor's role.

    A tensor is live from the step that produces it (graph inputs: from the start) to the last
    step that reads it (graph outputs: to the end). At each step the node's outputs are allocated
    before its inputs are freed, as a runtime without in-place reuse does.

    QDQ graphs are seen as a runtime runs them, with each Q/DQ pair fused into its neighbours:
    the float tensors a DequantizeLinear produces and those only a QuantizeLinear reads never
    exist as buffers (0 bytes); the 8-bit tensors between them are the activations.
    """
    consumers: dict[str, list[str]] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n.op_type)
    outputs = {o.name for o in graph.output}
    fused = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    fused |= {t for t, ops in consumers.items() if set(ops) == {"QuantizeLinear"}}
    fused -= outputs | {i.name for i in graph.input}

    def nbytes(name: str) -> int:
        shape, itemsize = shapes.get(name, ((), 0))
        return int(np.prod(shape)) * itemsize if itemsize and name not in fused else 0

    # Nodes fed only by constants (a weight's DequantizeLinear, a shape Constant) compute weights,
    # which a runtime folds or keeps beside the stored weight: they are not activations.
    consts = set(consts)
    nodes = []
    for n in graph.node:
        if all(not name or name in consts for name in n.input):
            consts.update(n.output)
        else:
            nodes.append(n)
    last_use: dict[str, int] = {}
    for step, node in enumerate(nodes):
        for name in node.input:
            if name and name not in consts:
                last_use[name] = step
    inputs = [i.name for i in graph.input if i.name not in consts]
    boundary = outputs | set(inputs)  # camera and result buffers, not on-chip working memory
    live = {name: nbytes(name) for name in inputs}
    current = sum(live.values())
    inner = 0  # live bytes of intermediate tensors only
    peak, peak_inner = current, 0
    uses = [TensorUse(name, b, "input", 0) for name, b in live.items()]
    for step, node in enumerate(nodes):
        for name in node.output:
            if name and name not in live:
                live[name] = nbytes(name)
                current += live[name]
                inner += 0 if name in boundary else live[name]
        peak, peak_inner = max(peak, current), max(peak_inner, inner)
        for name in node.output:
            if name:
                kind = "output" if name in outputs else "activation"
                uses.append(TensorUse(name, live.get(name, 0), kind, inner))
        for name in {*node.input, *node.output}:
            dead = last_use.get(name, step) <= step  # read for the last time, or never read
            if name in live and dead and name not in outputs:
                freed = live.pop(name)
                current -= freed
                inner -= 0 if name in boundary else freed
    return peak, peak_inner, tuple(uses)
