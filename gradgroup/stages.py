"""The pipeline's stages: each calls one stage API and returns its typed result.

Every function takes ``(cfg, out, results, progress)`` — ``results`` holds the earlier stages'
returns — and returns one of the result types of ``gradgroup.results``, which list the files the
stage made so a re-run can tell whether it can be reused.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gradgroup.config import EPOCHS, HELD_OUT, TRAIN_SHARE, VAL_IMAGES, PipelineConfig
from gradgroup.deploy.fileio import to_json, write_text_atomic
from gradgroup.results import (
    Accuracy,
    BenchStage,
    BenchSummary,
    BenchTable,
    CalibStage,
    DemoVideo,
    ExportedModel,
    ExportStage,
    QuantizedModel,
    ReportFiles,
    Results,
    TrainedRun,
    TrainStage,
)

log = logging.getLogger(__name__)


def _size_name(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def seconds_per_iteration(
    arch: str, cfg: PipelineConfig, form: str, init: str | None = None
) -> float:
    """Measure one training step of ``arch`` on this machine as the trainer takes it (forward
    in its memory format and precision, backward, Adam, on the CPU threads it would pick now), in
    ``form``; a gradual model starts from ``init`` as the trainer does (layers the start holds
    grouped are grouped convs)."""
    import torch

    from gradgroup.train.evaluate import denormals_flushed
    from gradgroup.train.models import create_model

    device = torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    if device.type == "cpu":  # the threads the trainer will pick now
        from gradgroup.train.cores import CoreShare, thread_limit

        CoreShare(thread_limit()).sample()
    model = create_model(arch, form=form)
    if init and form == "gradual":
        from gradgroup.train.checkpoint import init_from

        init_from(model, init)
    model = model.to(device).train()
    model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.randn(cfg.batch_size, 3, *cfg.size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 19, (cfg.batch_size, *cfg.size), device=device)
    with denormals_flushed(device):  # as the trainer does
        times = [_timed_step(model, opt, x, y, device) for _ in range(3)]
    return min(times[1:])


def _timed_step(model, opt, x, y, device) -> float:
    import torch
    import torch.nn.functional as F

    from gradgroup.train.evaluate import autocast

    t0 = time.perf_counter()
    with autocast(device, True):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def train_models(cfg: PipelineConfig, out: Path, results: Results, progress: bool) -> TrainStage:
    """Train the efficient model (gradual grouping) and the baseline, each within the budget.

    The paper's recipe by default: both start from the project's scene-pretrained weights (the
    efficient model from its dense start). Each run's first plan (iterations per epoch, from a
    measured step) is decided once and kept in ``plan.json``, so the same command resumes it; the
    trainer then fits the run into the budget (``fit_minutes``), re-sizing the epochs still to
    come from the measured cost of each one.
    """
    from gradgroup.train.trainer import TrainConfig, train

    runs: dict[str, TrainedRun] = {}
    models = ((cfg.arch, "gradual", cfg.init), (cfg.baseline, "scratch", cfg.baseline_init))
    for arch, schedule, init_spec in models:
        folder = out / "train" / arch
        init = resolve_init(init_spec, arch, cfg.data)
        # From trained weights the decay needs little time and the grouped model much: half the
        # epochs fine-tune it (measured in bench/TRAINING.md: 18-19 % vs 14.8 % with one).
        finetune = EPOCHS // 2 if init else 1
        plan = _plan(folder, arch, cfg, schedule, init, finetune)
        lr = cfg.lr or (1e-3 if init else 2e-3)
        log.info(
            "train %s (%s%s): %.2f s/iteration measured -> %d epochs x %d iterations",
            arch, schedule, f" from {Path(init).name}" if init else "", plan["step"], EPOCHS,
            plan["iters_per_epoch"],
        )  # fmt: skip
        tcfg = TrainConfig(
            arch=arch, data=cfg.data, size=cfg.size, epochs=EPOCHS,
            iters_per_epoch=plan["iters_per_epoch"], batch_size=cfg.batch_size, lr=lr,
            schedule=schedule, finetune_epochs=finetune, init=init, device=cfg.device,
            out=str(folder), resume=(folder / "last.pt").is_file(), seed=cfg.seed,
            val_length=VAL_IMAGES, val_limit=VAL_IMAGES, progress=progress, workers=0,
            fit_minutes=cfg.budget_min,
        )  # fmt: skip
        result = train(tcfg)
        if result.status == "interrupted":
            raise KeyboardInterrupt
        runs[arch] = TrainedRun(
            schedule=schedule,
            init=Path(init).name if init else None,
            checkpoint=result.best or result.last,
            miou=result.best_miou,
            alpha=result.alpha,
            iterations=result.iterations,
            seconds=result.seconds,
            seconds_per_iteration=plan["step"],
            status=result.status,
        )
    return TrainStage(runs=runs)


def resolve_init(spec: str, arch: str, data: str) -> str | None:
    """The checkpoint a pipeline model starts from: ``shipped`` weights (procedural scenes
    only), ``none``, or a path."""
    if spec == "none":
        return None
    if spec != "shipped":
        return str(Path(spec).expanduser())
    if data != "synthetic":
        log.info("%s trains from scratch: the shipped weights are for the procedural scenes", arch)
        return None
    from gradgroup.train.weights import dense_start, find_shipped

    found = find_shipped(arch)
    if found is None:
        log.warning("no shipped weights for %s (%s): training from scratch", arch,
                    dense_start(arch))  # fmt: skip
    return None if found is None else str(found)


def _plan(
    folder: Path,
    arch: str,
    cfg: PipelineConfig,
    schedule: str,
    init: str | None = None,
    finetune: int = 1,
) -> dict[str, Any]:
    """``folder/plan.json``: the first epochs' length, sized from measured steps, decided once.

    A gradual run's decay epochs take a step of the gradual form and its fine-tune epochs one of
    the grouped form; both are measured and ``step`` is their mean over the run. A first guess:
    the trainer re-sizes the epochs after each one from what it really cost.
    """
    path = folder / "plan.json"
    if path.is_file():
        return json.loads(path.read_text())
    grouped = seconds_per_iteration(arch, cfg, "grouped")
    if schedule == "gradual":
        decay = seconds_per_iteration(arch, cfg, "gradual", init)
        step = ((EPOCHS - finetune) * decay + finetune * grouped) / EPOCHS
    else:
        step = grouped
    iterations = max(EPOCHS * 4, int(TRAIN_SHARE * cfg.budget_min * 60 / step))
    plan = {"step": step, "iters_per_epoch": math.ceil(iterations / EPOCHS)}
    write_text_atomic(path, to_json(plan) + "\n")
    return plan


def export_models(cfg: PipelineConfig, out: Path, results: Results, progress: bool) -> ExportStage:
    """Export each checkpoint: ORT form (+ calibration set), TIDL-legal form, deployment size.

    Calibration sets are the train images of the pipeline's ``--data`` (passed explicitly; the
    checkpoints record it too), so int8 is calibrated on the data it is scored on.

    The deployment-size model is what a camera pipeline runs: raw uint8 frames in, class ids out
    (normalization and argmax inside the graph, ~16 ms a frame less host work at 1024x512).
    """
    from gradgroup.export.onnx_export import ExportConfig, ExportSource, export_onnx

    models = out / "models"
    exports: dict[str, ExportedModel] = {}
    for arch, run in results.train.runs.items():
        source = ExportSource(run.checkpoint)  # loaded once; traced once for the ORT and TIDL forms
        ort = export_onnx(
            source, models / f"{arch}.onnx",
            ExportConfig(size=cfg.size, calib_data=cfg.data, seed=cfg.seed),
        )  # fmt: skip
        tidl = export_onnx(
            source, models / "tidl" / f"{arch}.onnx",
            ExportConfig(size=cfg.size, target="tidl", calib_data=None),
        )  # fmt: skip
        big = export_onnx(
            source, models / "deploy" / f"{arch}.onnx",
            ExportConfig(size=cfg.deploy_size, calib_data=cfg.data, calib_frames=8,
                         input="uint8", output="argmax"),
        )  # fmt: skip
        for res in (ort, tidl, big):
            tqdm.write(res.summary())
        exports[arch] = ExportedModel(
            onnx=str(ort.path),
            calib_set=str(ort.calib_path),
            tidl_onnx=str(tidl.path),
            tidl_unsupported=tidl.tidl["unsupported"],
            tidl_unverified=tidl.tidl["unverified"],
            deploy_onnx=str(big.path),
            deploy_calib_set=str(big.calib_path),
            grouped_convs=ort.grouped_convs,
            params=ort.params,
            macs=ort.macs,
            deploy_macs=big.macs,
        )
    return ExportStage(models=exports)


def calibrate_models(
    cfg: PipelineConfig, out: Path, results: Results, progress: bool
) -> CalibStage:
    """int8 with accuracy control at the model size; int8 copies at the deployment size."""
    from gradgroup.calib.quantize import CalibConfig, quantize

    quantized: dict[str, QuantizedModel] = {}
    for arch, exp in results.export.models.items():
        onnx_path = Path(exp.onnx)
        int8 = quantize(
            onnx_path, onnx_path.with_suffix(".int8.onnx"),
            CalibConfig(max_drop=cfg.max_drop, eval_data=cfg.data, eval_frames=HELD_OUT),
        )  # fmt: skip
        deploy_path = Path(exp.deploy_onnx)
        big = quantize(
            deploy_path, deploy_path.with_suffix(".int8.onnx"),
            CalibConfig(evaluate=False, nodes_to_exclude=tuple(int8.float_nodes)),
        )  # fmt: skip
        tqdm.write(int8.summary())
        quantized[arch] = QuantizedModel(
            int8_onnx=int8.path,
            deploy_int8_onnx=big.path,
            accuracy=None if int8.accuracy is None else Accuracy.from_dict(int8.accuracy.to_dict()),
            float_nodes=tuple(int8.float_nodes),
            report=int8.json_path,
        )
    return CalibStage(models=quantized)


def _bench_models(results: Results, deploy: bool) -> list[tuple[str, str, str]]:
    """(row label, precision, ONNX path) in report order: each model fp32 then int8."""
    rows = []
    for arch, exp in results.export.models.items():
        cal = results.calib.models[arch]
        rows.append((arch, "fp32", exp.deploy_onnx if deploy else exp.onnx))
        rows.append((arch, "int8", cal.deploy_int8_onnx if deploy else cal.int8_onnx))
    return rows


def bench_models(cfg: PipelineConfig, out: Path, results: Results, progress: bool) -> BenchStage:
    """Benchmark fp32 and int8 of both models at the model size and at the deployment size."""
    from gradgroup.deploy.bench import BenchConfig, benchmark, system_info
    from gradgroup.deploy.bench_report import format_markdown_report, write_json, write_text

    accuracy = {}
    for arch, run in results.train.runs.items():
        cal = results.calib.models[arch]
        accuracy[Path(results.export.models[arch].onnx).name] = run.miou
        if cal.accuracy is not None and cal.accuracy.int8_miou is not None:
            accuracy[Path(cal.int8_onnx).name] = cal.accuracy.int8_miou
    acc_path = write_text(out / "accuracy.json", to_json(accuracy, indent=2))
    bcfg = BenchConfig(
        threads=cfg.threads, provider=cfg.provider, duration=cfg.bench_seconds, warmup=1.0,
        fps_target=cfg.fps_target,
        accuracy=str(acc_path), progress=progress,
    )  # fmt: skip
    tables: dict[str, BenchTable] = {}
    for label, deploy in (("model", False), ("deploy", True)):
        entries = _bench_models(results, deploy)
        rows = benchmark([p for _, _, p in entries], bcfg)
        info = system_info(bcfg)
        stem = out / ("bench" if not deploy else "bench_deploy")
        write_json(stem.with_suffix(".json"), rows, info, bcfg)
        write_text(stem.with_suffix(".md"), format_markdown_report(rows, info) + "\n")
        plot = _try_plot(rows, info, stem.with_suffix(".png"))
        tables[label] = BenchTable(
            json=str(stem.with_suffix(".json")),
            markdown=str(stem.with_suffix(".md")),
            plot=plot,
            rows=tuple(
                _bench_summary(arch, prec, row) for (arch, prec, _), row in zip(entries, rows)
            ),
        )
    return BenchStage(tables=tables, system=info)


def _bench_summary(arch: str, precision: str, row: Any) -> BenchSummary:
    return BenchSummary(
        model=arch,
        precision=precision,
        path=row.model,
        size=tuple(row.model_size),
        params=row.params,
        macs=row.macs,
        p50_ms=row.inference.p50,
        p99_ms=row.inference.p99,
        fps=row.inference.fps,
        frame_p99_ms=row.frame.p99,
        meets_budget=row.inference.passed,
        energy_mj=row.energy.total_mj,
        energy_label=row.energy.label,
        file_bytes=row.file_bytes,
    )


def _try_plot(rows: list, info: Any, path: Path) -> str | None:
    from gradgroup.deploy.errors import MissingDependencyError
    from gradgroup.deploy.plots import plot_bench

    try:
        return str(plot_bench(rows, info, path))
    except MissingDependencyError as exc:
        log.warning("no plot: %s", exc)
        return None


def run_demo_video(cfg: PipelineConfig, out: Path, results: Results, progress: bool) -> DemoVideo:
    """Segment a synthetic drive with the int8 efficient model into an annotated video."""
    from gradgroup.deploy.demo import DemoConfig, run_demo

    model = results.calib.models[cfg.arch].int8_onnx
    demo = run_demo(
        model, "synthetic",
        DemoConfig(out=str(out / "demo.mp4"), max_frames=cfg.demo_frames, show=False,
                   frame_size=(2 * cfg.size[0], 2 * cfg.size[1]), threads=cfg.threads,
                   provider=cfg.provider,
                   fps_target=cfg.fps_target, seed=cfg.seed, progress=progress),
    )  # fmt: skip
    tqdm.write(demo.line())
    return DemoVideo(
        out=str(out / "demo.mp4"), frames=demo.frames, fps=demo.fps,
        budget_misses=demo.budget_misses,
    )  # fmt: skip


def write_report(cfg: PipelineConfig, out: Path, results: Results, progress: bool) -> ReportFiles:
    """``report.md`` + ``report.json`` + the trade-off plot."""
    from gradgroup.report import build_report

    return build_report(cfg, out, results)
