"""Exact rewrites that turn the float islands of a QDQ graph into integer kernels on ORT CPU.

ONNX Runtime fuses ``DequantizeLinear -> op -> QuantizeLinear`` into an integer kernel only for
the ops and modes it knows; the rest run in float between a DQ and a Q, each a full copy of the
tensor. ``bench/op_profile.py`` showed which ones cost time (bench/NOTES.md); each rewrite here
removes one kind, computing the same function:

- ``convtranspose_to_subpixel`` (float graph, before quantizing): ORT CPU has no int8
  ``ConvTranspose``, so every transposed conv of a QDQ model ran in float between a DQ and a Q.
  A stride-s transposed conv is exactly a stride-1 conv to ``s*s*Cout`` channels (one per output
  phase, its kernel the phase's taps of the original) followed by ``DepthToSpace``; the conv
  quantizes to a QLinearConv. (fp32 models keep ConvTranspose: ORT's fp32 DepthToSpace is slower.)
- ``dense_pointwise`` (float graph): ORT's int8 ``QLinearConv`` with
  ``group > 1`` runs a strided GEMM per group in NHWC, about 6x slower per MAC than a dense 1x1;
  a grouped 1x1 conv with few groups is the dense conv with a block-diagonal weight (zeros
  elsewhere), faster in int8 although it does ``groups`` times the MACs.
- ``absorb_channel_gather`` (float graph, after ``dense_pointwise``): a channel shuffle written as
  a Gather on the channel axis, fed (through Relu) by a dense Conv, is that conv with its output
  channels (weight rows, bias) permuted; no tensor is copied. ORT's layout transformer cannot
  carry its NHWC layout through a Gather, so each one cost two Transposes in int8.
- ``float_maxpool_on_input``: ``Q -> DQ -> MaxPool -> Q`` on a float tensor is ``MaxPool -> Q``
  (quantization is monotonic); ORT's float MaxPool is fast, its NCHW uint8 one is not. For
  uint8-input models the normalization in front (``input_prologue``) is kept in float so the
  pool can read it.
- ``depth_to_space_as_transposes`` (float graph): ORT's DepthToSpace is a generic 6-D shuffle
  (tens of ms on a 10 M-element logits tensor); the same DCR reordering as NHWC Transpose ->
  Reshape -> one-axis Transpose -> Reshape -> NCHW Transpose quantizes to uint8 transposes, the
  outer two cancel against the layout transformer's or are MLAS's fast NHWC<->NCHW copies.
- ``argmax_before_depth_to_space`` (float graph): with the class map as output, the argmax runs
  per phase on the sub-pixel conv's uint8 output and only the class ids are rearranged: no
  dequantized logits and two fewer logits-sized transposes (profile: -3.5 ms of kernel time on
  dg4-light at 1024x512, bench/NOTES.md).
- ``dequantize_after_movement``: ``DQ -> DepthToSpace/Transpose/Reshape -> graph output`` moves
  the bytes while they are uint8 and dequantizes afterwards (per-tensor DQ commutes with them).

Every rewrite edits the model in place and returns the number of places it changed.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..core import Graph, attr, static_shapes, toposort
from ._registry import register

MOVEMENT_OPS = ("DepthToSpace", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")
DENSE_POINTWISE_MAX_GROUPS = 4  # measured break-even near 6 (bench/NOTES.md)


def _same_qparams(g: Graph, a: onnx.NodeProto, b: onnx.NodeProto) -> bool:
    """True when two Q/DQ nodes use equal per-tensor scales and zero points."""
    sa, sb = g.const(a.input[1]), g.const(b.input[1])
    if sa is None or sb is None or sa.size != 1 or sb.size != 1 or sa != sb:
        return False
    za = g.const(a.input[2]) if len(a.input) > 2 else np.zeros((), np.uint8)
    zb = g.const(b.input[2]) if len(b.input) > 2 else np.zeros((), np.uint8)
    return za is not None and zb is not None and za.dtype == zb.dtype and za == zb


@register("dense_pointwise", target="cpu")
def dense_pointwise(model: onnx.ModelProto, max_groups: int = DENSE_POINTWISE_MAX_GROUPS) -> int:
    """Grouped 1x1 Conv (2..max_groups groups) -> dense 1x1 Conv with a block-diagonal weight."""
    g = Graph(model)
    changed = 0
    for node in model.graph.node:
        group = attr(node, "group", 1)
        weight = g.const(node.input[1]) if node.op_type == "Conv" else None
        if weight is None or not 1 < group <= max_groups or weight.shape[2:] != (1, 1):
            continue
        cout, cin_g = weight.shape[:2]
        if cin_g == 1 and cout == group:
            continue  # depthwise: ORT has a dedicated kernel
        cout_g = cout // group
        dense = np.zeros((cout, cin_g * group, 1, 1), weight.dtype)
        for k in range(group):
            rows = slice(k * cout_g, (k + 1) * cout_g)
            dense[rows, k * cin_g : (k + 1) * cin_g] = weight[rows]
        name = node.input[1] + "_dense"
        model.graph.initializer.append(numpy_helper.from_array(dense, name))
        node.input[1] = name
        for a in node.attribute:
            if a.name == "group":
                a.i = 1
        changed += 1
    return changed


@register("absorb_channel_gather", target="cpu")
def absorb_channel_gather(model: onnx.ModelProto) -> int:
    """Conv(group=1) [-> Relu] -> Gather(axis=1, constant indices) -> Conv with permuted rows."""
    g = Graph(model)
    changed, dead = 0, []
    for gather in [n for n in model.graph.node if n.op_type == "Gather"]:
        idx = g.const(gather.input[1])
        if idx is None or idx.ndim != 1 or attr(gather, "axis", 0) not in (1, -3):
            continue
        chain, tensor = [], gather.input[0]
        while True:  # walk back through per-channel-blind ops, each read only by the next
            node = g.producer.get(tensor)
            if node is None or len(g.consumers.get(tensor, [])) != 1 or tensor in g.outputs:
                node = None
                break
            if node.op_type != "Relu":
                break
            chain.append(node)
            tensor = node.input[0]
        if node is None or node.op_type != "Conv" or attr(node, "group", 1) != 1:
            continue
        weight = g.const(node.input[1])
        if weight is None or len(idx) != weight.shape[0] or sorted(idx) != list(range(len(idx))):
            continue  # a permutation of all output channels only
        has_bias = len(node.input) > 2 and bool(node.input[2])
        bias = g.const(node.input[2]) if has_bias else None
        if has_bias and bias is None:
            continue
        w_name = node.input[1] + f"_perm{changed}"
        model.graph.initializer.append(numpy_helper.from_array(weight[idx], w_name))
        node.input[1] = w_name
        if bias is not None:
            b_name = node.input[2] + f"_perm{changed}"
            model.graph.initializer.append(numpy_helper.from_array(bias[idx], b_name))
            node.input[2] = b_name
        # The chain's last node now writes the Gather's output.
        last = chain[0] if chain else node
        last.output[0] = gather.output[0]
        dead.append(gather)
        changed += 1
    g.drop(dead)
    return changed


PROLOGUE_OPS = ("Cast", "Sub", "Mul", "Div", "Add")


def input_prologue(model: onnx.ModelProto) -> list[str]:
    """Names of the elementwise nodes that normalize the graph input before the network.

    ``gradgroup export --input uint8`` puts Cast -> Sub(mean) -> Mul(1/std) in front of the
    network. Quantizing them buys nothing (a few cheap float ops on the input) and makes ORT
    pool the normalized input as an NCHW uint8 MaxPool (6.5 ms at 1024x512, vs 0.6 in float).
    """
    g = Graph(model)
    names, tensor = [], model.graph.input[0].name
    while len(users := g.consumers.get(tensor, [])) == 1 and users[0].op_type in PROLOGUE_OPS:
        names.append(users[0].name)
        tensor = users[0].output[0]
    return names


@register("float_maxpool_on_input", stage="qdq", target="cpu")
def float_maxpool_on_input(model: onnx.ModelProto) -> int:
    """``t -> Q -> DQ -> MaxPool -> Q`` (equal qparams) -> ``t -> MaxPool -> Q`` for a float t.

    Only where ``t`` is the graph input or the output of a float op (the input prologue): a
    quantized op's float output is not computed by ORT, so reading it would break that op's
    integer chain.
    """
    g = Graph(model)
    inputs = {i.name for i in model.graph.input}

    def computed_in_float(tensor: str) -> bool:
        node = g.producer.get(tensor)
        if node is None:
            return tensor in inputs
        return node.op_type in PROLOGUE_OPS and not any(
            (p := g.producer.get(i)) is not None and p.op_type == "DequantizeLinear"
            for i in node.input
        )

    changed, dead = 0, []
    for pool in [n for n in model.graph.node if n.op_type == "MaxPool" and len(n.output) == 1]:
        dq = g.producer.get(pool.input[0])
        q_in = (
            g.producer.get(dq.input[0])
            if dq is not None and dq.op_type == "DequantizeLinear"
            else None
        )
        users = g.consumers.get(pool.output[0], [])
        if q_in is None or q_in.op_type != "QuantizeLinear" or len(users) != 1:
            continue
        if not computed_in_float(q_in.input[0]):
            continue
        q_out = users[0]
        if q_out.op_type != "QuantizeLinear" or not _same_qparams(g, q_in, q_out):
            continue
        pool.input[0] = q_in.input[0]  # the float tensor itself
        if len(g.consumers.get(dq.output[0], [])) == 1:
            dead.append(dq)
            if len(g.consumers.get(q_in.output[0], [])) == 1:
                dead.append(q_in)
        changed += 1
    g.drop(dead)
    return changed


def _phase_taps(k: int, s: int, pad_begin: int, phase: int) -> tuple[int, list[int | None]]:
    """First input offset and the kernel index of each tap for one output phase of a deconv.

    Output ``y = s*m + phase`` receives ``x[i] * W[t]`` for every ``i*s - pad_begin + t == y``,
    i.e. ``t = phase + pad_begin - s*d`` with ``d = i - m``. Taps are listed for ``d`` from the
    first offset upwards; ``None`` where an offset has no kernel index (a zero tap).
    """
    r = phase + pad_begin
    ds = sorted((r - t) // s for t in range(k) if (t - r) % s == 0)
    return ds[0], [(r - s * d) if 0 <= r - s * d < k else None for d in range(ds[0], ds[-1] + 1)]


def _subpixel_weight(weight: np.ndarray, s: int, pads: list[int], out_pad: list[int]):
    """(conv weight (s*s*Cout, Cin, th, tw) in DCR order, conv pads) or None if not s*n long."""
    cin, cout, kh, kw = weight.shape
    plan = []
    for axis, k in ((0, kh), (1, kw)):
        if k - s - pads[axis] - pads[axis + 2] + out_pad[axis] != 0:
            return None  # output length is not s * input length
        phases = [_phase_taps(k, s, pads[axis], p) for p in range(s)]
        lo = min(d0 for d0, _ in phases)
        hi = max(d0 + len(t) - 1 for d0, t in phases)
        if lo > 0 or hi < 0:
            return None
        plan.append((lo, hi, phases))
    (lo_h, hi_h, ph_h), (lo_w, hi_w, ph_w) = plan
    conv = np.zeros((s, s, cout, cin, hi_h - lo_h + 1, hi_w - lo_w + 1), weight.dtype)
    for a, (d0a, taps_a) in enumerate(ph_h):
        for b, (d0b, taps_b) in enumerate(ph_w):
            for i, ty in enumerate(taps_a):
                for j, tx in enumerate(taps_b):
                    if ty is not None and tx is not None:
                        conv[a, b, :, :, d0a - lo_h + i, d0b - lo_w + j] = weight[:, :, ty, tx].T
    # Offset d reads x[m + d]: begin pad -lo, end pad hi (zeros outside the input).
    return conv.reshape(s * s * cout, cin, *conv.shape[4:]), [-lo_h, -lo_w, hi_h, hi_w]


@register("convtranspose_to_subpixel", target="cpu")
def convtranspose_to_subpixel(model: onnx.ModelProto) -> int:
    """Dense stride-s ConvTranspose [-> Relu] -> Conv to s*s*C [-> Relu] -> DepthToSpace (DCR)."""
    g = Graph(model)
    nodes, dead, changed = [], set(), 0
    for node in model.graph.node:
        if id(node) in dead:
            continue
        weight = g.const(node.input[1]) if node.op_type == "ConvTranspose" else None
        has_bias = len(node.input) > 2 and bool(node.input[2])
        bias = g.const(node.input[2]) if has_bias else None
        strides = list(attr(node, "strides", [1, 1]))
        if (
            weight is None
            or weight.ndim != 4
            or (has_bias and bias is None)
            or attr(node, "group", 1) != 1
            or attr(node, "auto_pad", "NOTSET") != "NOTSET"
            or attr(node, "output_shape") is not None
            or list(attr(node, "dilations", [1, 1])) != [1, 1]
            or strides[0] != strides[1]
            or strides[0] < 2
        ):
            nodes.append(node)
            continue
        s = strides[0]
        pads = list(attr(node, "pads", [0, 0, 0, 0]))
        made = _subpixel_weight(weight, s, pads, list(attr(node, "output_padding", [0, 0])))
        if made is None:
            nodes.append(node)
            continue
        conv_w, conv_pads = made
        base = node.name or f"convtranspose{changed}"
        model.graph.initializer.append(numpy_helper.from_array(conv_w, f"{base}_subpixel_w"))
        inputs = [node.input[0], f"{base}_subpixel_w"]
        if bias is not None:
            model.graph.initializer.append(
                numpy_helper.from_array(np.tile(bias, s * s), f"{base}_subpixel_b")
            )
            inputs.append(f"{base}_subpixel_b")
        phases, out = f"{base}_phases", node.output[0]
        conv = onnx.helper.make_node(
            "Conv", inputs, [phases], name=f"{base}_subpixel",
            kernel_shape=list(conv_w.shape[2:]), pads=conv_pads,
        )  # fmt: skip
        nodes.append(conv)
        users = g.consumers.get(out, [])
        if len(users) == 1 and users[0].op_type == "Relu" and out not in g.outputs:
            # Relu commutes with DepthToSpace; before it, it fuses into the quantized conv.
            nodes.append(onnx.helper.make_node("Relu", [phases], [f"{base}_phases_relu"],
                                               name=f"{base}_relu"))  # fmt: skip
            phases, out = f"{base}_phases_relu", users[0].output[0]
            dead.add(id(users[0]))
        nodes.append(onnx.helper.make_node("DepthToSpace", [phases], [out], name=f"{base}_d2s",
                                           blocksize=s, mode="DCR"))  # fmt: skip
        changed += 1
    if changed:
        toposort(model, nodes)
        del model.graph.value_info[:]  # stale shapes; quant_pre_process infers them again
    return changed


@register("argmax_before_depth_to_space", target="cpu")
def argmax_before_depth_to_space(model: onnx.ModelProto) -> int:
    """``DepthToSpace(DCR) -> ArgMax(channels) [-> Cast]`` -> ArgMax per phase, then rearrange.

    The class of an output pixel is the argmax over the classes of its phase, so the argmax can
    run on the sub-pixel conv's output (the same values, not yet rearranged) and only the class
    map (one value a pixel, not C) is moved. Written NHWC (Transpose, Reshape to (N, H, W, s*s, C),
    ArgMax over the last axis): in the int8 graph the first Transpose cancels against ORT's
    layout transformer and the ArgMax reads the conv's uint8 output (argmax is invariant to a
    per-tensor dequantization, so ORT drops the DQ). A Cast after the ArgMax moves up with it.
    """
    g = Graph(model)
    shapes = static_shapes(onnx.shape_inference.infer_shapes(model))
    make, dead, new, changed = onnx.helper.make_node, set(), [], 0
    for d2s in [n for n in model.graph.node if n.op_type == "DepthToSpace"]:
        users = g.consumers.get(d2s.output[0], [])
        shape = shapes.get(d2s.input[0])
        if (
            len(users) != 1
            or users[0].op_type != "ArgMax"
            or attr(d2s, "mode", "DCR") != "DCR"
            or shape is None
            or len(shape) != 4
            or not all(shape)
            or attr(users[0], "axis", 0) not in (1, -3)
            or attr(users[0], "select_last_index", 0)
        ):
            continue
        argmax, s, (n, cs, h, w) = users[0], attr(d2s, "blocksize"), shape
        after = g.consumers.get(argmax.output[0], [])
        cast = after[0] if len(after) == 1 and after[0].op_type == "Cast" else None
        out_shape = [n, 1, h * s, w * s] if attr(argmax, "keepdims", 1) else [n, h * s, w * s]
        b = d2s.name or f"d2s{changed}"
        for suffix, value in (
            ("phases_shape", [n, h, w, s * s, cs // (s * s)]),
            ("rows_shape", [n, h, w, s, s]),
            ("out_shape", out_shape),
        ):
            model.graph.initializer.append(
                numpy_helper.from_array(np.array(value, np.int64), f"{b}_{suffix}")
            )
        ids = f"{b}_ids"
        new += [
            make("Transpose", [d2s.input[0]], [f"{b}_nhwc"], name=f"{b}_nhwc", perm=[0, 2, 3, 1]),
            make("Reshape", [f"{b}_nhwc", f"{b}_phases_shape"], [f"{b}_phases"], name=f"{b}_split"),
            make("ArgMax", [f"{b}_phases"], [ids], name=f"{b}_argmax", axis=4, keepdims=0),
        ]
        if cast is not None:
            new.append(
                make("Cast", [ids], [f"{b}_ids_cast"], name=f"{b}_cast", to=attr(cast, "to"))
            )
            ids = f"{b}_ids_cast"
        new += [
            make("Reshape", [ids, f"{b}_rows_shape"], [f"{b}_grid"], name=f"{b}_grid"),
            make("Transpose", [f"{b}_grid"], [f"{b}_rows"], name=f"{b}_rows", perm=[0, 1, 3, 2, 4]),
            make("Reshape", [f"{b}_rows", f"{b}_out_shape"], [(cast or argmax).output[0]],
                 name=f"{b}_merge"),
        ]  # fmt: skip
        dead |= {id(d2s), id(argmax)} | ({id(cast)} if cast is not None else set())
        changed += 1
    if changed:
        toposort(model, [n for n in model.graph.node if id(n) not in dead] + new)
        del model.graph.value_info[:]
    return changed


@register("depth_to_space_as_transposes", target="cpu")
def depth_to_space_as_transposes(model: onnx.ModelProto) -> int:
    """DepthToSpace (DCR) -> Transpose, Reshape, one-axis Transpose, Reshape, Transpose."""
    shapes = static_shapes(onnx.shape_inference.infer_shapes(model))
    make, nodes, changed = onnx.helper.make_node, [], 0
    for node in model.graph.node:
        mode = attr(node, "mode", "DCR")
        shape = shapes.get(node.input[0]) if node.op_type == "DepthToSpace" else None
        if shape is None or len(shape) != 4 or not all(shape) or mode != "DCR":
            nodes.append(node)
            continue
        s = attr(node, "blocksize")
        n, c4, h, w = shape
        c, base = c4 // (s * s), node.name or f"d2s{changed}"
        t = [f"{base}_t{i}" for i in range(4)]
        r1, r2 = f"{base}_shape5", f"{base}_shape4"
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array([n, h, w, s, s * c], np.int64), r1),
            numpy_helper.from_array(np.array([n, h * s, w * s, c], np.int64), r2),
        ])  # fmt: skip
        nodes += [
            make("Transpose", [node.input[0]], [t[0]], name=f"{base}_nhwc", perm=[0, 2, 3, 1]),
            make("Reshape", [t[0], r1], [t[1]], name=f"{base}_split"),
            make("Transpose", [t[1]], [t[2]], name=f"{base}_rows", perm=[0, 1, 3, 2, 4]),
            make("Reshape", [t[2], r2], [t[3]], name=f"{base}_merge"),
            make("Transpose", [t[3]], [node.output[0]], name=f"{base}_nchw", perm=[0, 3, 1, 2]),
        ]
        changed += 1
    if changed:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return changed


@register("dequantize_after_movement", stage="qdq", target="cpu")
def dequantize_after_movement(model: onnx.ModelProto) -> int:
    """``DQ -> DepthToSpace/Transpose/Reshape -> graph output`` -> movement on uint8, then DQ."""
    g = Graph(model)
    changed = 0
    for node in [n for n in model.graph.node if n.op_type in MOVEMENT_OPS]:
        dq = g.producer.get(node.input[0])
        if node.output[0] not in g.outputs or dq is None or dq.op_type != "DequantizeLinear":
            continue
        scale = g.const(dq.input[1])
        if scale is None or scale.size != 1 or len(g.consumers.get(dq.output[0], [])) != 1:
            continue
        final = node.output[0]
        node.input[0] = dq.input[0]
        node.output[0] = final + "_quantized"
        dq.input[0] = node.output[0]
        dq.output[0] = final
        changed += 1
    toposort(model, list(model.graph.node))  # the DQ now follows its input
    return changed


# Applied in this order by ``gradgroup calib`` (its ORT rewrites): on the float graph before
# quantizing, and on the QDQ graph after.
ORT_FLOAT_REWRITES = (
    "convtranspose_to_subpixel",
    "dense_pointwise",
    "absorb_channel_gather",
    "argmax_before_depth_to_space",
    "depth_to_space_as_transposes",
)
ORT_QDQ_REWRITES = ("float_maxpool_on_input", "dequantize_after_movement")
