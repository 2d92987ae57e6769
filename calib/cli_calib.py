"""``gradgroup calib``: int8 quantization for ONNX Runtime, or TIDL compilation, of an fp32 model.

Flags map 1:1 onto :class:`~gradgroup.calib.quantize.CalibConfig` (``--target ort``) or
:class:`~gradgroup.calib.tidl.TidlConfig` (``--target tidl``). Heavy imports stay inside ``run``
so ``--help`` is instant and needs neither torch nor ONNX Runtime.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradgroup.deploy.fileio import to_json

EXAMPLES = """examples:
  gradgroup calib dg4.onnx --out dg4.int8.onnx
  gradgroup calib dg4.onnx --out dg4.int8.onnx --method percentile --max-drop 1.0
  gradgroup calib dg4.onnx --out dg4.p2.onnx --power-of-2          # what TDA4VM's scales cost
  gradgroup calib dg4.onnx --target tidl --soc am68a --tidl-tools ~/tidl_tools --out dg4_tidl/
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument(
        "model", help="fp32 ONNX model from gradgroup export (a QDQ model for TIDL)"
    )
    parser.add_argument(
        "--out", help="int8 model (default <model>.int8.onnx) or TIDL artifacts folder"
    )
    parser.add_argument(
        "--set",
        dest="set_path",
        metavar="CALIBSET",
        help="calibration set .npz (default <model stem>.calib.npz, else scenes)",
    )
    parser.add_argument(
        "--target",
        choices=("ort", "tidl"),
        default="ort",
        help="ort: int8 QDQ model for ONNX Runtime; tidl: TIDL artifacts",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")

    q = parser.add_argument_group("ONNX Runtime quantization (--target ort)")
    q.add_argument(
        "--method",
        choices=("minmax", "entropy", "percentile"),
        default="percentile",
        help="calibration method (percentile: best fp32 agreement on the zoo, bench/NOTES.md)",
    )
    q.add_argument(
        "--percentile", type=float, default=99.99, help="percentile for --method percentile"
    )
    q.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-output-channel weight scales",
    )
    q.add_argument(
        "--activation-type",
        choices=("u8", "s8"),
        default=None,
        help="activation type (default: u8 on x86, s8 elsewhere)",
    )
    q.add_argument("--weight-type", choices=("s8", "u8"), default="s8", help="weight type")
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
        default=None,
        help="rewrite the graph exactly for ORT CPU's int8 kernels (sub-pixel transposed convs, "
        "dense few-group 1x1, shuffles folded); off for --power-of-2",
    )
    q.add_argument(
        "--reduce-range",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="7-bit weights (default: on only for u8/s8 on x86 without VNNI)",
    )
    q.add_argument("--op-types", nargs="+", metavar="OP", help="op types to quantize (default all)")
    q.add_argument(
        "--exclude", nargs="+", default=[], metavar="NODE", help="node names kept in float"
    )
    q.add_argument("--calib-frames", type=int, help="use at most N calibration frames")

    a = parser.add_argument_group("accuracy (--target ort)")
    a.add_argument(
        "--max-drop",
        type=float,
        metavar="X",
        help="keep worst layers in float until the mIoU drop is <= X points",
    )
    a.add_argument(
        "--max-float-layers",
        type=int,
        default=8,
        help="at most N tries (layers kept in float) in the --max-drop loop",
    )
    a.add_argument(
        "--eval-data",
        default="synthetic",
        help="labelled data: synthetic, cityscapes:DIR or folder:DIR",
    )
    a.add_argument("--eval-frames", type=int, default=16, help="evaluation frames")
    a.add_argument(
        "--sqnr-frames", type=int, default=4, help="calibration frames for per-tensor SQNR"
    )
    a.add_argument(
        "--no-eval", dest="evaluate", action="store_false", help="skip the fp32/int8 evaluation"
    )

    t = parser.add_argument_group("TIDL (--target tidl)")
    t.add_argument(
        "--tidl-tools", metavar="PATH", help="TI's tidl_tools folder (default $TIDL_TOOLS_PATH)"
    )
    t.add_argument(
        "--soc", choices=("am68a", "am69a", "am62a", "tda4vm"), default="am68a", help="target SoC"
    )
    t.add_argument("--tensor-bits", type=int, choices=(8, 16), default=8, help="TIDL tensor bits")
    t.add_argument(
        "--accuracy-level", type=int, choices=(0, 1, 9), default=1, help="TIDL accuracy_level"
    )
    t.add_argument(
        "--calibration-iterations", type=int, default=5, help="TIDL bias-calibration iterations"
    )
    t.add_argument("--debug-level", type=int, default=0, help="TIDL debug_level")
    t.add_argument(
        "--deny-list", nargs="+", default=[], metavar="OP", help="op types kept off the accelerator"
    )


def _default_out(model: str, target: str, soc: str) -> Path:
    path = Path(model)
    if target == "tidl":
        return path.with_name(f"{path.stem}_tidl_{soc}")
    return path.with_name(f"{path.stem}.int8.onnx")


def _run_tidl(args: argparse.Namespace, out: Path) -> int:
    from .tidl import TidlConfig, compile_tidl

    cfg = TidlConfig(
        tidl_tools=args.tidl_tools,
        soc=args.soc,
        set_path=args.set_path,
        tensor_bits=args.tensor_bits,
        accuracy_level=args.accuracy_level,
        calibration_frames=args.calib_frames,
        calibration_iterations=args.calibration_iterations,
        debug_level=args.debug_level,
        deny_list=tuple(args.deny_list),
    )
    result = compile_tidl(args.model, out, cfg)
    print(to_json(result.to_dict(), indent=2) if args.json else result.summary())
    return 0


def run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else _default_out(args.model, args.target, args.soc)
    if args.target == "tidl":
        return _run_tidl(args, out)

    from .accuracy import AccuracyReport, format_report
    from .quantize import CalibConfig, quantize

    cfg = CalibConfig(
        set_path=args.set_path,
        method=args.method,
        percentile=args.percentile,
        per_channel=args.per_channel,
        activation_type=args.activation_type,
        weight_type=args.weight_type,
        symmetric_activations=args.symmetric_activations,
        power_of_2=args.power_of_2,
        ort_rewrites=args.ort_rewrites,
        reduce_range=args.reduce_range,
        op_types=tuple(args.op_types) if args.op_types else None,
        nodes_to_exclude=tuple(args.exclude),
        calib_frames=args.calib_frames,
        max_drop=args.max_drop,
        max_float_layers=args.max_float_layers,
        evaluate=args.evaluate,
        eval_data=args.eval_data,
        eval_frames=args.eval_frames,
        sqnr_frames=args.sqnr_frames,
    )
    result = quantize(args.model, out, cfg)
    if args.json:
        print(to_json(result.to_dict(), indent=2))
        return 0
    if result.accuracy:
        acc = result.accuracy
        report = AccuracyReport(acc["fp32_miou"], acc["int8_miou"], acc["agreement"])
        print(f"accuracy on {acc['eval_data']}")
        print(format_report(report, result.sqnr))
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
