"""The table every graph rewrite is registered in, with its stage and target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx

RewriteFn = Callable[[onnx.ModelProto], int]

STAGES = ("float", "qdq")  # runs on the float graph, or on the quantized (QDQ) one
# Any runtime, or the one whose kernels / import rules a rewrite was written for (deploy's provider
# names: cpu is ONNX Runtime's own CPU kernels, MLAS).
TARGETS = ("any", "cpu", "tidl")


@dataclass(frozen=True)
class Rewrite:
    """A registered rewrite: its name, function, one-line description, stage and target."""

    name: str
    fn: RewriteFn
    doc: str
    stage: str
    target: str


REWRITES: dict[str, Rewrite] = {}


def register(name: str, *, stage: str = "float", target: str = "any"):
    """Decorator adding ``fn`` to :data:`REWRITES` under ``name``."""
    if stage not in STAGES or target not in TARGETS:
        raise ValueError(f"rewrite {name!r}: stage {stage!r} / target {target!r} unknown")

    def wrap(fn: RewriteFn) -> RewriteFn:
        if name in REWRITES:
            raise ValueError(f"rewrite {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        REWRITES[name] = Rewrite(name, fn, doc, stage, target)
        return fn

    return wrap
