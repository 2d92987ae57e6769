"""Graph checks around quantization (its rewrites are registered in deploy/graph/rewrites/).

- :func:`quantized_ops`: is a model already quantized?
- :func:`op_census`: how many of each op a graph holds.
- :func:`ort_runtime_ops`: the ops ONNX Runtime actually runs after its optimizations: how much
  of an int8 graph became integer kernels, and the float islands and layout Transposes left.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from gradgroup.deploy.errors import RunError
from gradgroup.deploy.graph.core import Graph
from gradgroup.deploy.graph.stats import QUANT_OPS

log = logging.getLogger(__name__)


def quantized_ops(model: onnx.ModelProto) -> Counter:
    """Quantization ops present in the graph (empty for a float model)."""
    return Counter(n.op_type for n in model.graph.node if n.op_type in QUANT_OPS)


def op_census(model: onnx.ModelProto) -> dict[str, int]:
    """Count of each op type, most common first."""
    return dict(Counter(n.op_type for n in model.graph.node).most_common())


def ort_runtime_ops(
    path: str | Path, threads: int = 1, disabled_optimizers: tuple[str, ...] = ()
) -> dict[str, Any]:
    """What ONNX Runtime's CPU provider runs for a model after all graph optimizations.

    QDQ groups ORT fused into integer kernels show up as ``QLinear*``/``Nhwc*`` ops; every
    ``DequantizeLinear`` left is the start of a float island, every ``Transpose`` ORT's NHWC
    layout transformer inserted is a copy of a whole tensor.

    Returns:
        ``{"ops": {op: count}, "int8_ops": n, "float_islands": n, "transposes": n}``.
    """
    from gradgroup.deploy.session import open_session

    with tempfile.TemporaryDirectory(prefix="gradgroup-ortopt-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        open_session(
            path,
            f"model {path}",
            threads=threads,
            optimized_model_path=optimized,
            quiet=True,  # the "hardware-specific model" warning is expected here
            disabled_optimizers=disabled_optimizers,
            error=RunError,
        )
        ops = Counter(n.op_type for n in onnx.load(str(optimized)).graph.node)
    return {
        "ops": dict(ops.most_common()),
        "int8_ops": sum(c for op, c in ops.items() if op.startswith(("QLinear", "Nhwc"))),
        "float_islands": ops.get("DequantizeLinear", 0),
        "transposes": ops.get("Transpose", 0),
    }


def scales(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Every QuantizeLinear/DequantizeLinear scale initializer by name."""
    inits = Graph(model).inits
    names = {
        n.input[1] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
    }
    return {name: numpy_helper.to_array(inits[name]) for name in names if name in inits}
