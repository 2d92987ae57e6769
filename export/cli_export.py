"""``gradgroup export``: checkpoint -> verified ONNX with true grouped convs + calibration set.

Flags map 1:1 onto :class:`~.onnx_export.ExportConfig` (``--config`` files use its field names).
"""

from __future__ import annotations

import argparse

from gradgroup.deploy.cli_config import add_config_flags, config_from_args
from gradgroup.deploy.fileio import to_json
from gradgroup.deploy.preprocess import parse_size
from gradgroup.deploy.session import PROVIDERS, TARGET_ALIASES

EXAMPLES = """examples:
  gradgroup export runs/dg4/best.pt --out dg4.onnx
  gradgroup export runs/dg4/best.pt --out dg4.tidl.onnx --target tidl --input uint8 --output argmax
  gradgroup export runs/dg4/best.pt --out dg4.onnx --calib-data images:frames/ --calib-frames 128
  gradgroup export runs/dg4/best.pt --out dg4.onnx --config export.yaml --print-config
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """The flags, with defaults and choices taken from :class:`~.onnx_export.ExportConfig`."""
    from .onnx_export import (
        ARGMAX_DTYPES,
        INPUTS,
        OPSETS,
        OUTPUTS,
        SHUFFLES,
        ExportConfig,
    )  # fmt: skip

    d = ExportConfig()
    parser.epilog = EXAMPLES
    parser.add_argument("checkpoint", help="checkpoint written by gradgroup train")
    parser.add_argument("--out", required=True, help="ONNX file to write (.onnx; required)")
    parser.add_argument(
        "--size", metavar="HxW", help="model input size HxW (default: the checkpoint's)"
    )
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
        help="channel-shuffle form (default: gather for cpu/openvino, reshape for tidl)",
    )
    parser.add_argument(
        "--target",
        choices=(*PROVIDERS, *TARGET_ALIASES),
        default=d.target,
        help="the runtime the model is for, as bench and demo --provider name it: cpu and openvino "
        "get the ONNX Runtime form; tidl: rewrite into TIDL-legal forms and fail on any finding "
        "(ort: the same as cpu)",
    )
    parser.add_argument(
        "--dense",
        action="store_true",
        help="export the masked dense form when alpha > 0 (no grouped convs)",
    )
    parser.add_argument("--no-simplify", dest="simplify", action="store_false", help="skip onnxsim")
    parser.add_argument(
        "--rewrite",
        action="append",
        default=[],
        metavar="NAME",
        help="extra graph rewrite to apply (repeatable), e.g. shuffle_to_gather (default: none)",
    )
    parser.add_argument(
        "--calib-data",
        default=d.calib_data,
        help="calibration frames: model (the checkpoint's training data, train split) | "
        "synthetic | images:DIR | video:FILE | camera:N (demo's frame specs) | cityscapes:DIR | "
        "folder:DIR | none",
    )
    parser.add_argument(
        "--calib-frames", type=int, default=d.calib_frames, help="calibration frames to store"
    )
    parser.add_argument(
        "--verify-frames", type=int, default=d.verify_frames, help="scenes to verify on"
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide progress bars"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_config_flags(parser, ExportConfig, dests={"rewrites": "rewrite"})


def export_config(args: argparse.Namespace):
    """The :class:`~.onnx_export.ExportConfig` the flags (and a ``--config`` file) describe."""
    from .onnx_export import ExportConfig

    return config_from_args(
        ExportConfig, args, {"rewrite": "rewrites"},
        size=parse_size(args.size) if args.size else None,
        calib_data=None if args.calib_data == "none" else args.calib_data,
    )  # fmt: skip


def resolved_config(args: argparse.Namespace) -> dict:
    """``--print-config``: the export settings by ExportConfig field name."""
    from dataclasses import asdict

    return asdict(export_config(args))


def run(args: argparse.Namespace) -> int:
    from .onnx_export import export_onnx
    from .verify import format_checks

    cfg = export_config(args)
    result = export_onnx(args.checkpoint, args.out, cfg)
    if args.json:
        print(to_json(result.to_dict(), indent=2))
        return 0
    print(format_checks(result.checks))
    print(result.summary())
    return 0
