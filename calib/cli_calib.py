"""``gradgroup calib``: int8 quantization for ONNX Runtime, or TIDL compilation, of an fp32 model.

Flags map 1:1 onto :class:`~gradgroup.calib.quantize.CalibConfig` (``--target cpu``) or
:class:`~gradgroup.calib.tidl.TidlConfig` (``--target tidl``); ``--config`` files use their field
names (and ``target``). Heavy imports stay inside ``run`` so ``--help`` is instant and needs
neither torch nor ONNX Runtime.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from gradgroup.deploy.cli_config import add_config_flags, config_from_args
from gradgroup.deploy.fileio import to_json
from gradgroup.deploy.session import PROVIDERS, TARGET_ALIASES, resolve_target

EXAMPLES = """examples:
  gradgroup calib dg4.onnx --out dg4.int8.onnx
  gradgroup calib dg4.onnx --out dg4.int8.onnx --method percentile --max-drop 1.0
  gradgroup calib dg4.onnx --out dg4.p2.onnx --power-of-2          # what TDA4VM's scales cost
  gradgroup calib dg4.onnx --target tidl --soc am68a --tidl-tools ~/tidl_tools --out dg4_tidl/
  SOC=am67a gradgroup calib dg4.int8.onnx --target tidl --deny-list-type Resize \
      --tidl-option advanced_options:high_resolution_optimization=1   # SoC from $SOC
  gradgroup calib dg4.onnx --config calib.yaml --print-config      # settings from a file
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """The flags, with defaults and choices from :class:`~.quantize.CalibConfig` and
    :class:`~.tidl.TidlConfig`."""
    from dataclasses import fields

    from .quantize import METHODS, TYPES, CalibConfig
    from .tidl import SOC_ALIASES, SOCS, TidlConfig, default_soc

    d = CalibConfig()
    tc = {f.name: f.default for f in fields(TidlConfig)}  # no instance: $SOC is checked later
    parser.epilog = EXAMPLES
    parser.add_argument(
        "model", help="fp32 ONNX model from gradgroup export (a QDQ model for TIDL)"
    )
    parser.add_argument(
        "--out",
        help="int8 model (default <model>.int8.onnx), or with --target tidl the package folder "
        "(default <model stem>_tidl_<soc>): artifacts/, model/<model>.onnx and param.yaml",
    )
    parser.add_argument(
        "--set",
        dest="set_path",
        metavar="CALIBSET",
        help="calibration set .npz (default <model stem>.calib.npz, else the model's train "
        "images, else scenes)",
    )
    parser.add_argument(
        "--target",
        choices=(*PROVIDERS, *TARGET_ALIASES),
        default="cpu",
        help="the runtime the model is for, as bench and demo --provider name it: cpu and openvino "
        "get an int8 QDQ model for ONNX Runtime; tidl: TIDL artifacts (ort: the same as cpu)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide progress bars"
    )

    q = parser.add_argument_group("ONNX Runtime quantization (--target cpu or openvino)")
    q.add_argument(
        "--method",
        choices=tuple(METHODS),
        default=d.method,
        help="calibration method (percentile: the best fp32 agreement measured on the zoo)",
    )
    q.add_argument(
        "--percentile", type=float, default=d.percentile, help="percentile for --method percentile"
    )
    q.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=d.per_channel,
        help="per-output-channel weight scales",
    )
    q.add_argument(
        "--activation-type",
        choices=tuple(TYPES),
        default=d.activation_type,
        help="activation type (default: u8 on x86, s8 elsewhere)",
    )
    q.add_argument("--weight-type", choices=tuple(TYPES), default=d.weight_type, help="weight type")
    q.add_argument(
        "--symmetric-activations",
        action="store_true",
        help="zero point at mid-range (ORT then keeps ReLUs as float ops: slower on CPU)",
    )
    q.add_argument(
        "--power-of-2",
        action="store_true",
        help="TDA4VM-style: power-of-two scales, symmetric, per-tensor (see TIDL's cost on CPU)",
    )
    q.add_argument(
        "--ort-rewrites",
        action=argparse.BooleanOptionalAction,
        default=d.ort_rewrites,
        help="rewrite the graph exactly for ORT CPU's int8 kernels (sub-pixel transposed convs, "
        "dense few-group 1x1, shuffles folded; default: on, off for --power-of-2)",
    )
    q.add_argument(
        "--skip-rewrites",
        nargs="+",
        default=list(d.skip_rewrites),
        metavar="NAME",
        help="ORT rewrites to leave out, e.g. depth_to_space_as_transposes (default: none)",
    )
    q.add_argument(
        "--equalize",
        action=argparse.BooleanOptionalAction,
        default=d.equalize,
        help="rescale conv-relu-conv channels from the calibration frames so every ReLU output "
        "uses the 8-bit range evenly (exact in float; default: on with per-channel weights)",
    )
    q.add_argument(
        "--reduce-range",
        action=argparse.BooleanOptionalAction,
        default=d.reduce_range,
        help="7-bit weights (default: on only for u8/s8 on x86 without VNNI)",
    )
    q.add_argument("--op-types", nargs="+", metavar="OP", help="op types to quantize (default all)")
    q.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="NODE",
        help="node names kept in float (default: none)",
    )
    q.add_argument(
        "--calib-frames", type=int, help="use at most N calibration frames (default: all)"
    )

    a = parser.add_argument_group("accuracy (--target cpu or openvino)")
    a.add_argument(
        "--max-drop",
        type=float,
        metavar="X",
        help="keep worst layers in float until the mIoU drop is <= X points (default: none, "
        "the drop is measured, not controlled)",
    )
    a.add_argument(
        "--max-float-layers",
        type=int,
        default=d.max_float_layers,
        help="at most N tries (layers kept in float) in the --max-drop loop",
    )
    a.add_argument(
        "--eval-data",
        default=d.eval_data,
        help="labelled data (val split): model (the data it was trained on), synthetic, "
        "cityscapes:DIR or folder:DIR",
    )
    a.add_argument("--eval-frames", type=int, default=d.eval_frames, help="evaluation frames")
    a.add_argument(
        "--sqnr-frames",
        type=int,
        default=d.sqnr_frames,
        help="calibration frames for per-tensor SQNR",
    )
    a.add_argument(
        "--no-eval", dest="evaluate", action="store_false", help="skip the fp32/int8 evaluation"
    )

    t = parser.add_argument_group("TIDL (--target tidl)")
    t.add_argument(
        "--tidl-tools", metavar="PATH", help="TI's tidl_tools folder (default $TIDL_TOOLS_PATH)"
    )
    t.add_argument(
        "--soc",
        default=default_soc(),
        metavar="SOC",
        help=f"target SoC: {', '.join(SOCS)}, or TI's names {', '.join(SOC_ALIASES)} (default: "
        "$SOC when set, as TI's tools read it, else am68a)",
    )
    t.add_argument(
        "--tensor-bits",
        type=int,
        choices=(8, 16),
        default=tc["tensor_bits"],
        help="TIDL tensor bits",
    )
    t.add_argument(
        "--accuracy-level",
        type=int,
        choices=(0, 1, 9),
        default=tc["accuracy_level"],
        help="TIDL accuracy_level",
    )
    t.add_argument(
        "--calibration-iterations",
        type=int,
        default=tc["calibration_iterations"],
        help="TIDL bias-calibration iterations, advanced_options:calibration_iterations "
        f"(default: {tc['calibration_iterations']}, TI's documented value)",
    )
    t.add_argument("--debug-level", type=int, default=tc["debug_level"], help="TIDL debug_level")
    t.add_argument(
        "--deny-list-type",
        "--deny-list",
        nargs="+",
        default=[],
        metavar="OP",
        help="op types kept off the accelerator: deny_list:layer_type (default: none)",
    )
    t.add_argument(
        "--deny-list-name",
        nargs="+",
        default=[],
        metavar="NODE",
        help="node (or first-output) names kept off the accelerator: deny_list:layer_name "
        "(default: none)",
    )
    t.add_argument(
        "--tidl-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any further TIDL compile option by TI's name, e.g. "
        "advanced_options:high_resolution_optimization=1; overrides the flags above "
        "(repeatable; default: none)",
    )
    add_config_flags(
        parser, CalibConfig, TidlConfig, settings=("target",),
        dests={"nodes_to_exclude": "exclude", "calibration_frames": "calib_frames",
               "options": "tidl_option"},
        scale={"max_drop": 100.0},  # the field holds a fraction, the flag points
    )  # fmt: skip


