"""``gradgroup bench``: latency and energy of ONNX models against the fps budget.

Flags map 1:1 onto :class:`gradgroup.deploy.bench.BenchConfig` (``--config`` files use its field
names); heavy imports happen in ``run``.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  gradgroup bench dg4.onnx                                 # 10 s per model, 2 threads, CPU
  gradgroup bench erfnet.onnx dg4.onnx dg4.int8.onnx --runs 200 --json-out bench.json
  gradgroup bench erfnet.onnx dg4.onnx --csv bench.csv --fail-over-budget   # CI gate: exit 3
  gradgroup bench dg4.onnx --runs 100 --json > bench.json  # the report on stdout
  gradgroup bench dg4.onnx --config bench.yaml --print-config   # settings from a file
  gradgroup bench dg4.int8.onnx --calib dg4.calib.npz --frame-size 1024x2048 --plot bench.png
  gradgroup bench dg4.int8.onnx --provider tidl --artifacts dg4_tidl/   # on the board
  gradgroup bench dg4.onnx erfnet.onnx --provider tidl --artifacts tidl/  # tidl/dg4/, tidl/erfnet/
  gradgroup bench dg4.int8.onnx --provider openvino        # Intel CPU, gradgroup[openvino]
  gradgroup bench erfnet.onnx dg4.onnx --estimate tda4vm        # offline TDA4VM estimate, no timing
  gradgroup bench dg4.onnx --estimate all --tensor-bits 16 --json-out est.json  # every SoC
  gradgroup bench dg4.onnx --provider tidl --artifacts dg4_tidl/ --estimate tda4vm  # side by side
"""


def add_runtime_flags(parser: argparse.ArgumentParser, artifacts_help: str) -> None:
    """The ONNX Runtime flags of every command that runs a model: threads and provider."""
    from .session import PROVIDERS

    parser.add_argument(
        "--threads", type=int, default=2, help="ORT intra-op threads (0: ORT picks)"
    )
    parser.add_argument(
        "--provider",
        choices=PROVIDERS,
        default="cpu",
        help="execution provider: cpu (ORT's kernels), tidl (TI's onnxruntime on the board), "
        'openvino (Intel CPUs; pip install "gradgroup[openvino]")',
    )
    parser.add_argument("--artifacts", metavar="DIR", help=f"{artifacts_help} (default: none)")
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
    add_runtime_flags(
        parser,
        "TIDL package from gradgroup calib --target tidl, or its artifacts/ folder; with several "
        "models a folder holding one per model, named after its stem",
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
        help="JSON with mIoU per model (eval report) for the trade-off chart (default: the "
        "mIoU in each model's metadata, if any)",
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
        "all); alone it times nothing, with --provider tidl it sits beside the measurement "
        "(default: none)",
    )
    parser.add_argument(
        "--tensor-bits", type=int, default=8, help="TIDL tensor_bits of the estimate: 8 or 16"
    )
    parser.add_argument(
        "--fail-over-budget",
        action="store_true",
        help="exit with code 3, naming the models, when a model's whole-frame p99 misses the "
        "budget (with --estimate alone: when an estimate misses it even at its low end); "
        "without it a missed budget is a result (exit 0)",
    )
    out = parser.add_argument_group("output (the tables go to stdout unless --json)")
    out.add_argument(
        "--json", action="store_true", help="print the full report as JSON on stdout instead"
    )
    out.add_argument(
        "--json-out",
        metavar="FILE",
        help="write the full report (with samples) as JSON (default: not written)",
    )
    out.add_argument(
        "--csv",
        metavar="FILE",
        help="write one row per model: model, precision, frame_size, p50_ms, p99_ms, fps, "
        "frame_p50_ms, frame_p99_ms, gmacs, params, miou, energy_*_mj, and on TIDL "
        "edgeai-benchmark's num_subgraphs, infer_time_core_ms, ddr_transfer_mb (default: not "
        "written)",
    )
    out.add_argument(
        "--markdown", metavar="FILE", help="write the tables as markdown (default: not written)"
    )
    out.add_argument(
        "--plot",
        metavar="FILE",
        help="write a PNG chart (needs matplotlib; default: not written)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide progress bars"
    )
    from .cli_config import add_config_flags

    add_config_flags(
        parser, "gradgroup.deploy.bench:BenchConfig",
        settings=("estimate", "tensor_bits", "fail_over_budget"),
        dests={"tidl_options": "tidl_option", "ov_options": "ov_option"},
    )  # fmt: skip


def bench_config(args: argparse.Namespace):
    """The :class:`~.bench.BenchConfig` the flags (and a ``--config`` file) describe."""
    from .bench import BenchConfig
    from .cli_config import config_from_args
    from .preprocess import parse_size

    frame_size = parse_size(args.frame_size) if args.frame_size else None
    return config_from_args(BenchConfig, args, **runtime_settings(args), frame_size=frame_size)


def resolved_config(args: argparse.Namespace) -> dict:
    """``--print-config``: the benchmark's settings by config field name."""
    from dataclasses import asdict

    settings = {k: getattr(args, k) for k in ("estimate", "tensor_bits", "fail_over_budget")}
    if args.estimate:
        from .estimate_report import parse_socs

        parse_socs(args.estimate)
    return {**asdict(bench_config(args)), **settings}


