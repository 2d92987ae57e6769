"""``gradgroup pipeline``: train, export, calibrate, benchmark and demo; one command, one report.

The main job ``make run`` runs on the built-in procedural street scenes. Every stage writes its
result into ``OUT/state.json`` as it finishes; re-running with the same ``--out`` reuses finished
stages (when their artifacts are still there) and resumes an interrupted training from its
checkpoint. Output layout::

    OUT/train/<model>/{last.pt,best.pt,metrics.jsonl,config.json,curves.png,plan.json}
    OUT/models/<model>.onnx, <model>.calib.npz, <model>.export.json, <model>.int8.onnx (+ .json)
    OUT/models/deploy/<model>[.int8].onnx      latency-only copies at the deployment size
    OUT/bench.json, bench.md, bench.png         side-by-side benchmark
    OUT/demo.mp4                                annotated synthetic drive
    OUT/report.md, report.json, tradeoff.png    the summary
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.fileio import check_writable, folder_lock, to_json, write_text_atomic
from gradgroup.deploy.preprocess import check_model_size, parse_size

log = logging.getLogger(__name__)

STAGES = ("train", "export", "calib", "bench", "demo", "report")


@dataclass(frozen=True)
class PipelineConfig:
    """What ``gradgroup pipeline`` runs; flags map 1:1 onto it.

    Attributes:
        out: output folder (re-running with the same folder resumes).
        arch: the efficient model, trained with gradual grouping.
        baseline: the dense reference it is compared with, trained for the same budget.
        size: training and model input size (H, W).
        deploy_size: size at which latency is also measured (the camera's 1024x512 by default).
        budget_min: training minutes per model (sets the number of iterations).
        data: ``synthetic``, ``cityscapes:DIR`` or ``folder:DIR``.
        batch_size: training batch size.
        init: where the efficient model starts: ``shipped`` (the project's scene-pretrained
            dense start, on synthetic data only), ``none`` (from scratch) or a checkpoint path.
        baseline_init: the same for the baseline (``shipped``: fine-tuned from its weights).
        lr: Adam learning rate; None: 2e-3 from scratch (budget runs are short), 1e-3 from a
            trained start.
        max_drop: mIoU points the int8 models may lose before layers stay in float.
        bench_seconds: timed seconds per model in the benchmark.
        demo_frames: frames of the synthetic drive rendered to the demo video.
        threads: ONNX Runtime threads for the benchmark and the demo.
        fps_target: the frame-rate budget.
        device: ``auto``, ``cpu`` or ``cuda`` for training.
        seed: seeds training and the scenes.
    """

    out: str = "runs/pipeline"
    arch: str = "dg4-light"
    baseline: str = "erfnet"
    size: tuple[int, int] = (128, 256)
    deploy_size: tuple[int, int] = (512, 1024)
    budget_min: float = 6.0
    data: str = "synthetic"
    batch_size: int = 8
    init: str = "shipped"
    baseline_init: str = "shipped"
    lr: float | None = None
    max_drop: float = 2.0
    bench_seconds: float = 4.0
    demo_frames: int = 60
    threads: int = 2
    fps_target: float = 30.0
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget_min <= 0:
            raise InputError(f"--budget-min {self.budget_min} must be positive")
        check_model_size(self.size, "--size")
        check_model_size(self.deploy_size, "--deploy-size")
        for flag, value in (("--init", self.init), ("--baseline-init", self.baseline_init)):
            if value not in ("shipped", "none") and not Path(value).expanduser().is_file():
                raise InputError(f"{flag} {value}: no such checkpoint (or use shipped / none)")
        if self.arch == self.baseline:
            raise InputError(f"--arch and --baseline are both {self.arch!r}; pick two models")

    @property
    def models(self) -> tuple[str, str]:
        """(efficient model, baseline) — the order of the report's rows."""
        return self.arch, self.baseline


@dataclass
class PipelineResult:
    """Where everything went and the per-model summary the report shows."""

    out: str
    report_md: str
    report_json: str
    rows: list[dict[str, Any]]
    seconds: float


class _State:
    """``OUT/state.json``: finished stages and their results, written atomically."""

    def __init__(self, out: Path, cfg: PipelineConfig) -> None:
        self.path = out / "state.json"
        self.data: dict[str, Any] = {}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                log.warning("%s is unreadable; starting the pipeline afresh", self.path)
        if self.data.get("config") not in (None, _config_key(cfg)):
            raise InputError(
                f"{out} holds a pipeline run with other settings; use another --out or delete it"
            )
        self.data["config"] = _config_key(cfg)
        self.data.setdefault("stages", {})

    def done(self, stage: str) -> dict[str, Any] | None:
        result = self.data["stages"].get(stage)
        if result is None:
            return None
        missing = [p for p in result.get("artifacts", []) if not Path(p).exists()]
        return None if missing else result

    def finish(self, stage: str, result: dict[str, Any]) -> None:
        self.data["stages"][stage] = result
        write_text_atomic(self.path, to_json(self.data, indent=2, default=str))


class _Ticker:
    """Moves the pipeline bar with the clock inside a stage, up to 95% of the stage's estimate.

    Stage weights are estimated seconds, so the overall percent and ETA stay meaningful during a
    long stage (training) instead of jumping only when it ends.
    """

    def __init__(self, bar: tqdm, start: float, weight: float) -> None:
        self.bar, self.start, self.weight = bar, start, weight
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while not self.stop.wait(1.0):
            elapsed = min(time.perf_counter() - t0, 0.95 * self.weight)
            self.bar.n = round(self.start + elapsed)
            self.bar.refresh()

    def __enter__(self) -> _Ticker:
        if not self.bar.disable:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


def _config_key(cfg: PipelineConfig) -> dict[str, Any]:
    """Settings that change results (a rerun with other ones must not reuse them)."""
    key = asdict(cfg)
    for volatile in ("out", "threads", "device"):
        key.pop(volatile)
    return json.loads(to_json(key))


def run_pipeline(cfg: PipelineConfig, progress: bool = True) -> PipelineResult:
    """Run every stage (reusing finished ones) and write the report.

    Raises:
        InputError: bad settings or data; an unwritable ``cfg.out`` or one another pipeline is
            using. RunError: a stage failed its own verification or could not write its files.
    """
    start = time.perf_counter()
    out = Path(cfg.out)
    check_writable(out, "--out", folder=True)
    with folder_lock(out, "pipeline"):  # two pipelines in one folder would mix their stages
        return _run_stages(cfg, out, start, progress)


def _run_stages(cfg: PipelineConfig, out: Path, start: float, progress: bool) -> PipelineResult:
    """The stages in order, each reused from ``OUT/state.json`` when it finished before."""
    from gradgroup import stages

    state = _State(out, cfg)
    steps: list[tuple[str, Callable[..., dict[str, Any]], float]] = [
        ("train", stages.train_models, 2 * cfg.budget_min * 60),
        ("export", stages.export_models, 20),
        ("calib", stages.calibrate_models, 60),
        ("bench", stages.bench_models, 8 * (cfg.bench_seconds + 2) + 10),
        ("demo", stages.run_demo_video, 20),
        ("report", stages.write_report, 5),
    ]
    total = round(sum(weight for _, _, weight in steps))
    results: dict[str, dict[str, Any]] = {}
    bar = tqdm(
        total=total, desc="pipeline", disable=not progress, position=0,
        bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
    )  # fmt: skip
    done = 0.0
    try:
        for name, fn, weight in steps:
            bar.set_description(f"pipeline [{name}]")
            reused = state.done(name) if name != "report" else None
            if reused is not None:
                log.info("%s: reusing the finished stage from %s", name, state.path)
                results[name] = reused
            else:
                with _Ticker(bar, done, weight):
                    results[name] = fn(cfg, out, results, progress)
                state.finish(name, results[name])
            done += weight
            bar.n = round(done)
            bar.refresh()
    finally:
        bar.close()
    report = results["report"]
    return PipelineResult(
        out=str(out),
        report_md=report["report_md"],
        report_json=report["report_json"],
        rows=report["rows"],
        seconds=time.perf_counter() - start,
    )


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
    parser.add_argument("--fps-target", type=float, default=d.fps_target)
    parser.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    cfg = PipelineConfig(
        out=args.out, arch=args.arch, baseline=args.baseline, size=parse_size(args.size),
        deploy_size=parse_size(args.deploy_size), budget_min=args.budget_min, data=args.data,
        batch_size=args.batch_size, init=args.init, baseline_init=args.baseline_init,
        lr=args.lr, max_drop=args.max_drop,
        bench_seconds=args.bench_seconds, demo_frames=args.demo_frames, threads=args.threads,
        fps_target=args.fps_target, device=args.device, seed=args.seed,
    )  # fmt: skip
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


__all__ = ["PipelineConfig", "PipelineResult", "run_pipeline"]
