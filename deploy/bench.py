"""Latency and energy benchmark of ONNX models against a frame-rate budget (torch-free).

``benchmark(models, cfg)`` runs each model through the board runtime (:class:`Segmenter`): a
time-based warm-up, then ``runs`` frames or ``duration`` seconds, on real-looking frames (the
calibration set or procedural street scenes, never all zeros). Each frame is timed per stage
(preprocess, inference, postprocess) and as a whole; the budget is ``1000 / fps_target`` ms and a
model passes when its p99 fits it. Model facts (params, MACs, precision, size, peak activation
memory) come from the ONNX graph, energy from :mod:`gradgroup.deploy.energy`. On TIDL, TI's
own counters (subgraphs, core time per subgraph, DDR bytes) come from :mod:`.tidl_stats`.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from .energy import EnergyEstimate, RaplMeter, dram_mj_from_bytes, estimate_energy, ti_ddr_bytes
from .errors import InputError
from .graph.stats import graph_stats
from .runtime import Segmenter
from .scenes import render_scene
from .tidl_stats import PERFSTATS_ENV, TidlRun, parse_ti_benchmark, summarize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    """How to benchmark (the CLI maps its flags 1:1 onto these).

    Attributes:
        threads: ORT intra-op threads (0: ORT's default; more than the CPUs: capped, warned).
        provider: "cpu", "tidl" or "openvino" (see :mod:`.session`).
        artifacts: TIDL artifacts folder or package (with several models: a folder holding one
            per model, named after its stem; a missing one is an error).
        runs: timed frames per model; None: run for ``duration`` seconds.
        duration: timed seconds per model when ``runs`` is None.
        warmup: seconds of untimed frames before timing.
        fps_target: frame-rate budget (budget = 1000 / fps_target ms).
        calib: calibration set (.npz) to take frames from; None: procedural scenes.
        frame_size: (H, W) of the camera frames; None: each model's input size.
        sram_mb: on-chip SRAM budget of the energy model.
        accuracy: JSON with mIoU per model (an eval report or {model: miou}).
        graph_optimization: ORT graph optimization level.
        spinning: ORT intra-op threads busy-wait between kernels (None: ORT's default).
        tidl_options: extra TIDL provider options as (TI name, value) pairs.
        ov_options: OpenVINO CPU properties as (OpenVINO name, value) pairs.
        num_frames: distinct frames cycled through.
        progress: show a progress bar per model.
    """

    threads: int = 2
    provider: str = "cpu"
    artifacts: str | None = None
    runs: int | None = None
    duration: float = 10.0
    warmup: float = 2.0
    fps_target: float = 30.0
    calib: str | None = None
    frame_size: tuple[int, int] | None = None
    sram_mb: float = 8.0
    accuracy: str | None = None
    graph_optimization: str = "all"
    spinning: bool | None = None
    tidl_options: tuple[tuple[str, str], ...] = ()
    ov_options: tuple[tuple[str, str], ...] = ()
    num_frames: int = 8
    progress: bool = True

    def __post_init__(self) -> None:
        if self.runs is not None and self.runs < 1:
            raise InputError(f"runs={self.runs} must be at least 1")
        if self.duration <= 0:
            raise InputError(f"duration={self.duration} s must be positive")
        if self.warmup < 0:
            raise InputError(f"warmup={self.warmup} s must not be negative")
        if self.fps_target <= 0:
            raise InputError(f"fps target {self.fps_target} must be positive")
        if self.threads < 0:
            raise InputError(f"threads={self.threads} must be 0 (ORT default) or more")
        cpus = os.cpu_count() or 1
        if self.threads > cpus:  # oversubscribed ORT threads run ~1000x slower, not faster
            log.warning("--threads %d is more than the %d CPUs here; using %d", self.threads,
                        cpus, cpus)  # fmt: skip
            object.__setattr__(self, "threads", cpus)  # frozen: capped once, at construction
        if self.num_frames < 1:
            raise InputError(f"num_frames={self.num_frames} must be at least 1")

    @property
    def budget_ms(self) -> float:
        """Time per frame the fps target allows."""
        return 1000.0 / self.fps_target


@dataclass(frozen=True)
class LatencyStats:
    """Distribution of per-frame times in ms, against the budget."""

    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    std: float
    fps: float
    over_budget: float  # fraction of frames slower than the budget
    passed: bool  # p99 within the budget

    @classmethod
    def from_samples(cls, samples_ms: list[float], budget_ms: float) -> LatencyStats:
        """Summarize per-frame times."""
        a = np.asarray(samples_ms, np.float64)
        p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
        return cls(
            p50=p50, p90=p90, p99=p99, max=float(a.max()), mean=float(a.mean()),
            std=float(a.std()), fps=1000.0 / float(a.mean()),
            over_budget=float((a > budget_ms).mean()), passed=p99 <= budget_ms,
        )  # fmt: skip


@dataclass(frozen=True)
class SystemInfo:
    """Where the numbers were measured (only ratios compare across machines)."""

    threads: int
    provider: str
    cpu: str
    onnxruntime: str
    platform: str
    fps_target: float
    budget_ms: float
    engine: str = ""  # what runs the graph, with versions (the OpenVINO plugin's too)


@dataclass
class BenchRow:
    """One model's measured and counted figures."""

    model: str
    name: str
    arch: str
    precision: str
    input_dtype: str
    output: str
    model_size: tuple[int, int]
    frame_size: tuple[int, int]
    params: int
    macs: int
    macs_by_type: dict[str, int]
    file_bytes: int
    peak_activation_bytes: int
    peak_intermediate_bytes: int
    frames: int
    providers: list[str]
    inference: LatencyStats
    frame: LatencyStats
    stages_ms: dict[str, float]
    energy: EnergyEstimate
    measured: dict[str, float] = field(default_factory=dict)
    miou: float | None = None
    arch_macs: int | None = None  # the architecture's MACs from the metadata (None: unknown)
    # TIDL's own counters (provider tidl), by edgeai-benchmark's names: num_subgraphs,
    # infer_time_core_ms, infer_time_subgraph_ms, ddr_transfer_mb, subgraph_ms {name: ms}.
    tidl: dict[str, Any] | None = None
    samples_ms: dict[str, list[float]] = field(default_factory=dict, repr=False)


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """CPU name from /proc/cpuinfo ("model name", or "Model"/"Hardware" on ARM boards)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def system_info(cfg: BenchConfig) -> SystemInfo:
    """The header of a benchmark report."""
    import onnxruntime as ort

    from .session import provider_version

    return SystemInfo(
        threads=cfg.threads, provider=cfg.provider, cpu=cpu_model(),
        onnxruntime=ort.__version__, platform=f"{platform.system()} {platform.machine()}",
        fps_target=cfg.fps_target, budget_ms=cfg.budget_ms,
        engine=provider_version(cfg.provider),
    )  # fmt: skip


def bench_frames(cfg: BenchConfig, model_size: tuple[int, int]) -> list[np.ndarray]:
    """BGR uint8 frames at the camera size: from the calibration set, else procedural scenes."""
    h, w = cfg.frame_size or model_size
    if cfg.calib:
        from .calibset import load_calibset

        rgb = list(load_calibset(cfg.calib).images[: cfg.num_frames])
    else:
        rgb = [render_scene(seed, (h, w))[0] for seed in range(cfg.num_frames)]
    frames = []
    for image in rgb:
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        frames.append(np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)))
    return frames


def load_accuracy(path: str | Path | None) -> dict[str, float]:
    """mIoU (fraction) by model from JSON.

    Accepted: ``{model: miou}``, ``{model: {"miou": x}}``, a ``gradgroup eval --json`` report
    ``{"model": ..., "miou": x}``, a ``gradgroup calib`` report ``{"path": ..., "accuracy":
    {"int8_miou": x}}``, or a list of reports. Values are fractions (0..1), as gradgroup writes
    them; a value above 1 is refused rather than guessed to be percent.
    """
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"accuracy file {path} is not readable JSON ({exc})") from None
    out: dict[str, float] = {}
    for rep in data if isinstance(data, list) else [data]:
        if not isinstance(rep, dict):
            continue
        name = rep.get("model", rep.get("path"))
        if isinstance(name, str):
            if (miou := _miou_of(rep)) is not None:
                out[name] = miou
        else:
            out.update({k: m for k, v in rep.items() if (m := _miou_of(v)) is not None})
    for name, miou in out.items():
        if not 0.0 <= miou <= 1.0:
            raise InputError(
                f"accuracy file {path}: mIoU {miou:g} of {name} is not a fraction in [0, 1] "
                "(gradgroup writes fractions; divide percent by 100)"
            )
    if not out:
        raise InputError(f"accuracy file {path} names no model with an mIoU; see --help")
    return out


def _miou_of(entry: Any) -> float | None:
    """The mIoU in a number or a report dict, as a fraction.

    Looked up at the top level, under "metrics", under "accuracy" (calib reports: "int8_miou")
    and under "quantization" -> "accuracy" (int8 model metadata).
    """
    value = entry
    if isinstance(entry, dict):
        quant = entry.get("quantization") if isinstance(entry.get("quantization"), dict) else {}
        places = [entry, entry.get("metrics"), entry.get("accuracy"), quant.get("accuracy")]
        found = [
            p.get(k) for p in places if isinstance(p, dict) for k in ("miou", "int8_miou") if k in p
        ]
        value = found[0] if found else None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return float(value)


def _lookup_miou(path: Path, extra: dict[str, Any], table: dict[str, float]) -> float | None:
    """mIoU from the accuracy file (matched by path, file name or stem), else the metadata."""
    for key, value in table.items():
        if key in (str(path), path.name, path.stem) or Path(key).name == path.name:
            return value
    return _miou_of(extra)


def _artifacts_for(cfg: BenchConfig, path: Path, several: bool) -> str | None:
    """The TIDL artifacts of one model: ``--artifacts`` itself, or with several models its
    sub-folder named after the model's stem (an artifacts folder or a package), which must exist:
    one model's artifacts never stand in for another's."""
    if cfg.artifacts is None or not several or cfg.provider != "tidl":
        return cfg.artifacts
    parent = Path(cfg.artifacts)
    if not parent.is_dir():
        raise InputError(f"--artifacts {parent} does not exist; compile the models first")
    sub = parent / path.stem
    if not sub.is_dir():
        raise InputError(
            f"--artifacts {parent} has no folder {path.stem}/ for model {path.name}: with several "
            f"models each needs its own (gradgroup calib {path.name} --target tidl --out {sub})"
        )
    return str(sub)


def benchmark(models: list[str | Path], cfg: BenchConfig) -> list[BenchRow]:
    """Benchmark each model in turn; the first is the baseline of the ratio columns.

    Args:
        models: ONNX files.
        cfg: how to run.

    Returns:
        One :class:`BenchRow` per model, in order.

    Raises:
        InputError: no models, a missing/corrupt model or calibration set, bad settings, a
            missing per-model artifacts folder.
        MissingDependencyError: provider "tidl" without TI's onnxruntime.
    """
    if not models:
        raise InputError("no models given; pass one or more ONNX files")
    paths = [Path(m) for m in models]
    for p in paths:
        if not p.is_file():
            raise InputError(f"model {p} does not exist")
    accuracy = load_accuracy(cfg.accuracy)
    artifacts = [_artifacts_for(cfg, p, len(paths) > 1) for p in paths]  # all, before any timing
    return [bench_one(p, cfg, accuracy, a) for p, a in zip(paths, artifacts, strict=True)]


def bench_one(
    path: Path, cfg: BenchConfig, accuracy: dict[str, float], artifacts: str | None
) -> BenchRow:
    """Warm up, time and count one model."""
    if cfg.provider == "tidl":  # per-subgraph timestamps; TI reads it when the session is made
        os.environ.setdefault(PERFSTATS_ENV, "1")
    seg = Segmenter(
        path, cfg.provider, threads=cfg.threads, artifacts=artifacts,
        graph_optimization=cfg.graph_optimization, spinning=cfg.spinning,
        tidl_options=dict(cfg.tidl_options) or None, ov_options=dict(cfg.ov_options) or None,
    )  # fmt: skip
    spec = seg.meta.preprocess
    stats = graph_stats(path, input_size=spec.size)
    frames = bench_frames(cfg, spec.size)
    deadline = time.perf_counter() + cfg.warmup
    i = 0
    while i == 0 or time.perf_counter() < deadline:  # at least one warm-up frame
        seg(frames[i % len(frames)])
        i += 1
    samples: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": []}
    whole: list[float] = []
    ddr = 0
    tidl_runs: list[TidlRun] = []
    rapl = RaplMeter()
    use_rapl = rapl.available
    total = cfg.runs if cfg.runs else cfg.duration
    bar = tqdm(total=total, desc=path.name, unit="frame" if cfg.runs else "s",
               disable=not cfg.progress, leave=False)  # fmt: skip
    if use_rapl:
        rapl.start()
    start = time.perf_counter()
    n = 0
    while (n < cfg.runs) if cfg.runs else (time.perf_counter() - start < cfg.duration):
        t0 = time.perf_counter()
        result = seg(frames[n % len(frames)])
        t1 = time.perf_counter()
        whole.append((t1 - t0) * 1000.0)
        for k, v in result.timings.items():
            samples[k].append(v)
        ti = seg.ti_benchmark() if cfg.provider == "tidl" else None
        if ti:
            ddr += ti_ddr_bytes(ti)
            if (run := parse_ti_benchmark(ti)) is not None:
                tidl_runs.append(run)
        n += 1
        bar.update(1 if cfg.runs else min(t1 - start, cfg.duration) - bar.n)
    bar.close()
    measured: dict[str, float] = {}
    if use_rapl:
        measured["rapl_package_mj_per_frame"] = rapl.stop() * 1000.0 / n
    if ddr:
        measured["ti_ddr_mb_per_frame"] = ddr / n / 1e6
        measured["ti_dram_mj_per_frame"] = dram_mj_from_bytes(ddr / n)
    budget = cfg.budget_ms
    row = BenchRow(
        model=str(path), name=path.stem, arch=seg.meta.arch, precision=stats.precision,
        input_dtype=seg.meta.input_dtype, output=seg.meta.output, model_size=spec.size,
        frame_size=frames[0].shape[:2], params=stats.params, macs=stats.macs,
        macs_by_type=stats.macs_by_type, file_bytes=stats.file_bytes,
        peak_activation_bytes=stats.peak_activation_bytes,
        peak_intermediate_bytes=stats.peak_intermediate_bytes, frames=n, providers=seg.providers,
        inference=LatencyStats.from_samples(samples["inference"], budget),
        frame=LatencyStats.from_samples(whole, budget),
        stages_ms={k: float(np.mean(v)) for k, v in samples.items()},
        energy=estimate_energy(stats, cfg.fps_target, cfg.sram_mb), measured=measured,
        miou=_lookup_miou(path, seg.meta.extra, accuracy), arch_macs=seg.meta.macs or None,
        tidl=summarize(tidl_runs),
        samples_ms={"inference": samples["inference"], "frame": whole},
    )  # fmt: skip
    log.info(
        "%s: inference p50 %.1f ms, frame p99 %.1f ms (%s at %g fps), %.2f mJ/frame (estimate)",
        path.name, row.inference.p50, row.frame.p99, "pass" if row.frame.passed else "FAIL",
        cfg.fps_target, row.energy.total_mj,
    )  # fmt: skip
    return row
