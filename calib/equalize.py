"""Activation equalization before int8 calibration: exact in float, kinder to 8-bit activations.

A ReLU output is quantized with one scale for all its channels, yet in a trained light model the
median channel of such a tensor reaches about 7 % of the tensor's maximum (measured on dg4-light:
the median over its ReLU tensors of median-channel max / tensor max is 0.074), so it gets ~19 of
the 255 levels. For every ``Conv -> Relu -> Conv`` chain whose tensors have no other consumer,
channel ``i`` of the first conv's output is multiplied by ``f_i`` (weights and bias) and the second
conv's input channel ``i`` divided by it; ReLU commutes with a positive scale, so the float model
computes the same function (checked: max |logit change| ~ 1e-5).

``f_i`` brings each channel's calibration maximum up towards the tensor's: ``max / max_i`` when the
second conv is depthwise (its per-output-channel weight scale absorbs the division, so the weights
lose nothing), its square root otherwise (a dense or grouped conv shares one weight scale over its
input channels; the square root splits the range between activation and weight, as SmoothQuant
and data-free cross-layer equalization do). Channels below ``max / cap`` (dead or nearly) are left
alone. Measured on two make-run dg4-light models (200 held-out scenes): int8 argmax agreement with
fp32 97.83 -> 98.03 % and 97.94 -> 98.18 %, int8 mIoU unchanged within 0.1 point.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CAP = 64.0  # channels weaker than max / CAP are not scaled (f would exceed CAP)


@dataclass(frozen=True)
class Chain:
    """``first -> relu -> second``: the convs whose shared channels can be rescaled."""

    first: object  # onnx NodeProto (Conv)
    relu: object
    second: object
    depthwise: bool  # second is depthwise: the rescale costs its weights nothing


def find_chains(graph) -> list[Chain]:
    """Every ``Conv -> Relu -> Conv`` of ``graph`` whose tensors feed nothing else and whose
    weights (and bias) are initializers."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}
    chains = []
    for relu in graph.node:
        if relu.op_type != "Relu" or relu.output[0] in outputs:
            continue
        first, after = producer.get(relu.input[0]), consumers.get(relu.output[0], [])
        if first is None or first.op_type != "Conv" or len(after) != 1:
            continue
        second = after[0]
        if second.op_type != "Conv" or second.input[0] != relu.output[0]:
            continue
        if len(consumers.get(first.output[0], [])) != 1 or first.output[0] in outputs:
            continue
        if any(name not in inits for name in [*first.input[1:], second.input[1]]):
            continue
        weight = numpy_helper.to_array(inits[second.input[1]])
        group = next((helper.get_attribute_value(a) for a in second.attribute
                      if a.name == "group"), 1)  # fmt: skip
        chains.append(Chain(first, relu, second, group == weight.shape[0] and weight.shape[1] == 1))
    return chains


def channel_maxima(
    model, chains: list[Chain], feeds: Iterable[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Per-channel maximum of each chain's ReLU output over ``feeds`` (ONNX Runtime, CPU)."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    for chain in chains:
        probe.graph.output.append(onnx.ValueInfoProto(name=chain.relu.output[0]))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    maxima: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(names, session.run(None, feed), strict=True):
            top = value.reshape(value.shape[0], value.shape[1], -1).max(axis=(0, 2))
            maxima[name] = np.maximum(maxima[name], top) if name in maxima else top
    return maxima


def scales(maxima: np.ndarray, depthwise: bool, cap: float = CAP) -> np.ndarray:
    """``f_i`` for one chain from its channels' maxima (1 for channels below max / cap)."""
    top = float(maxima.max())
    f = np.ones(maxima.shape, np.float32)
    if top <= 0:
        return f
    live = maxima > top / cap
    f[live] = top / maxima[live]
    return f if depthwise else np.sqrt(f)


def equalize(model, feeds: Iterable[dict[str, np.ndarray]], cap: float = CAP) -> int:
    """Rescale every chain of ``model`` (in place) from the maxima over ``feeds``; returns how
    many chains were rescaled."""
    from onnx import numpy_helper

    chains = find_chains(model.graph)
    if not chains:
        return 0
    maxima = channel_maxima(model, chains, feeds)
    inits = {i.name: i for i in model.graph.initializer}

    def update(name: str, fn) -> None:
        array = fn(numpy_helper.to_array(inits[name]).astype(np.float32))
        inits[name].CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))

    for chain in chains:
        f = scales(maxima[chain.relu.output[0]], chain.depthwise, cap)
        update(chain.first.input[1], lambda w, f=f: w * f.reshape(-1, *[1] * (w.ndim - 1)))
        if len(chain.first.input) > 2 and chain.first.input[2]:
            update(chain.first.input[2], lambda b, f=f: b * f)
        update(chain.second.input[1], lambda w, f=f: _divide_inputs(w, f))
    return len(chains)


def _divide_inputs(weight: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Divide input channel ``i`` of a (grouped) conv weight (O, I/G, kh, kw) by ``f_i``."""
    per_group = weight.shape[1]
    groups = len(f) // per_group
    out = weight.reshape(groups, weight.shape[0] // groups, per_group, *weight.shape[2:])
    out = out / f.reshape(groups, 1, per_group, *[1] * (weight.ndim - 2))
    return out.reshape(weight.shape)


def equalize_file(path: Path, feeds: Iterable[dict[str, np.ndarray]], cap: float = CAP) -> int:
    """:func:`equalize` the model at ``path`` and write it back; returns the chains rescaled."""
    import onnx

    model = onnx.load(str(path))
    count = equalize(model, feeds, cap)
    if count:
        onnx.save(model, str(path))
    log.info("activation equalization: %d conv-relu-conv chains rescaled", count)
    return count
