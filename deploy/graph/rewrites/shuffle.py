"""Runtime-neutral rewrites: the two forms of a channel shuffle, and no-op removal."""

from __future__ import annotations

import logging

import numpy as np
import onnx

from ..core import Graph, attr, static_shapes
from ._registry import register

log = logging.getLogger(__name__)

# --- channel shuffle ---------------------------------------------------------------------------


def shuffle_permutation(channels: int, groups: int) -> np.ndarray:
    """Indices ``p`` with ``shuffled[:, j] = x[:, p[j]]`` for ShuffleNet's channel shuffle."""
    j = np.arange(channels)
    per = channels // groups
    return (j % groups) * per + j // groups


def _match_reshape_shuffle(g: Graph, first: onnx.NodeProto):
    """(nodes, groups, channels) when ``first`` starts Reshape(5-D)->Transpose->Reshape(4-D)."""
    shape1 = g.const(first.input[1]) if len(first.input) > 1 else None
    if shape1 is None or shape1.shape != (5,) or (shape1 <= 0).any():
        return None
    trans = g.only_consumer(first.output[0])
    if (
        trans is None
        or trans.op_type != "Transpose"
        or list(attr(trans, "perm", [])) != [0, 2, 1, 3, 4]
    ):
        return None
    last = g.only_consumer(trans.output[0])
    if last is None or last.op_type != "Reshape":
        return None
    shape2 = g.const(last.input[1])
    n, groups, per, h, w = (int(v) for v in shape1)
    if shape2 is None or [int(v) for v in shape2] != [n, groups * per, h, w]:
        return None
    return (first, trans, last), groups, groups * per


@register("shuffle_to_gather")
def shuffle_to_gather(model: onnx.ModelProto) -> int:
    """Reshape/Transpose/Reshape channel shuffle -> one Gather on the channel axis."""
    g, changed = Graph(model), 0
    for node in g.nodes("Reshape"):
        match = _match_reshape_shuffle(g, node)
        if match is None:
            continue
        nodes, groups, channels = match
        indices = g.add_const(shuffle_permutation(channels, groups).astype(np.int64), "shuffle_idx")
        gather = onnx.helper.make_node(
            "Gather",
            [node.input[0], indices],
            [nodes[-1].output[0]],
            name=g.fresh(f"{node.name or 'shuffle'}_gather"),
            axis=1,
        )
        g.replace(nodes, [gather])
        changed += 1
    g.commit()
    return changed


@register("gather_to_shuffle")
def gather_to_shuffle(model: onnx.ModelProto) -> int:
    """Channel Gather that is a ShuffleNet shuffle -> Reshape/Transpose/Reshape (TIDL's form)."""
    shapes = static_shapes(onnx.shape_inference.infer_shapes(model))
    g, changed = Graph(model), 0
    for node in g.nodes("Gather"):
        indices = g.const(node.input[1])
        shape = shapes.get(node.input[0])
        if indices is None or indices.ndim != 1 or shape is None or len(shape) != 4:
            continue
        if attr(node, "axis", 0) not in (1, -3) or len(indices) != shape[1] or len(indices) < 2:
            continue
        groups = _shuffle_groups(indices)
        if groups is None:
            continue
        n, c, h, w = shape
        s1 = g.add_const(np.array([n, groups, c // groups, h, w], np.int64), "shuffle_shape5")
        s2 = g.add_const(np.array([n, c, h, w], np.int64), "shuffle_shape4")
        t1, t2 = g.fresh("shuffle_split"), g.fresh("shuffle_swap")
        base = node.name or "shuffle"
        new = [
            onnx.helper.make_node("Reshape", [node.input[0], s1], [t1], name=g.fresh(base + "_r1")),
            onnx.helper.make_node(
                "Transpose", [t1], [t2], name=g.fresh(base + "_t"), perm=[0, 2, 1, 3, 4]
            ),
            onnx.helper.make_node(
                "Reshape", [t2, s2], [node.output[0]], name=g.fresh(base + "_r2")
            ),
        ]
        g.replace([node], new)
        changed += 1
    g.commit()
    return changed


def _shuffle_groups(indices: np.ndarray) -> int | None:
    """Group count g when ``indices`` is the channel shuffle of g groups, else None."""
    channels = len(indices)
    if indices[0] != 0 or indices[1] <= 0 or channels % int(indices[1]):
        return None
    groups = channels // int(indices[1])
    if groups < 2 or not np.array_equal(indices, shuffle_permutation(channels, groups)):
        return None
    return groups


# --- no-op removal -----------------------------------------------------------------------------


@register("remove_noops")
def remove_noops(model: onnx.ModelProto) -> int:
    """Drop Dropout and Identity nodes (inference no-ops) by rewiring their consumers."""
    g, changed = Graph(model), 0
    for node in (n for op in ("Dropout", "Identity") for n in g.nodes(op)):
        src, dst = node.input[0], node.output[0]
        if dst in g.outputs or len(node.output) > 1 and node.output[1] in g.consumers:
            continue  # a graph output or a used Dropout mask: keep it
        for user in g.consumers.get(dst, []):
            for i, name in enumerate(user.input):
                if name == dst:
                    user.input[i] = src
        g.replace([node], [])
        changed += 1
    g.commit()
    return changed


SHUFFLE_REWRITES = {"reshape": ("gather_to_shuffle",), "gather": ("shuffle_to_gather",)}
