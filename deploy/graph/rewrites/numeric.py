"""Rewrites of the numbers a graph stores, not of its structure (any runtime)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ._registry import register

# Run first on every exported float graph.
NUMERIC_REWRITES = ("flush_denormal_weights",)


@register("flush_denormal_weights", stage="float", target="any")
def flush_denormal_weights(model: onnx.ModelProto) -> int:
    """Set float32 initializer values below the smallest normal float (1.2e-38) to zero.

    Weight decay drives unused weights towards zero, and a trained ERFNet keeps ~18,000 of
    them as denormals. x86 CPUs multiply denormals through a microcode assist about 100x slower,
    so two of ERFNet's dilated 3x1 convs took 85 % of its fp32 time on ORT (1.5 s -> 0.8 s for
    the whole frame at one thread once flushed). Returns the number of values flushed; the
    change to any output is below 1e-37.
    """
    tiny = np.finfo(np.float32).tiny
    flushed = 0
    for tensor in model.graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(tensor)
        denormal = (values != 0) & (np.abs(values) < tiny)
        if denormal.any():
            flushed += int(denormal.sum())
            tensor.CopyFrom(numpy_helper.from_array(np.where(denormal, 0, values), tensor.name))
    return flushed
