"""``gradgroup pipeline``: train, export, calibrate, benchmark and demo; one command, one report.

Flags map 1:1 onto ``PipelineConfig`` (``--config`` files use its field names); the work is
``gradgroup.pipeline.run_pipeline``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from gradgroup.config import PipelineConfig
from gradgroup.deploy.cli_config import add_config_flags, config_from_args
from gradgroup.deploy.preprocess import parse_size
from gradgroup.pipeline import run_pipeline

EXAMPLES = """examples:
  gradgroup pipeline --out runs/pipeline                       # what `make run` runs (~15 min)
  gradgroup pipeline --arch dg4s-light --budget-min 30 --out runs/long
  gradgroup pipeline --data cityscapes:~/cityscapes --size 512x1024 --budget-min 600 --out runs/cs
  gradgroup pipeline --out runs/pipeline                       # again: reuses finished stages
  gradgroup pipeline --config runs/pipeline/run.json --out runs/again --print-config

output: OUT/report.md and report.json (the summary), OUT/run.json (versions, command, settings),
OUT/train/<model>/, OUT/models/, OUT/bench*.{md,json,png}, OUT/demo.mp4
"""


def configure(parser: argparse.ArgumentParser) -> None:
    d = PipelineConfig()
    parser.epilog = EXAMPLES
    parser.add_argument("--out", default=d.out, help="output folder; re-running resumes")
    parser.add_argument("--arch", default=d.arch, help="efficient model (gradual grouping)")
    parser.add_argument("--baseline", default=d.baseline, help="dense reference model")
    parser.add_argument("--size", default="x".join(map(str, d.size)), metavar="HxW",
                        help="training (= model input) size HxW")  # fmt: skip
    parser.add_argument(
        "--deploy-size", default="x".join(map(str, d.deploy_size)), metavar="HxW",
        help="size at which latency is also measured (HxW)",
    )  # fmt: skip
    parser.add_argument("--budget-min", type=float, default=d.budget_min,
                        help="training minutes per model")  # fmt: skip
    parser.add_argument("--data", default=d.data, help="synthetic | cityscapes:DIR | folder:DIR")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help="training batch size")  # fmt: skip
    parser.add_argument("--init", default=d.init, metavar="shipped|none|CKPT",
                        help="start of the efficient model (shipped: the dense scene-pretrained "
                        "weights in weights/, synthetic data only)")  # fmt: skip
    parser.add_argument(
        "--baseline-init",
        default=d.baseline_init,
        metavar="shipped|none|CKPT",
        help="start of the baseline (shipped: fine-tune its shipped weights)",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=d.lr,
        help="Adam learning rate (default: 2e-3 from scratch, 1e-3 from a start)",
    )
    parser.add_argument(
        "--max-drop",
        type=float,
        default=100 * d.max_drop,
        metavar="POINTS",
        help="mIoU points the int8 models may lose before layers stay in float",
    )
    parser.add_argument("--bench-seconds", type=float, default=d.bench_seconds,
                        help="timed seconds per model in the benchmark")  # fmt: skip
    parser.add_argument("--demo-frames", type=int, default=d.demo_frames,
                        help="frames of the synthetic drive in OUT/demo.mp4")  # fmt: skip
    parser.add_argument("--threads", type=int, default=d.threads, help="ONNX Runtime threads")
    parser.add_argument(
        "--provider",
        choices=("cpu", "openvino"),
        default=d.provider,
        help="execution provider of the benchmark and the demo (openvino: Intel CPUs, "
        'pip install "gradgroup[openvino]")',
    )
    parser.add_argument("--fps-target", type=float, default=d.fps_target,
                        help="frame-rate budget: 1000/fps ms per frame")  # fmt: skip
    parser.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"),
                        help="training device")  # fmt: skip
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="seeds training and the scenes")  # fmt: skip
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide the progress bar")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_config_flags(parser, PipelineConfig, scale={"max_drop": 100.0})


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The PipelineConfig the flags (and a ``--config`` file) describe."""
    return config_from_args(
        PipelineConfig, args, size=parse_size(args.size), deploy_size=parse_size(args.deploy_size),
        max_drop=args.max_drop / 100.0,
    )  # fmt: skip


def resolved_config(args: argparse.Namespace) -> dict:
    """``--print-config``: the pipeline's settings by PipelineConfig field name."""
    return asdict(pipeline_config(args))


def run(args: argparse.Namespace) -> int:
    cfg = pipeline_config(args)
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():  # log lines go above the progress bars, not through them
        result = run_pipeline(cfg, progress=args.progress)
    if args.json:
        print(Path(result.report_json).read_text())
    else:
        print(Path(result.report_md).read_text())
    print(
        f"pipeline success {result.seconds / 60:.1f} min, report at {result.report_md}",
        file=sys.stderr if args.json else sys.stdout,  # stdout carries only the JSON then
        flush=True,
    )
    return 0
