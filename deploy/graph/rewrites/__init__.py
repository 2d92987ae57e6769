"""Graph rewrites: one registry of small, exact ONNX transformations, for export and calib alike.

Each rewrite is a function ``rewrite(model) -> int`` that edits an ``onnx.ModelProto`` in place
and returns how many places it changed. It computes *exactly* the same function (up to float
rounding); each one has a before/after ONNX Runtime equality test. A rewrite is registered with
its **stage** (``float``: the float graph; ``qdq``: the quantized one) and its **target**
(``any``, or the runtime whose kernels or import rules it was written for, in deploy's provider
words: ``cpu`` for ONNX Runtime's CPU kernels, ``tidl``):

- :mod:`.numeric`: stored numbers, e.g. tiny weights flushed to zero (any runtime);
- :mod:`.shuffle`: the two forms of a channel shuffle, no-op removal (any runtime);
- :mod:`.tidl`: forms TIDL 11.0 would not accelerate turned into legal, identical ones;
- :mod:`.ort`: forms that make ONNX Runtime CPU's int8 kernels fast;
- :mod:`.quant`: BatchNorm the int8 kernels cannot take, TIDL's power-of-two scales.

Pipelines are tuples of names (:data:`TIDL_REWRITES`, :data:`ORT_FLOAT_REWRITES`, ...) so the
exporter, the quantizer, the benchmarks and the tests all draw from the same table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import onnx

from ...errors import InputError
from . import numeric, ort, quant, shuffle, tidl
from ._registry import REWRITES, STAGES, TARGETS, Rewrite, register
from .numeric import NUMERIC_REWRITES
from .ort import ORT_FLOAT_REWRITES, ORT_QDQ_REWRITES
from .shuffle import SHUFFLE_REWRITES
from .tidl import TIDL_REWRITES

__all__ = [
    "NUMERIC_REWRITES", "ORT_FLOAT_REWRITES", "ORT_QDQ_REWRITES", "REWRITES", "SHUFFLE_REWRITES",
    "STAGES", "TARGETS", "TIDL_REWRITES", "Rewrite", "apply_rewrites", "numeric", "ort", "quant",
    "register", "rewrite_names", "shuffle", "tidl",
]  # fmt: skip

log = logging.getLogger(__name__)


def apply_rewrites(
    model: onnx.ModelProto, names: Iterable[str], stage: str | None = None
) -> dict[str, int]:
    """Run the named rewrites in order; returns ``{name: places changed}``.

    Raises:
        InputError: an unknown name, or one registered for another ``stage`` than the one given.
    """
    counts = {}
    for name in names:
        rewrite = REWRITES.get(name)
        if rewrite is None:
            raise InputError(f"unknown rewrite {name!r}; known: {', '.join(rewrite_names())}")
        if stage is not None and rewrite.stage != stage:
            raise InputError(f"rewrite {name!r} runs on the {rewrite.stage} graph, not {stage}")
        counts[name] = rewrite.fn(model)
        log.debug("rewrite %s changed %d place(s)", name, counts[name])
    return counts


def rewrite_names(stage: str | None = None, target: str | None = None) -> tuple[str, ...]:
    """Names of the registered rewrites (of one stage / target when given), sorted."""
    return tuple(
        sorted(
            r.name
            for r in REWRITES.values()
            if (stage is None or r.stage == stage) and (target is None or r.target == target)
        )
    )
