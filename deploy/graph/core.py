"""The one index of an ``onnx.ModelProto`` that every graph tool shares.

Rewrites (export, calib), the TIDL checker and the graph statistics need the same few questions
answered (what constant feeds this input, who produces or consumes this tensor, what static shape
it has, replace these nodes by those) and do not each re-implement them. ``Graph`` indexes the
model once; after a rewrite changes nodes it calls :meth:`Graph.commit`, which keeps the node list
topologically ordered and drops initializers nobody reads any more.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import InputError, first_line


def load_onnx(path: str | Path):
    """Load and sanity-check an ONNX file; raises InputError for a missing or corrupt one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model {path} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError... for bad files
        first = first_line(exc)
        raise InputError(f"model {path} is not a readable ONNX file ({first})") from None
    # An empty file (or any byte string protobuf accepts) parses as an empty model.
    if not model.graph.node or not model.graph.output:
        raise InputError(f"model {path} holds no ONNX graph (an empty or truncated file?)")
    return model


class Graph:
    """Index of one model's main graph: constants, producers and consumers by tensor name."""

    def __init__(self, model: onnx.ModelProto, shapes: bool = False) -> None:
        """Index ``model``; with ``shapes``, also the static shapes ONNX shape inference finds
        (on a copy: the model itself is not annotated)."""
        self.model = model
        self.graph = model.graph
        self._names = itertools.count()
        self.shapes = static_shapes(_inferred(model)) if shapes else {}
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the lookup tables (call after editing ``graph.node`` by hand)."""
        self.inits = {t.name: t for t in self.graph.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.graph.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                self.consumers.setdefault(inp, []).append(node)
        self.outputs = {o.name for o in self.graph.output}

    # --- constants -------------------------------------------------------------------------
    def const(self, name: str) -> np.ndarray | None:
        """Value of a tensor that is an initializer or a ``Constant`` node's output, else None."""
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
        return None

    def constants(self) -> dict[str, np.ndarray]:
        """Every initializer and ``Constant`` node value, by tensor name."""
        names = [*self.inits, *(n.output[0] for n in self.graph.node if n.op_type == "Constant")]
        values = {name: self.const(name) for name in names}
        return {name: value for name, value in values.items() if value is not None}

    def shape(self, name: str) -> list[int] | None:
        """Static shape of a constant, or of a tensor shape inference resolved (``shapes=True``)."""
        value = self.const(name)
        return list(value.shape) if value is not None else self.shapes.get(name)

    def add_const(self, value: np.ndarray, hint: str) -> str:
        """Add an initializer with a fresh name built from ``hint``; returns the name."""
        name = self.fresh(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        self.inits[name] = self.graph.initializer[-1]
        return name

    def set_const(self, name: str, value: np.ndarray) -> str:
        """Give input ``name`` a new value as a fresh initializer (others may share the old one)."""
        return self.add_const(value, name)

    def fresh(self, hint: str) -> str:
        """A tensor or node name not used in the graph yet."""
        used = set(self.inits) | set(self.producer) | {i.name for i in self.graph.input}
        used |= {n.name for n in self.graph.node}
        while True:
            name = f"{hint}_gg{next(self._names)}"
            if name not in used:
                return name

    # --- structure -------------------------------------------------------------------------
    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        """The single node reading ``tensor`` when it is not also a graph output, else None."""
        users = self.consumers.get(tensor, [])
        if len(users) != 1 or tensor in self.outputs:
            return None
        return users[0]

    def nodes(self, op_type: str) -> Iterator[onnx.NodeProto]:
        """Current nodes of ``op_type``, safe to edit while iterating.

        Protobuf copies nodes when the list is rebuilt, so a rewrite must not hold node objects
        across :meth:`replace`; this looks each one up again by its (unique) first output.
        """
        for out in [n.output[0] for n in self.graph.node if n.op_type == op_type]:
            node = self.producer.get(out)
            if node is not None and node.op_type == op_type:
                yield node

    def replace(self, old: Iterable[onnx.NodeProto], new: Iterable[onnx.NodeProto]) -> None:
        """Put ``new`` where the first of ``old`` was and delete ``old``."""
        # Outputs are unique in a valid graph, so they identify nodes across protobuf copies.
        old_keys = {tuple(n.output) for n in old}
        nodes = list(self.graph.node)
        first = next(i for i, n in enumerate(nodes) if tuple(n.output) in old_keys)
        kept = [n for n in nodes if tuple(n.output) not in old_keys]
        position = sum(1 for n in nodes[:first] if tuple(n.output) not in old_keys)
        kept[position:position] = list(new)
        del self.graph.node[:]
        self.graph.node.extend(kept)
        self.reindex()

    def drop(self, dead: Iterable[onnx.NodeProto]) -> None:
        """Delete ``dead`` by identity (a rewired node may now share a dead node's output name)
        and restore the topological order."""
        ids = {id(n) for n in dead}
        toposort(self.model, [n for n in self.graph.node if id(n) not in ids])
        self.reindex()

    def commit(self) -> None:
        """Sort nodes topologically and drop unused initializers / Constant nodes."""
        self._toposort()
        drop_unused_initializers(self.model)
        used = {i for n in self.graph.node for i in n.input} | self.outputs
        dead = [n for n in self.graph.node if n.op_type == "Constant" and n.output[0] not in used]
        if dead:
            self.replace(dead, [])
        self.reindex()

    def _toposort(self) -> None:
        toposort(self.model)


def drop_unused_initializers(model: onnx.ModelProto) -> None:
    """Remove initializers no node (or graph output) reads."""
    used = {name for node in model.graph.node for name in node.input}
    used |= {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def toposort(model: onnx.ModelProto, nodes: Iterable[onnx.NodeProto] | None = None) -> None:
    """Set the graph's node list to ``nodes`` (default: its own) in topological order."""
    graph = model.graph
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node if nodes is None else nodes), []
    while pending:
        rest = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):  # a cycle or a dangling input: leave the order alone
            ordered.extend(rest)
            break
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def attr(node: onnx.NodeProto, name: str, default=None):
    """Value of attribute ``name`` of ``node`` (``default`` when absent); strings as ``str``."""
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def set_attr(node: onnx.NodeProto, name: str, value) -> None:
    """Set (or add) attribute ``name`` of ``node``."""
    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with inferred shapes; the model itself when inference rejects it (a graph that
    does not infer is still checkable, with fewer shapes known)."""
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception:  # onnx raises InferenceError, ValueError, RuntimeError... on odd graphs
        return model


def static_shapes(model: onnx.ModelProto) -> dict[str, list[int] | None]:
    """Shape of every graph input/output/value_info tensor; None where a dimension is dynamic."""
    shapes: dict[str, list[int] | None] = {}
    for info in itertools.chain(model.graph.input, model.graph.output, model.graph.value_info):
        if not info.type.HasField("tensor_type"):
            continue
        dims = info.type.tensor_type.shape.dim
        static = all(d.HasField("dim_value") and d.dim_value > 0 for d in dims)
        shapes[info.name] = [d.dim_value for d in dims] if static else None
    return shapes


def grouped_conv_count(model: onnx.ModelProto) -> int:
    """Number of ``Conv`` nodes with ``group > 1`` (grouped and depthwise)."""
    return sum(1 for n in model.graph.node if n.op_type == "Conv" and attr(n, "group", 1) > 1)
