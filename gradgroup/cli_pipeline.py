"""``gradgroup pipeline``: train, export, calibrate, benchmark and demo; one command, one report.

Flags map 1:1 onto ``PipelineConfig``; the work is ``gradgroup.pipeline.run_pipeline``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gradgroup.config import PipelineConfig
from gradgroup.deploy.cli_config import config_from_args
from gradgroup.deploy.preprocess import parse_size
from gradgroup.pipeline import run_pipeline


def configure(parser: argparse.ArgumentParser) -> None:
    d = PipelineConfig()
    parser.add_argument("--out", default=d.out, help="output folder; re-running resumes")
    parser.add_argument("--arch", default=d.arch, help="efficient model (gradual grouping)")
    parser.add_argument("--baseline", default=d.baseline, help="dense reference model")
    parser.add_argument("--size", default="x".join(map(str, d.size)), help="train/model size HxW")
    parser.add_argument(
        "--deploy-size", default="x".join(map(str, d.deploy_size)),
        help="size at which latency is also measured (HxW)",
    )  # fmt: skip
    parser.add_argument("--budget-min", type=float, default=d.budget_min,
                        help="training minutes per model")  # fmt: skip
    parser.add_argument("--data", default=d.data, help="synthetic | cityscapes:DIR | folder:DIR")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
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
    parser.add_argument("--max-drop", type=float, default=d.max_drop, help="int8 mIoU budget")
    parser.add_argument("--bench-seconds", type=float, default=d.bench_seconds)
    parser.add_argument("--demo-frames", type=int, default=d.demo_frames)
    parser.add_argument("--threads", type=int, default=d.threads, help="ONNX Runtime threads")
    parser.add_argument(
        "--provider",
        choices=("cpu", "openvino"),
        default=d.provider,
        help="execution provider of the benchmark and the demo (openvino: Intel CPUs, "
        'pip install "gradgroup[openvino]")',
    )
    parser.add_argument("--fps-target", type=float, default=d.fps_target)
    parser.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(
        PipelineConfig, args, size=parse_size(args.size), deploy_size=parse_size(args.deploy_size)
    )
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():  # log lines go above the progress bars, not through them
        result = run_pipeline(cfg, progress=not args.quiet)
    if args.json:
        print(Path(result.report_json).read_text())
    else:
        print(Path(result.report_md).read_text())
    print(
        f"pipeline success {result.seconds / 60:.1f} min, report at {result.report_md}",
        flush=True,
    )
    return 0
