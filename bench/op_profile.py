"""Where an ONNX model's time goes: ORT's profiler per op on the CPU provider, or OpenVINO's
per-layer performance counters (``--engine openvino``: OpenVINO's own runtime, ``pip install
openvino``, the CPU plugin the OpenVINO execution provider runs).

Wall-clock latency on a shared machine moves with the load; the share of each kernel in one run
and the MACs per second each conv kernel achieves are far steadier, and they say *why* a model
is slow (layout Transposes, float islands, a kernel with no integer version). For every model
this prints the kernel time per op type and the slowest nodes, with the conv MACs each did
(``out elements x Cin/g x kh x kw``, from the shapes ORT's profiler records) and GMAC/s.

    python bench/op_profile.py runs/perf_goals/dg4-light_512x1024.int8.onnx --runs 20
    python bench/op_profile.py MODEL.onnx --engine openvino --precision bf16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CONV_OPS = {"Conv": 1, "FusedConv": 1, "QLinearConv": 3, "NchwcConv": 1, "ConvTranspose": 1}


@dataclass
class OpProfile:
    """Per-op-type totals of one model (ms per run, MACs per run) and the slowest nodes."""

    model: str
    runs: int
    wall_ms: list[float]
    by_op: dict[str, dict[str, float]] = field(default_factory=dict)
    nodes: list[tuple[str, str, float, int]] = field(default_factory=list)  # name, op, ms, MACs

    @property
    def kernel_ms(self) -> float:
        return sum(v["ms"] for v in self.by_op.values())


def _weight_shapes(optimized: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """Conv node name -> (weight shape, kind), from the graph ORT saved after optimizing.

    kind: ``dw`` (depthwise), ``grouped`` or ``dense`` with ``KxK`` appended, so the table can
    tell the depthwise kernels from the pointwise ones.
    """
    import onnx

    model = onnx.load(str(optimized))
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    out = {}
    for n in model.graph.node:
        if n.op_type not in CONV_OPS or n.input[CONV_OPS[n.op_type]] not in dims:
            continue
        w = dims[n.input[CONV_OPS[n.op_type]]]
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        kind = "dw" if w[1] == 1 and group > 1 else "grouped" if group > 1 else "dense"
        out[n.name] = (w, f"{kind} {w[-2]}x{w[-1]}")
    return out


def _conv_macs(op: str, args: dict, weight: tuple[int, ...] | None) -> int:
    """MACs of a conv kernel: output elements x Cin/g x kh x kw (0 if not a conv).

    NCHWc convs count the channel padding of ORT's blocked layout (the work the kernel does).
    """
    if op not in CONV_OPS or weight is None:
        return 0
    try:
        ins = [next(iter(d.values())) for d in args["input_type_shape"]]
        out = next(iter(args["output_type_shape"][0].values()))
    except (KeyError, IndexError, StopIteration):
        return 0
    if op == "ConvTranspose":  # weight (Cin, Cout/g, kh, kw): in elements x Cout/g x kh x kw
        return int(np.prod(ins[0]) * np.prod(weight[1:]))
    return int(np.prod(out) * np.prod(weight[1:]))


def profile_model(
    path: str | Path, runs: int = 20, threads: int = 2, config: dict[str, str] | None = None
) -> OpProfile:
    """Run ``path`` ``runs`` times under ORT's profiler (after 3 warm-up runs) and aggregate."""
    import onnx

    from gradgroup.deploy.metadata import read_meta
    from gradgroup.deploy.runtime import disabled_optimizers
    from gradgroup.deploy.session import open_session

    with tempfile.TemporaryDirectory(prefix="gradgroup-prof-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        sess = open_session(
            path,
            f"model {path}",
            threads=threads,
            session_config=config,
            quiet=True,
            profile_prefix=Path(tmp) / "prof",
            optimized_model_path=optimized,
            disabled_optimizers=disabled_optimizers(read_meta(onnx.load(str(path)))),
        )
        inp = sess.get_inputs()[0]
        rng = np.random.default_rng(0)
        if "uint8" in inp.type:
            x = rng.integers(0, 256, inp.shape, dtype=np.uint8)
        else:
            x = rng.standard_normal(inp.shape).astype(np.float32)
        warm, wall = 3, []
        for i in range(warm + runs):
            t0 = time.perf_counter()
            sess.run(None, {inp.name: x})
            if i >= warm:
                wall.append((time.perf_counter() - t0) * 1e3)
        events = json.loads(Path(sess.end_profiling()).read_text())
        weights = _weight_shapes(optimized)
    total = warm + runs
    by_op: dict[str, dict[str, float]] = defaultdict(lambda: {"ms": 0.0, "n": 0, "macs": 0})
    nodes: dict[tuple[str, str], list] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op, ms = e["args"]["op_name"], e["dur"] / 1e3 / total
        key = (e["name"][: -len("_kernel_time")], op)
        weight, kind = weights.get(key[0], (None, ""))
        macs = _conv_macs(op, e["args"], weight)
        if kind:  # split conv time by depthwise / grouped / dense and kernel size
            op = f"{op} {kind}"
            key = (key[0], op)
        by_op[op]["ms"] += ms
        entry = nodes.setdefault(key, [0.0, macs])
        entry[0] += ms
    for (_, op), (_, macs) in nodes.items():
        by_op[op]["n"] += 1
        by_op[op]["macs"] += macs
    rows = sorted(((n, o, ms, m) for (n, o), (ms, m) in nodes.items()), key=lambda r: -r[2])
    return OpProfile(str(path), runs, wall, dict(by_op), rows)


