"""``gradgroup export``: checkpoint -> verified ONNX with true grouped convs + calibration set."""

from __future__ import annotations

import argparse

from gradgroup.deploy.fileio import to_json
from gradgroup.deploy.preprocess import parse_size

EXAMPLES = """examples:
  gradgroup export runs/dg4/best.pt --out dg4.onnx
  gradgroup export runs/dg4/best.pt --out dg4.tidl.onnx --target tidl --input uint8 --output argmax
  gradgroup export runs/dg4/best.pt --out dg4.onnx --calib-data images:frames/ --calib-frames 128
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("checkpoint", help="checkpoint written by gradgroup train")
    parser.add_argument("--out", required=True, help="ONNX file to write (.onnx)")
    parser.add_argument("--size", help="input size HxW; omitted: the checkpoint's")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, 11..18")
    parser.add_argument(
        "--input",
        choices=("float", "uint8"),
        default="float",
        help="float: normalized input; uint8: raw RGB, the graph normalizes",
    )
    parser.add_argument(
        "--output",
        choices=("logits", "argmax"),
        default="logits",
        help="logits, or the class map (ArgMax inside the graph)",
    )
    parser.add_argument(
        "--argmax-dtype",
        choices=("uint8", "int64"),
        default="uint8",
        help="class-map dtype with --output argmax",
    )
    parser.add_argument(
        "--shuffle",
        choices=("reshape", "gather"),
        help="channel-shuffle form; omitted: gather for ort, reshape for tidl",
    )
    parser.add_argument(
        "--target",
        choices=("ort", "tidl"),
        default="ort",
        help="tidl: rewrite into TIDL-legal forms and fail on any finding",
    )
    parser.add_argument(
        "--dense",
        action="store_true",
        help="export the masked dense form when alpha > 0 (no grouped convs)",
    )
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    parser.add_argument(
        "--rewrite",
        action="append",
        default=[],
        metavar="NAME",
        help="extra graph rewrite to apply (repeatable), e.g. shuffle_to_gather",
    )
    parser.add_argument(
        "--calib-data",
        default="synthetic",
        help="calibration frames: synthetic|images:DIR|video:FILE|cityscapes:DIR|none",
    )
    parser.add_argument("--calib-frames", type=int, default=64, help="calibration frames to store")
    parser.add_argument("--verify-frames", type=int, default=4, help="scenes to verify on")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from .onnx_export import ExportConfig, export_onnx
    from .verify import format_checks

    cfg = ExportConfig(
        size=parse_size(args.size) if args.size else None,
        opset=args.opset,
        input=args.input,
        output=args.output,
        argmax_dtype=args.argmax_dtype,
        shuffle=args.shuffle,
        target=args.target,
        dense=args.dense,
        simplify=not args.no_simplify,
        rewrites=tuple(args.rewrite),
        calib_data=None if args.calib_data == "none" else args.calib_data,
        calib_frames=args.calib_frames,
        verify_frames=args.verify_frames,
    )
    result = export_onnx(args.checkpoint, args.out, cfg)
    if args.json:
        print(to_json(result.to_dict(), indent=2))
        return 0
    print(format_checks(result.checks))
    print(result.summary())
    return 0
