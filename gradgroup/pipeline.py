"""The pipeline: train, export, calibrate, benchmark and demo; one call, one report.

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
    OUT/run.json                                versions, command line and settings
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gradgroup import stages
from gradgroup.config import STAGES, PipelineConfig
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.fileio import check_writable, folder_lock, to_json, write_text_atomic
from gradgroup.deploy.provenance import write_run_record
from gradgroup.results import STAGE_TYPES, Results, StageResult

log = logging.getLogger(__name__)


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

    def done(self, stage: str) -> StageResult | None:
        """The stage's stored result, or None: never run, its files gone, or no longer parsing."""
        entry = self.data["stages"].get(stage)
        if entry is None:
            return None
        try:
            result = STAGE_TYPES[stage].from_dict(entry)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # an older layout
            log.warning("%s: the %s entry no longer parses (%s); running the stage again",
                        self.path, stage, exc)  # fmt: skip
            return None
        missing = [p for p in result.artifacts if not Path(p).exists()]
        return None if missing else result

    def finish(self, stage: str, result: StageResult) -> None:
        self.data["stages"][stage] = result.to_dict()
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
    if cfg.provider == "openvino":  # a missing plugin fails now, not after the training
        from gradgroup.deploy.session import openvino_devices

        openvino_devices()
    with folder_lock(out, "pipeline"):  # two pipelines in one folder would mix their stages
        return _run_stages(cfg, out, start, progress)


def _run_stages(cfg: PipelineConfig, out: Path, start: float, progress: bool) -> PipelineResult:
    """The stages in order, each reused from ``OUT/state.json`` when it finished before."""
    state = _State(out, cfg)
    write_run_record(out, asdict(cfg))  # versions, command line, settings: OUT/run.json
    steps: list[tuple[str, Callable[..., StageResult], float]] = [
        ("train", stages.train_models, 2 * cfg.budget_min * 60),
        ("export", stages.export_models, 20),
        ("calib", stages.calibrate_models, 60),
        ("bench", stages.bench_models, 8 * (cfg.bench_seconds + 2) + 10),
        ("demo", stages.run_demo_video, 20),
        ("report", stages.write_report, 5),
    ]
    total = round(sum(weight for _, _, weight in steps))
    results = Results()
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
                setattr(results, name, reused)
            else:
                with _Ticker(bar, done, weight):
                    setattr(results, name, fn(cfg, out, results, progress))
                state.finish(name, getattr(results, name))
            done += weight
            bar.n = round(done)
            bar.refresh()
    finally:
        bar.close()
    report = results.report
    return PipelineResult(
        out=str(out),
        report_md=report.report_md,
        report_json=report.report_json,
        rows=report.rows,
        seconds=time.perf_counter() - start,
    )


__all__ = ["STAGES", "PipelineConfig", "PipelineResult", "run_pipeline"]