def openvino_profile(
    path: str | Path, runs: int = 20, threads: int = 2, precision: str = "f32"
) -> OpProfile:
    """Run ``path`` on OpenVINO's CPU plugin with per-layer counters and aggregate them by
    (layer type, kernel), e.g. ``Convolution jit_avx512_amx_I8`` or ``Eltwise ref``.

    Layers OpenVINO fused into another report no time of their own. MACs are not attributed.
    """
    import openvino as ov

    config = {"PERF_COUNT": "YES", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS":
              str(threads), "INFERENCE_PRECISION_HINT": precision}  # fmt: skip
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    port = compiled.input(0)
    rng = np.random.default_rng(0)
    shape = tuple(port.get_shape())
    if port.get_element_type() == ov.Type.u8:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        x = rng.standard_normal(shape).astype(np.float32)
    for _ in range(3):
        request.infer({0: x})
    wall = []
    nodes: dict[tuple[str, str], float] = defaultdict(float)
    for _ in range(runs):
        t0 = time.perf_counter()
        request.infer({0: x})
        wall.append((time.perf_counter() - t0) * 1e3)
        for info in request.get_profiling_info():
            if info.status == info.Status.EXECUTED:
                op = f"{info.node_type} {info.exec_type}"
                nodes[(info.node_name, op)] += info.real_time.total_seconds() * 1e3 / runs
    by_op: dict[str, dict[str, float]] = defaultdict(lambda: {"ms": 0.0, "n": 0, "macs": 0})
    for (_, op), ms in nodes.items():
        by_op[op]["ms"] += ms
        by_op[op]["n"] += 1
    rows = sorted(((n, o, ms, 0) for (n, o), ms in nodes.items()), key=lambda r: -r[2])
    return OpProfile(str(path), runs, wall, dict(by_op), rows)


def format_profile(prof: OpProfile, top: int = 10) -> str:
    """Per-op-type table (ms, share, GMAC/s) and the ``top`` slowest nodes."""
    from gradgroup.deploy.table import format_table

    kernel = prof.kernel_ms
    lines = [
        f"{Path(prof.model).name}: wall min {min(prof.wall_ms):.1f} / median "
        f"{np.median(prof.wall_ms):.1f} ms, kernels {kernel:.1f} ms per run ({prof.runs} runs)"
    ]
    rows = []
    for op, v in sorted(prof.by_op.items(), key=lambda kv: -kv[1]["ms"]):
        rate = f"{v['macs'] / v['ms'] / 1e6:.1f}" if v["macs"] else ""
        gmac = f"{v['macs'] / 1e9:.3f}" if v["macs"] else ""
        rows.append(
            [op, int(v["n"]), f"{v['ms']:.2f}", f"{100 * v['ms'] / kernel:.0f}%", gmac, rate]
        )
    lines.append(format_table(["op", "nodes", "ms/run", "share", "GMAC", "GMAC/s"], rows))
    slow = [
        [name[-48:], op, f"{ms:.2f}", f"{m / ms / 1e6:.1f}" if m else ""]
        for name, op, ms, m in prof.nodes[:top]
    ]
    lines.append(format_table(["slowest node", "op", "ms/run", "GMAC/s"], slow))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=10, help="slowest nodes to list")
    parser.add_argument(
        "--engine",
        choices=("cpu", "openvino"),
        default="cpu",
        help="cpu: ORT's profiler; openvino: OpenVINO's layer counters",
    )
    parser.add_argument("--precision", default="f32", help="OpenVINO's precision hint")
    parser.add_argument(
        "--config", nargs="*", default=[], metavar="KEY=VALUE",
        help="ORT session config entries, e.g. session.intra_op.allow_spinning=0",
    )  # fmt: skip
    args = parser.parse_args(argv)
    config = dict(kv.split("=", 1) for kv in args.config)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", file=sys.stderr)
    for model in args.models:
        if args.engine == "openvino":
            prof = openvino_profile(model, args.runs, args.threads, args.precision)
        else:
            prof = profile_model(model, args.runs, args.threads, config)
        print(format_profile(prof, args.top))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
