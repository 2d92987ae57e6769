"""TIDL's per-run counters (``session.get_TI_benchmark_data()``), read as edgeai-benchmark reads
them (torch-free).

After each run TI's onnxruntime returns nanosecond timestamps and DDR byte counters:
``ts:run_start``/``ts:run_end`` for the whole run; per TIDL subgraph ``<name>``
``ts:subgraph_<name>_copy_in_start``/``_end``, ``..._proc_start``/``_end`` and
``..._copy_out_start``/``_end``; and ``ddr:read_start``/``_end``, ``ddr:write_start``/``_end`` (0
on x86 emulation). The subgraph timestamps need ``TIDL_RT_PERFSTATS=1`` in the environment before
the session is created. Every key may be absent or malformed: what cannot be read is left out,
never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PERFSTATS_ENV = "TIDL_RT_PERFSTATS"
_SUBGRAPH = re.compile(r"^ts:subgraph_(.+)_proc_start$")


@dataclass(frozen=True)
class TidlRun:
    """One run's TIDL figures in ms and bytes (None: the counters were not there).

    ``core_ms`` is edgeai-benchmark's core time: the run minus the input/output copies, which TI
    subtracts only when the graph is one subgraph.
    """

    total_ms: float | None
    core_ms: float | None
    subgraph_ms: dict[str, float] = field(default_factory=dict)
    ddr_bytes: int | None = None


def _span(stats: Mapping[str, Any], start: str, end: str) -> float | None:
    """``stats[end] - stats[start]`` in ns, None when either is missing, not a number or the span
    runs backwards."""
    try:
        value = float(stats[end]) - float(stats[start])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value >= 0 else None


def parse_ti_benchmark(stats: Any) -> TidlRun | None:
    """One ``get_TI_benchmark_data()`` dict -> :class:`TidlRun`; None when nothing is readable."""
    if not isinstance(stats, Mapping):
        return None
    subgraphs: dict[str, float] = {}
    copies = 0.0
    for key in stats:
        match = _SUBGRAPH.match(str(key))
        if not match:
            continue
        name = match.group(1)
        proc = _span(stats, f"ts:subgraph_{name}_proc_start", f"ts:subgraph_{name}_proc_end")
        if proc is None:
            continue
        subgraphs[name] = proc / 1e6
        for part in ("copy_in", "copy_out"):
            copies += _span(stats, f"ts:subgraph_{name}_{part}_start",
                            f"ts:subgraph_{name}_{part}_end") or 0.0  # fmt: skip
    total = _span(stats, "ts:run_start", "ts:run_end")
    read = _span(stats, "ddr:read_start", "ddr:read_end")
    write = _span(stats, "ddr:write_start", "ddr:write_end")
    ddr = int(read + write) if read is not None and write is not None else None
    if total is None and not subgraphs and ddr is None:
        return None
    total_ms = None if total is None else total / 1e6
    core_ms = None
    if total_ms is not None:
        core_ms = total_ms - (copies / 1e6 if len(subgraphs) == 1 else 0.0)
    return TidlRun(total_ms, core_ms, subgraphs, ddr)


def summarize(runs: list[TidlRun]) -> dict[str, Any] | None:
    """Means over runs under edgeai-benchmark's names; None without any run.

    Keys: ``num_subgraphs``, ``infer_time_core_ms``, ``infer_time_subgraph_ms`` (the subgraphs'
    processing, summed), ``ddr_transfer_mb`` (read + write per run, over the runs whose counters
    moved: 0 on PC emulation), ``subgraph_ms`` (name -> mean processing ms) and ``runs``.
    """
    if not runs:
        return None

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    names = sorted({n for r in runs for n in r.subgraph_ms})
    per = {n: mean([r.subgraph_ms[n] for r in runs if n in r.subgraph_ms]) for n in names}
    with_subgraphs = [r for r in runs if r.subgraph_ms]
    ddr = [r.ddr_bytes for r in runs if r.ddr_bytes]
    return {
        "num_subgraphs": max(len(r.subgraph_ms) for r in runs),
        "infer_time_core_ms": mean([r.core_ms for r in runs if r.core_ms is not None]),
        "infer_time_subgraph_ms": mean([sum(r.subgraph_ms.values()) for r in with_subgraphs]),
        "ddr_transfer_mb": mean([b / 1e6 for b in ddr]) if ddr else 0.0,
        "subgraph_ms": per,
        "runs": len(runs),
    }
