"""``gradgroup bench``: latency and energy of ONNX models against the fps budget.

Flags map 1:1 onto :class:`gradgroup.deploy.bench.BenchConfig`; heavy imports happen in ``run``.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  gradgroup bench dg4.onnx                                 # 10 s per model, 2 threads, CPU
  gradgroup bench erfnet.onnx dg4.onnx dg4.int8.onnx --runs 200 --json bench.json
  gradgroup bench dg4.int8.onnx --calib dg4.calib.npz --frame-size 1024x2048 --plot bench.png
  gradgroup bench dg4.onnx --provider tidl --artifacts artifacts/dg4   # on the board
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the bench flags."""
    parser.epilog = EXAMPLES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="ONNX models; the first is the baseline of the ratio columns",
    )
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads (default 2)")
    parser.add_argument(
        "--provider",
        choices=("cpu", "tidl"),
        default="cpu",
        help="execution provider (default cpu; tidl needs TI's onnxruntime)",
    )
    parser.add_argument("--artifacts", help="TIDL artifacts folder (one sub-folder per model)")
    parser.add_argument(
        "--tidl-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TIDL provider option by TI's name, e.g. debug_level=1 (repeatable)",
    )
    parser.add_argument("--runs", type=int, help="timed frames per model (default: use --duration)")
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="timed seconds per model when --runs is not given (default 10)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds (default 2)")
    parser.add_argument(
        "--fps-target",
        type=float,
        default=30.0,
        help="frame-rate budget; budget = 1000/fps ms (default 30)",
    )
    parser.add_argument(
        "--calib",
        help="calibration set (.npz) for input frames (default: procedural street scenes)",
    )
    parser.add_argument(
        "--frame-size",
        metavar="HxW",
        help="camera frame size, e.g. 1024x2048 (default: the model's input size)",
    )
    parser.add_argument(
        "--sram-mb",
        type=float,
        default=8.0,
        help="on-chip SRAM budget of the energy estimate (default 8, TDA4VM MSMC)",
    )
    parser.add_argument(
        "--accuracy",
        metavar="FILE",
        help="JSON with mIoU per model (eval report) for the trade-off chart",
    )
    parser.add_argument(
        "--graph-optimization",
        default="all",
        choices=("all", "extended", "basic", "disabled"),
        help="ORT graph optimization level (default all)",
    )
    parser.add_argument(
        "--spinning",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ORT threads busy-wait between kernels (default: ORT's; --no-spinning helps on "
        "shared machines)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the full report (with samples)")
    parser.add_argument("--markdown", metavar="FILE", help="write the tables as markdown")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG chart (needs matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Benchmark, print the tables, write the requested files (a missed budget is a result: 0)."""
    from .bench import BenchConfig, benchmark, system_info
    from .bench_report import format_markdown_report, format_report, write_json, write_text
    from .preprocess import parse_size

    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()  # fail before minutes of benchmarking, not after
    cfg = BenchConfig(
        threads=args.threads, provider=args.provider, artifacts=args.artifacts, runs=args.runs,
        duration=args.duration, warmup=args.warmup, fps_target=args.fps_target, calib=args.calib,
        frame_size=parse_size(args.frame_size) if args.frame_size else None,
        sram_mb=args.sram_mb, accuracy=args.accuracy,
        graph_optimization=args.graph_optimization, spinning=args.spinning,
        tidl_options=_pairs(args.tidl_option),
        progress=not args.no_progress,
    )  # fmt: skip
    rows = benchmark(args.models, cfg)
    info = system_info(cfg)
    print(format_report(rows, info))
    saved = []
    if args.json:
        saved.append(str(write_json(args.json, rows, info, cfg)))
    if args.markdown:
        saved.append(str(write_text(args.markdown, format_markdown_report(rows, info) + "\n")))
    if args.plot:
        from .plots import plot_bench

        saved.append(str(plot_bench(rows, info, args.plot)))
    passed = sum(r.frame.passed for r in rows)
    fastest = min(rows, key=lambda r: r.frame.p50)
    print(
        f"bench done: {len(rows)} model(s), {passed} within {cfg.budget_ms:.1f} ms at p99, "
        f"fastest {fastest.name} ({fastest.frame.p50:.1f} ms/frame p50)"
        + (f", saved {', '.join(saved)}" if saved else "")
    )
    return 0


def _pairs(items: list[str]) -> tuple[tuple[str, str], ...]:
    """``["k=v", ...]`` -> ``(("k", "v"), ...)``; InputError names a malformed item."""
    from .errors import InputError

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--tidl-option {item!r} is not KEY=VALUE, e.g. debug_level=1")
        out.append((key.strip(), value.strip()))
    return tuple(out)
