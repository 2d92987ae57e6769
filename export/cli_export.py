"""``gradgroup export``: checkpoint -> verified ONNX with true grouped convs + calibration set."""

from __future__ import annotations

import argparse

from gradgroup.deploy.cli_config import config_from_args
from gradgroup.deploy.fileio import to_json
from gradgroup.deploy.preprocess import parse_size

EXAMPLES = """examples:
  gradgroup export runs/dg4/best.pt --out dg4.onnx
  gradgroup export runs/dg4/best.pt --out dg4.tidl.onnx --target tidl --input uint8 --output argmax
  gradgroup export runs/dg4/best.pt --out dg4.onnx --calib-data images:frames/ --calib-frames 128
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """The flags, with defaults and choices taken from :class:`~.onnx_export.ExportConfig`."""
    from .onnx_export import (
        ARGMAX_DTYPES,
        INPUTS,
        OPSETS,
        OUTPUTS,
        SHUFFLES,
        TARGETS,
        ExportConfig,
    )  # fmt: skip

    d = ExportConfig()
    parser.epilog = EXAMPLES
    parser.add_argument("checkpoint", help="checkpoint written by gradgroup train")
    parser.add_argument("--out", required=True, help="ONNX file to write (.onnx; required)")
    parser.add_argument("--size", help="input size HxW (default: the checkpoint's)")
    parser.add_argument(
        "--opset", type=int, choices=OPSETS, default=d.opset, metavar="N", help="ONNX opset, 11..18"
    )
    parser.add_argument(
        "--input",
        choices=INPUTS,
        default=d.input,
        help="float: normalized input; uint8: raw RGB, the graph normalizes",
    )
    parser.add_argument(
        "--output",
        choices=OUTPUTS,
        default=d.output,
        help="logits, or the class map (ArgMax inside the graph)",
    )
    parser.add_argument(
        "--argmax-dtype",
        choices=tuple(ARGMAX_DTYPES),
        default=d.argmax_dtype,
        help="class-map dtype with --output argmax",
    )
    parser.add_argument(
        "--shuffle",
        choices=SHUFFLES,
        default=d.shuffle,
        help="channel-shuffle form (default: gather for ort, reshape for tidl)",
    )
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default=d.target,
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
        default=d.calib_data,
        help="calibration frames: synthetic|images:DIR|video:FILE|cityscapes:DIR|none",
    )
    parser.add_argument(
        "--calib-frames", type=int, default=d.calib_frames, help="calibration frames to store"
    )
    parser.add_argument(
        "--verify-frames", type=int, default=d.verify_frames, help="scenes to verify on"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from .onnx_export import ExportConfig, export_onnx
    from .verify import format_checks

    cfg = config_from_args(
        ExportConfig, args, {"rewrite": "rewrites"},
        size=parse_size(args.size) if args.size else None,
        simplify=not args.no_simplify,
        calib_data=None if args.calib_data == "none" else args.calib_data,
    )  # fmt: skip
    result = export_onnx(args.checkpoint, args.out, cfg)
    if args.json:
        print(to_json(result.to_dict(), indent=2))
        return 0
    print(format_checks(result.checks))
    print(result.summary())
    return 0