def run(args: argparse.Namespace) -> int:
    """Benchmark, print the tables (or the JSON report), write the requested files.

    A missed budget is a result (0), unless ``--fail-over-budget``: then BudgetError (exit 3).
    """
    from .bench import benchmark, system_info
    from .bench_report import (
        format_markdown_report,
        format_report,
        report_dict,
        write_csv,
        write_json,
        write_text,
    )  # fmt: skip
    from .errors import BudgetError
    from .fileio import check_writable, to_json

    socs = []
    if args.estimate:
        from .estimate_report import parse_socs

        socs = parse_socs(args.estimate)  # an unknown SoC fails before anything runs
        if args.provider != "tidl":
            return _estimate_only(args, socs)
    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()  # fail before minutes of benchmarking, not after
    outputs = (("--json-out", args.json_out), ("--csv", args.csv), ("--markdown", args.markdown),
               ("--plot", args.plot))  # fmt: skip
    for flag, path in outputs:
        if path:
            check_writable(path, flag)
    cfg = bench_config(args)
    rows = benchmark(args.models, cfg)
    info = system_info(cfg)
    extra = {}
    if socs:
        from .estimate_report import estimate_models, side_by_side

        estimates = estimate_models(args.models, socs, args.tensor_bits)
        extra["estimates"] = [e.to_dict() for e in estimates]
    if args.json:
        print(to_json({**report_dict(rows, info, cfg), **extra}, indent=2))
    else:
        print(format_report(rows, info))
        if socs:
            print("\n" + side_by_side(estimates, {r.model: r for r in rows}))
    saved = []
    if args.json_out:
        saved.append(str(write_json(args.json_out, rows, info, cfg, extra)))
    if args.csv:
        saved.append(str(write_csv(args.csv, rows, info)))
    if args.markdown:
        saved.append(str(write_text(args.markdown, format_markdown_report(rows, info) + "\n")))
    if args.plot:
        from .plots import plot_bench

        saved.append(str(plot_bench(rows, info, args.plot)))
    passed = sum(r.frame.passed for r in rows)
    fastest = min(rows, key=lambda r: r.frame.p50)
    _done(
        args,
        f"bench done: {len(rows)} model(s), {passed} within {cfg.budget_ms:.1f} ms at p99, "
        f"fastest {fastest.name} ({fastest.frame.p50:.1f} ms/frame p50)"
        + (f", saved {', '.join(saved)}" if saved else ""),
    )
    over = [r for r in rows if not r.frame.passed]
    if args.fail_over_budget and over:
        raise BudgetError(
            f"{len(over)} of {len(rows)} model(s) over the {cfg.budget_ms:.1f} ms budget "
            f"({cfg.fps_target:g} fps) at whole-frame p99: "
            + ", ".join(f"{r.name} {r.frame.p99:.1f} ms" for r in over)
        )
    return 0


def _done(args: argparse.Namespace, line: str) -> None:
    """The closing line: on stdout, or on stderr when stdout carries the JSON report."""
    if args.json:
        log.info("%s", line)
    else:
        print(line)


def _estimate_only(args: argparse.Namespace, socs: list[str]) -> int:
    """``--estimate`` without a board: print (and save) the estimate, time nothing."""
    from .bench_report import ESTIMATE_CSV_COLUMNS, estimate_csv_row, format_csv
    from .errors import BudgetError, InputError
    from .estimate import FIT_ERROR
    from .estimate_report import estimate_models, format_estimates
    from .fileio import check_writable, to_json, write_text_atomic

    if args.plot:
        raise InputError("--plot charts measurements; --estimate alone measures nothing "
                         "(drop --plot, or add --provider tidl on a board)")  # fmt: skip
    for flag, path in (("--json-out", args.json_out), ("--csv", args.csv),
                       ("--markdown", args.markdown)):  # fmt: skip
        if path:
            check_writable(path, flag)
    rows = estimate_models(args.models, socs, args.tensor_bits)
    report = {"label": "estimate", "fps_target": args.fps_target, "tensor_bits":
              args.tensor_bits, "fit_error_pct": FIT_ERROR,
              "estimates": [r.to_dict() for r in rows]}  # fmt: skip
    if args.json:
        print(to_json(report, indent=2))
    else:
        print(format_estimates(rows, args.fps_target))
    saved = []
    if args.json_out:
        saved.append(str(write_text_atomic(args.json_out, to_json(report, indent=2) + "\n")))
    if args.csv:
        cells = [estimate_csv_row(r, args.fps_target) for r in rows]
        saved.append(str(write_text_atomic(args.csv, format_csv(ESTIMATE_CSV_COLUMNS, cells))))
    if args.markdown:
        text = format_estimates(rows, args.fps_target, markdown=True) + "\n"
        saved.append(str(write_text_atomic(args.markdown, text)))
    budget = 1000 / args.fps_target
    meets = sum(r.estimate.meets(args.fps_target) == "yes" for r in rows)
    _done(
        args,
        f"estimate done: {len(rows)} model x SoC, {meets} within {budget:.1f} ms "
        "even at the top of the error band" + (f", saved {', '.join(saved)}" if saved else ""),
    )
    over = [r for r in rows if r.estimate.meets(args.fps_target) == "no"]
    if args.fail_over_budget and over:
        raise BudgetError(
            f"{len(over)} of {len(rows)} estimate(s) over the {budget:.1f} ms budget even at "
            "the low end of the error band: "
            + ", ".join(f"{r.name} on {r.estimate.soc} {r.estimate.low_ms:.1f} ms" for r in over)
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
