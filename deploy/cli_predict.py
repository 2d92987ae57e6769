"""``gradgroup predict``: segment images, a folder or a video and write one PNG per input.

Flags map 1:1 onto :class:`gradgroup.deploy.predict.PredictConfig`; heavy imports happen in ``run``.
"""

from __future__ import annotations

import argparse

from .cli_bench import add_runtime_flags, runtime_settings

EXAMPLES = """output: OUT/<format>/<input's path in SOURCE, as .png>, one sub-folder per format:
  trainid  class ids (0..18 for Cityscapes), single-channel
  labelid  regular Cityscapes label ids (7 road, 26 car, ...), for cityscapesScripts: OUT/labelid
  color    palette PNG: shows the model's colours, its pixel values are the class ids
  overlay  the colours blended over the input (--opacity)
A re-run of the same command skips the inputs whose files are all there (resume).

examples:
  gradgroup predict dg4.onnx street.jpg --out pred                 # pred/color/street.png
  gradgroup predict dg4.onnx leftImg8bit/val --out pred --format labelid,color
  gradgroup predict dg4.onnx drive.mp4 --out frames --format overlay --max-frames 100
  gradgroup predict dg4.int8.onnx images/ --out pred --provider tidl --artifacts dg4_tidl/
  gradgroup predict dg4.onnx images/ --out pred --json --no-progress > summary.json
"""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the predict flags."""
    parser.epilog = EXAMPLES
    parser.add_argument("model", help="ONNX model exported by gradgroup")
    parser.add_argument(
        "source",
        help="an image, images:DIR or a bare folder (sub-folders included), video:FILE or a bare "
        "video, or synthetic, camera:N or a stream with --max-frames",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (required)")
    parser.add_argument(
        "--format",
        action="append",
        metavar="FORMAT",
        help="trainid, labelid, color or overlay; repeat it or separate with commas for several "
        "(default: color)",
    )
    parser.add_argument(
        "--opacity", type=float, default=0.5, help="class colour weight in overlay, 0..1"
    )
    parser.add_argument(
        "--max-frames", type=int, metavar="N", help="stop after the first N inputs (default: all)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="redo the inputs whose files exist (no resume)"
    )
    add_runtime_flags(parser, "TIDL package or its artifacts/ folder (with --provider tidl)")
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bar"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    """Predict, then print one result line (or the JSON summary); 130 when interrupted."""
    from .fileio import to_json
    from .predict import PredictConfig, predict_folder

    formats = [f.strip() for item in args.format or ["color"] for f in item.split(",")]
    cfg = PredictConfig(
        formats=tuple(f for f in formats if f),
        opacity=args.opacity,
        max_frames=args.max_frames,
        overwrite=args.overwrite,
        **runtime_settings(args),
        progress=args.progress,
    )
    result = predict_folder(args.model, args.source, args.out, cfg)
    print(to_json(result.to_dict(), indent=2) if args.json else result.line())
    return 130 if result.interrupted else 0
