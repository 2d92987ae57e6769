"""``gradgroup demo``: live segmentation from a camera, video, folder or synthetic scenes."""

from __future__ import annotations

import argparse

from .cli_bench import add_runtime_flags, runtime_settings
from .fileio import to_json

EXAMPLES = """keys (with --show): q/Esc quit, space pause, s snapshot
Headless by default: the base install's opencv-python-headless has no window. For --show, replace
it with the GUI build: pip uninstall opencv-python-headless && pip install opencv-python

examples:
  gradgroup demo dg4.int8.onnx --source synthetic --out drive.mp4   # headless: a video
  gradgroup demo dg4.int8.onnx --source 0 --show --out run.mp4      # camera 0, window + video
  gradgroup demo dg4.onnx --source drive.mp4 --out drive_seg.mp4 --json
  gradgroup demo dg4.onnx --source frames/ --out seg.mp4 --max-frames 100
  gradgroup demo dg4.onnx --source synthetic --frame-size 1024x2048 --max-frames 50
  gradgroup demo dg4.int8.onnx --source 0 --provider tidl --artifacts dg4_tidl/   # on the board
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("model", help="ONNX model exported by gradgroup")
    parser.add_argument(
        "--source",
        default="synthetic",
        help="frames: synthetic | images:DIR | video:FILE | camera:N (or a bare folder, file, "
        "index or /dev/videoN) | an RTSP URL | a GStreamer pipeline (default: synthetic)",
    )
    parser.add_argument(
        "--frame-size",
        metavar="HxW",
        help="size of synthetic frames or the resolution asked of a camera (default: "
        "synthetic 512x1024, a camera's own; files keep their size)",
    )
    parser.add_argument(
        "--opacity", type=float, default=0.5, help="class colour weight 0..1 (default: 0.5)"
    )
    parser.add_argument(
        "--fps-target", type=float, default=30.0, help="frame budget 1000/fps ms (default: 30)"
    )
    parser.add_argument(
        "--show",
        action="store_true",
        help="show a window (needs opencv-python, not the headless build, and a display)",
    )
    parser.add_argument("--no-show", action="store_true", help=argparse.SUPPRESS)  # old scripts
    parser.add_argument(
        "--out", help="write the annotated video (.mp4/.avi/.mkv) (default: none, measure only)"
    )
    parser.add_argument(
        "--max-frames", type=int, help="stop after N processed frames (default: the source's end)"
    )
    parser.add_argument(
        "--snapshot-dir", default="snapshots", help="where 's' saves PNGs (default: snapshots)"
    )
    add_runtime_flags(parser, "TIDL package or its artifacts/ folder (with --provider tidl)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic source seed (default: 0)")
    parser.add_argument("--no-legend", action="store_true", help="do not draw the class legend")
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bar"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo
    from .preprocess import parse_size

    cfg = DemoConfig(
        opacity=args.opacity,
        fps_target=args.fps_target,
        show=args.show,
        out=args.out,
        max_frames=args.max_frames,
        snapshot_dir=args.snapshot_dir,
        frame_size=parse_size(args.frame_size) if args.frame_size else None,
        **runtime_settings(args),
        seed=args.seed,
        legend=not args.no_legend,
        progress=args.progress and not args.json,
    )
    # SIGTERM takes the Ctrl-C path (gradgroup.cli), so the video is finished then too.
    result = run_demo(args.model, args.source, cfg)
    if args.json:
        print(to_json(result.to_dict(), indent=2))
    else:
        print(result.table())
        print(result.line())
    return 130 if result.interrupted else 0