def _default_out(model: str, target: str, soc: str) -> Path:
    path = Path(model)
    if target == "tidl":
        return path.with_name(f"{path.stem}_tidl_{soc}")
    return path.with_name(f"{path.stem}.int8.onnx")


def calib_config(args: argparse.Namespace):
    """The CalibConfig (``--target cpu``/``openvino``) or TidlConfig (``tidl``) the flags
    describe."""
    if args.target == "tidl":
        from gradgroup.deploy.cli_bench import provider_options

        from .tidl import TidlConfig

        options = {k: _typed(v) for k, v in provider_options(args.tidl_option)}
        renamed = {"calib_frames": "calibration_frames"}
        return config_from_args(TidlConfig, args, renamed, options=options)
    from .quantize import CalibConfig

    # --max-drop is typed in mIoU points; the config holds fractions like every metric.
    max_drop = None if args.max_drop is None else args.max_drop / 100.0
    return config_from_args(CalibConfig, args, {"exclude": "nodes_to_exclude"}, max_drop=max_drop)


def _typed(value: str) -> int | float | str:
    """A ``--tidl-option`` value as TI's examples write it: a number where it reads as one."""
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        return number if math.isfinite(number) else value
    return value


def resolved_config(args: argparse.Namespace) -> dict:
    """``--print-config``: ``target`` and the settings of that target's config."""
    from dataclasses import asdict

    return {"target": resolve_target(args.target), **asdict(calib_config(args))}


def _run_tidl(args: argparse.Namespace) -> int:
    from .tidl import compile_tidl

    cfg = calib_config(args)  # checks the SoC ($SOC included) before the default --out uses it
    out = Path(args.out) if args.out else _default_out(args.model, args.target, cfg.soc)
    result = compile_tidl(args.model, out, cfg)
    print(to_json(result.to_dict(), indent=2) if args.json else result.summary())
    return 0


def run(args: argparse.Namespace) -> int:
    if args.target == "tidl":
        return _run_tidl(args)
    out = Path(args.out) if args.out else _default_out(args.model, args.target, args.soc)

    from .accuracy import format_report
    from .quantize import quantize

    cfg = calib_config(args)
    result = quantize(args.model, out, cfg)
    if args.json:
        print(to_json(result.to_dict(), indent=2))
        return 0
    if result.accuracy:
        print(f"accuracy on {result.accuracy.eval_data}")
        print(format_report(result.accuracy.report, result.sqnr))
        if result.float_nodes:
            print(f"\nkept in float: {', '.join(result.float_nodes)}")
        print()
    rt = result.runtime
    print(
        f"ONNX Runtime CPU runs {rt['int8_ops']} int8 kernels, {rt['float_islands']} float "
        f"island(s), {rt['transposes']} layout Transpose(s)"
    )
    print(result.summary())
    return 0
