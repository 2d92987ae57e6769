"""``gradgroup eval MODEL``: mIoU, per-class IoU and pixel accuracy of a checkpoint or ONNX model.

Flags map 1:1 onto :class:`~gradgroup.train.evaluate.EvalConfig`. An ``.onnx`` model is evaluated
with ONNX Runtime and never imports torch.
"""

from __future__ import annotations

import argparse

from gradgroup.deploy.cli_bench import add_runtime_flags, runtime_settings
from gradgroup.deploy.fileio import to_json
from gradgroup.deploy.table import format_table

EXAMPLES = """examples:
  gradgroup eval runs/dg4/best.pt --limit 100
  gradgroup eval dg4.int8.onnx --data cityscapes:~/cityscapes --json
  gradgroup eval dg4.int8.onnx --provider openvino --limit 200   # accuracy on the target engine
  gradgroup eval dg4.int8.onnx --provider tidl --artifacts artifacts/dg4   # on the board
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("model", help="a .pt checkpoint or an .onnx model")
    parser.add_argument(
        "--data", default="synthetic", help="synthetic | cityscapes:DIR | folder:DIR"
    )
    parser.add_argument("--split", choices=("train", "val"), default="val", help="dataset split")
    parser.add_argument("--limit", type=int, default=None, help="evaluate at most N images")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="device for checkpoints")  # fmt: skip
    add_runtime_flags(parser, "TIDL artifacts folder of the ONNX model (with --provider tidl)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from .evaluate import EvalConfig, evaluate_path

    cfg = EvalConfig(
        args.data, args.split, args.limit, args.device, args.progress, **runtime_settings(args)
    )
    result = evaluate_path(args.model, cfg)
    if args.json:
        print(to_json(result.to_dict(), indent=2))
        return 0
    rows = [[name, "-" if v is None else f"{100 * v:.2f}"] for name, v in result.iou.items()]
    print(format_table(["class", "IoU %"], rows))
    h, w = result.size
    print(
        f"eval done: mIoU {100 * result.miou:.2f}%, pixel accuracy "
        f"{100 * result.pixel_accuracy:.2f}% on {result.images} {result.split} images of "
        f"{result.data} at {h}x{w} ({result.kind} on {result.provider}, {result.seconds:.1f} s)"
    )
    return 0
