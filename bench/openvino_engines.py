"""ONNX Runtime's CPU kernels against OpenVINO on the same ONNX files, side by side (issue 15).

Engines, each at 2 threads unless ``--threads``:

- ``ort-cpu``: ``Segmenter(provider="cpu")``, what gradgroup ships by default;
- ``ort-openvino``: ``Segmenter(provider="openvino")``, the OpenVINO plugin inside onnxruntime
  (``gradgroup[openvino]``; its devices are Intel ones only, so it is absent on other CPUs);
- ``ov-f32`` / ``ov-default``: OpenVINO's own runtime (``pip install openvino``; measured here,
  not a gradgroup dependency) with ``INFERENCE_PRECISION_HINT=f32`` and with the machine's
  default precision (bf16 on CPUs with AVX512-BF16 or AMX).

For every model: the minimum over ``--rounds`` interleaved rounds of the median inference time
of ``--runs`` runs (load only adds time), GMAC/s from the model's MACs, and the argmax agreement
with ``ort-cpu`` on ``--scenes`` procedural scenes (the accuracy cost of the engine, measured).
An engine that cannot run here is one line in the output, not a failure.

    python bench/openvino_engines.py models/deploy/*.onnx --out bench/openvino
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]  # model input tensor -> (H, W) class ids


def ort_runner(path: Path, provider: str, threads: int) -> tuple[Runner, Callable]:
    """(infer, prepare) for a Segmenter on ``provider``."""
    from gradgroup.deploy.runtime import Segmenter

    seg = Segmenter(path, provider=provider, threads=threads)
    name = seg.input_name

    def infer(x: np.ndarray) -> np.ndarray:
        return seg.class_ids(seg.session.run(None, {name: x})[0])

    return infer, seg


def openvino_runner(path: Path, threads: int, precision: str | None, seg) -> Runner:
    """OpenVINO's own runtime on the ONNX file; ``precision`` None keeps the CPU's default."""
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(threads)}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()

    def infer(x: np.ndarray) -> np.ndarray:
        request.infer({0: x})
        return seg.class_ids(request.get_output_tensor(0).data)

    return infer


def engines(path: Path, threads: int) -> tuple[dict[str, Runner | str], object]:
    """Every engine that runs here as a runner; the others as the one-line reason."""
    from gradgroup.deploy.errors import GradgroupError, first_line

    cpu, seg = ort_runner(path, "cpu", threads)
    out: dict[str, Runner | str] = {"ort-cpu": cpu}
    try:
        out["ort-openvino"] = ort_runner(path, "openvino", threads)[0]
    except GradgroupError as exc:
        out["ort-openvino"] = str(exc)
    for name, precision in (("ov-f32", "f32"), ("ov-default", None)):
        try:
            out[name] = openvino_runner(path, threads, precision, seg)
        except ImportError:
            out[name] = "OpenVINO's runtime is not installed (pip install openvino)"
        except Exception as exc:  # OpenVINO refuses the graph: say why, measure the rest
            out[name] = f"OpenVINO cannot compile {path.name}: {first_line(exc)}"
    return out, seg


def median_ms(run: Runner, x: np.ndarray, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run(x)
        times.append(1000 * (time.perf_counter() - t0))
    return float(np.median(times))


def measure(paths: list[Path], args: argparse.Namespace) -> dict:
    """Latency rounds and agreement for every (model, engine)."""
    from gradgroup.deploy.graph.stats import graph_stats
    from gradgroup.deploy.scenes import render_scene

    built = {p: engines(p, args.threads) for p in paths}
    inputs, scenes, result = {}, {}, {}
    for p, (runners, seg) in built.items():
        size = seg.meta.preprocess.size
        frames = [render_scene(1000 + i, size)[0] for i in range(args.scenes)]
        scenes[p] = [seg.prepare(f) for f in frames]
        inputs[p] = scenes[p][0]
        macs = graph_stats(p, input_size=size).macs
        result[p.name] = {"macs": macs, "engines": {}}
        for name, run in runners.items():
            if isinstance(run, str):
                result[p.name]["engines"][name] = {"skipped": run}
                continue
            for _ in range(3):
                run(inputs[p])  # warm-up (OpenVINO compiles lazily on some paths)
            ref = [built[p][0]["ort-cpu"](x) for x in scenes[p]]
            same = sum(int((run(x) == r).sum()) for x, r in zip(scenes[p], ref, strict=True))
            total = sum(r.size for r in ref)
            result[p.name]["engines"][name] = {"agreement": same / total, "rounds": []}
    for r in range(args.rounds):
        order = list(built.items()) if r % 2 == 0 else list(built.items())[::-1]
        for p, (runners, _) in order:
            names = [n for n, run in runners.items() if not isinstance(run, str)]
            for name in names if r % 2 == 0 else names[::-1]:
                ms = median_ms(runners[name], inputs[p], args.runs)
                result[p.name]["engines"][name]["rounds"].append(ms)
        print(f"  round {r + 1}/{args.rounds}, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    for entry in result.values():
        for e in entry["engines"].values():
            if "rounds" in e:
                e["min_ms"] = min(e["rounds"])
                e["gmac_per_s"] = entry["macs"] / e["min_ms"] / 1e6
    return result


def table(result: dict) -> str:
    """Markdown: one row per model, per engine min ms / GMAC/s / agreement with ort-cpu."""
    names = ["ort-cpu", "ort-openvino", "ov-f32", "ov-default"]
    lines = [
        "| model | GMACs | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for model, entry in result.items():
        cells = []
        for n in names:
            e = entry["engines"].get(n, {})
            if "min_ms" not in e:
                cells.append("-")
                continue
            cpu = entry["engines"]["ort-cpu"]["min_ms"]
            cells.append(
                f"{e['min_ms']:.1f} ms ({cpu / e['min_ms']:.2f}x, {e['gmac_per_s']:.0f} GMAC/s, "
                f"agree {100 * e['agreement']:.2f} %)"
            )
        lines.append(f"| {model} | {entry['macs'] / 1e9:.2f} | " + " | ".join(cells) + " |")
    skipped = {
        n: e["skipped"]
        for entry in result.values()
        for n, e in entry["engines"].items()
        if "skipped" in e
    }
    lines += [f"\n{n}: not measured: {why}" for n, why in skipped.items()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path, help="ONNX models exported by gradgroup")
    parser.add_argument("--out", type=Path, default=Path("runs/openvino"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--scenes", type=int, default=8, help="scenes for the agreement")
    args = parser.parse_args()
    from gradgroup.deploy.bench import cpu_model

    result = measure(args.models, args)
    header = (
        f"CPU {cpu_model()}, {args.threads} threads, min over {args.rounds} interleaved rounds "
        f"of the median of {args.runs} runs (inference only); x = speed-up over ort-cpu; "
        f"agreement of argmax with ort-cpu on {args.scenes} scenes; load at the end "
        f"{os.getloadavg()[0]:.1f}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    text = header + "\n\n" + table(result) + "\n"
    (args.out / "engines.md").write_text(text)
    (args.out / "engines.json").write_text(
        json.dumps({"header": header, "models": result}, indent=2)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
