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
  gradgroup bench dg4.int8.onnx --provider openvino        # Intel CPU, gradgroup[openvino]
  gradgroup bench erfnet.onnx dg4.onnx --estimate tda4vm        # offline TDA4VM estimate, no timing
  gradgroup bench dg4.onnx --estimate all --tensor-bits 16 --json est.json   # every SoC, 16-bit
  gradgroup bench dg4.onnx --provider tidl --artifacts art/dg4 --estimate tda4vm  # side by side
"""


def add_runtime_flags(parser: argparse.ArgumentParser, artifacts_help: str) -> None:
    """The ONNX Runtime flags of every command that runs a model: threads and provider."""
    from .session import PROVIDERS

    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads")
    parser.add_argument(
        "--provider",
        choices=PROVIDERS,
        default="cpu",
        help="execution provider: cpu (ORT's kernels), tidl (TI's onnxruntime on the board), "
        'openvino (Intel CPUs; pip install "gradgroup[openvino]")',
    )
    parser.add_argument("--artifacts", help=artifacts_help)
    parser.add_argument(
        "--tidl-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TIDL provider option by TI's name, e.g. debug_level=1 (repeatable; default: none)",
    )
    parser.add_argument(
        "--ov-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="OpenVINO CPU property by OpenVINO's name, e.g. INFERENCE_PRECISION_HINT=bf16 "
        "(repeatable; default: f32 precision, LATENCY hint, --threads threads)",
    )


def runtime_settings(args: argparse.Namespace) -> dict:
    """The runtime flags as the keyword arguments every deploy config shares."""
    return {
        "provider": args.provider,
        "threads": args.threads,
        "artifacts": args.artifacts,
        "tidl_options": provider_options(args.tidl_option),
        "ov_options": provider_options(args.ov_option, "--ov-option"),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the bench flags."""
    parser.epilog = EXAMPLES
    parser.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="ONNX models; the first is the baseline of the ratio columns",
    )
    add_runtime_flags(parser, "TIDL artifacts folder (one sub-folder per model)")
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
    parser.add_argument(
        "--estimate",
        metavar="SOC",
        help="offline TIDL latency estimate on tda4vm|am68a|am69a|am62a (comma-separated, or "
        "all); alone it times nothing, with --provider tidl it sits beside the measurement",
    )
    parser.add_argument(
        "--tensor-bits", type=int, default=8, help="TIDL tensor_bits of the estimate: 8 or 16"
    )
    parser.add_argument("--json", metavar="FILE", help="write the full report (with samples)")
    parser.add_argument("--markdown", metavar="FILE", help="write the tables as markdown")
    parser.add_argument("--plot", metavar="FILE", help="write a PNG chart (needs matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Benchmark, print the tables, write the requested files (a missed budget is a result: 0)."""
    from .bench import BenchConfig, benchmark, system_info
    from .bench_report import format_markdown_report, format_report, write_json, write_text
    from .fileio import check_writable
    from .preprocess import parse_size

    socs = []
    if args.estimate:
        from .estimate_report import parse_socs

        socs = parse_socs(args.estimate)  # an unknown SoC fails before anything runs
        if args.provider != "tidl":
            return _estimate_only(args, socs)
    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()  # fail before minutes of benchmarking, not after
    for flag, path in (("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot)):
        if path:
            check_writable(path, flag)
    cfg = BenchConfig(
        **runtime_settings(args), runs=args.runs,
        duration=args.duration, warmup=args.warmup, fps_target=args.fps_target, calib=args.calib,
        frame_size=parse_size(args.frame_size) if args.frame_size else None,
        sram_mb=args.sram_mb, accuracy=args.accuracy,
        graph_optimization=args.graph_optimization, spinning=args.spinning,
        progress=not args.no_progress,
    )  # fmt: skip
    rows = benchmark(args.models, cfg)
    info = system_info(cfg)
    print(format_report(rows, info))
    extra = {}
    if socs:
        from .estimate_report import estimate_models, side_by_side

        estimates = estimate_models(args.models, socs, args.tensor_bits)
        print("\n" + side_by_side(estimates, {r.model: r for r in rows}))
        extra["estimates"] = [e.to_dict() for e in estimates]
    saved = []
    if args.json:
        saved.append(str(write_json(args.json, rows, info, cfg, extra)))
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


def _estimate_only(args: argparse.Namespace, socs: list[str]) -> int:
    """``--estimate`` without a board: print (and save) the estimate, time nothing."""
    from .errors import InputError
    from .estimate import FIT_ERROR
    from .estimate_report import estimate_models, format_estimates
    from .fileio import check_writable, to_json, write_text_atomic

    if args.plot:
        raise InputError("--plot charts measurements; --estimate alone measures nothing "
                         "(drop --plot, or add --provider tidl on a board)")  # fmt: skip
    for flag, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path:
            check_writable(path, flag)
    rows = estimate_models(args.models, socs, args.tensor_bits)
    print(format_estimates(rows, args.fps_target))
    saved = []
    if args.json:
        report = {"label": "estimate", "fps_target": args.fps_target, "tensor_bits":
                  args.tensor_bits, "fit_error_pct": FIT_ERROR,
                  "estimates": [r.to_dict() for r in rows]}  # fmt: skip
        saved.append(str(write_text_atomic(args.json, to_json(report, indent=2) + "\n")))
    if args.markdown:
        text = format_estimates(rows, args.fps_target, markdown=True) + "\n"
        saved.append(str(write_text_atomic(args.markdown, text)))
    meets = sum(r.estimate.meets(args.fps_target) == "yes" for r in rows)
    print(
        f"estimate done: {len(rows)} model x SoC, {meets} within {1000 / args.fps_target:.1f} ms "
        "even at the top of the error band" + (f", saved {', '.join(saved)}" if saved else "")
    )
    return 0


def provider_options(items: list[str], flag: str = "--tidl-option") -> tuple[tuple[str, str], ...]:
    """``["k=v", ...]`` -> ``(("k", "v"), ...)``; InputError names a malformed item."""
    from .errors import InputError

    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"{flag} {item!r} is not KEY=VALUE, e.g. NAME=1")
        out.append((key.strip(), value.strip()))
    return tuple(out)
