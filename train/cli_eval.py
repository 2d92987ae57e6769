"""``gradgroup eval MODEL``: mIoU, mAcc, per-class IoU and accuracy, pixel accuracy and (``--json``)
the confusion matrix of a checkpoint or ONNX model.

Flags map 1:1 onto :class:`~gradgroup.train.evaluate.EvalConfig`. An ``.onnx`` model is evaluated
with ONNX Runtime and never imports torch.
"""

from __future__ import annotations

import argparse

from gradgroup.deploy.cli_bench import add_runtime_flags, runtime_settings
from gradgroup.deploy.fileio import to_json
from gradgroup.deploy.table import format_table

EXAMPLES = """examples:
  gradgroup eval runs/dg4/best.pt --limit 100            # on the val split of its training data
  gradgroup eval dg4.int8.onnx --data cityscapes:~/cityscapes --full-res --json
  gradgroup eval dg4.int8.onnx --provider openvino --limit 200   # accuracy on the target engine
  gradgroup eval dg4.int8.onnx --provider tidl --artifacts dg4_tidl/   # on the board
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from .evaluate import EvalConfig

    d = EvalConfig()
    parser.epilog = EXAMPLES
    parser.add_argument("model", help="a .pt checkpoint or an .onnx model")
    parser.add_argument(
        "--data",
        default=d.data,
        help="model (the data it was trained on; synthetic if it does not say) | synthetic | "
        "cityscapes:DIR | folder:DIR",
    )
    parser.add_argument("--split", choices=("train", "val"), default=d.split, help="dataset split")
    parser.add_argument(
        "--limit", type=int, default=d.limit, help="evaluate at most N images (default: all)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device,
                        help="device for checkpoints")  # fmt: skip
    parser.add_argument(
        "--full-res",
        action="store_true",
        default=d.full_res,
        help="score at the labels' resolution (prediction upsampled, nearest) instead of "
        "labels downsampled to the model size",
    )
    add_runtime_flags(
        parser, "TIDL package or artifacts/ folder of the ONNX model (with --provider tidl)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=d.progress,
        help="progress bar (-q hides it too)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON (with the confusion matrix)"
    )


def run(args: argparse.Namespace) -> int:
    from .evaluate import EvalConfig, evaluate_path

    cfg = EvalConfig(
        data=args.data, split=args.split, limit=args.limit, device=args.device,
        progress=args.progress, full_res=args.full_res, **runtime_settings(args),
    )  # fmt: skip
    result = evaluate_path(args.model, cfg)
    if args.json:
        print(to_json(result.to_dict(), indent=2))
        return 0
    rows = [[name, _pct(iou), _pct(result.acc[name])] for name, iou in result.iou.items()]
    print(format_table(["class", "IoU %", "Acc %"], rows))
    h, w = result.size
    at = "the labels' resolution" if result.full_res else f"{h}x{w}"
    print(
        f"eval done: mIoU {100 * result.miou:.2f}%, mAcc {100 * result.macc:.2f}%, pixel accuracy "
        f"{100 * result.pixel_accuracy:.2f}% on {result.images} {result.split} images of "
        f"{result.data} at {at} ({result.kind} on {result.provider}, {result.seconds:.1f} s)"
    )
    return 0


def _pct(value: float | None) -> str:
    """A fraction as a percentage; ``-`` for a class absent from the ground truth."""
    return "-" if value is None else f"{100 * value:.2f}"
