"""Live segmentation demo: a source through the Segmenter onto a window and/or a video file.

``run_demo`` reads frames (live sources on a latest-frame thread, files frame by frame), segments
them, blends the colourized class map over the input with a legend and a timing HUD, shows and/or
records the result, and returns per-stage statistics against the fps budget. The budget is checked
on the processing time of a frame (preprocess + inference + postprocess + render); capture is
reported separately because for a live source it is time spent waiting for the camera.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .capture import FrameFeed
from .errors import InputError
from .fileio import check_writable
from .table import format_table
from .view import (
    FOURCC,
    STAGES,
    WINDOW,
    Hud,
    VideoRecorder,
    check_display,
    draw_hud,
    draw_legend,
    overlay,
)

log = logging.getLogger(__name__)

ROWS = (*STAGES, "frame", "latency")  # frame: budgeted processing; latency: arrival -> rendered


@dataclass(frozen=True)
class DemoConfig:
    """How the demo runs.

    Attributes:
        opacity: weight of the class colours over the input, 0..1.
        fps_target: frame budget is 1000 / fps_target ms.
        show: open a window (needs a display and an OpenCV with GUI support: opencv-python,
            not the base install's opencv-python-headless).
        out: write the annotated video here (.mp4/.avi/.mkv) at the source's size and frame rate.
        max_frames: stop after this many processed frames (None: until the source ends).
        snapshot_dir: where the ``s`` key saves PNG snapshots.
        frame_size: (H, W) of synthetic frames / resolution requested from a camera (None:
            the source's default).
        threads: ONNX Runtime intra-op threads (default 2, as in bench; None or 0: ORT's default).
        provider: ``"cpu"``, ``"tidl"`` or ``"openvino"`` execution provider.
        artifacts: TIDL artifacts folder (provider ``"tidl"``).
        tidl_options, ov_options: the provider's own options, as for :class:`.runtime.Segmenter`.
        seed: seed of the synthetic source.
        legend: draw the legend of classes present.
        progress: show a progress bar when headless.
    """

    opacity: float = 0.5
    fps_target: float = 30.0
    show: bool = False
    out: str | None = None
    max_frames: int | None = None
    snapshot_dir: str = "snapshots"
    frame_size: tuple[int, int] | None = None
    threads: int | None = 2
    provider: str = "cpu"
    artifacts: str | None = None
    tidl_options: tuple[tuple[str, str], ...] = ()
    ov_options: tuple[tuple[str, str], ...] = ()
    seed: int = 0
    legend: bool = True
    progress: bool = True

    @property
    def budget_ms(self) -> float:
        return 1000.0 / self.fps_target


@dataclass(frozen=True)
class StageStats:
    """Mean and 99th percentile of one stage, in ms."""

    mean_ms: float
    p99_ms: float


@dataclass
class DemoResult:
    """What a demo run measured.

    Attributes:
        source: the source spec (or the source object's name).
        frames: frames processed; dropped: stale live frames dropped; skipped: unreadable frames.
        stages: per-stage statistics, keys from ``ROWS``.
        fps: effective frames per second over the whole run (wall clock).
        budget_misses: frames whose processing exceeded ``budget_ms``.
        out: the written video, if any; video_frames counts frames written to it.
        interrupted: the run was stopped with Ctrl-C (the video is still complete).
    """

    model: str
    source: str
    frames: int
    dropped: int
    skipped: int
    stages: dict[str, StageStats]
    fps: float
    wall_s: float
    budget_ms: float
    budget_misses: int
    out: str | None = None
    video_frames: int = 0
    video_fps: float = 0.0
    snapshots: list[str] = field(default_factory=list)
    skipped_names: list[str] = field(default_factory=list)
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """Per-stage mean/p99 table."""
        rows = [(k, f"{s.mean_ms:.2f}", f"{s.p99_ms:.2f}") for k, s in self.stages.items()]
        return format_table(("stage", "mean ms", "p99 ms"), rows)

    def line(self) -> str:
        """One result line."""
        text = (
            f"demo {'interrupted' if self.interrupted else 'done'}: {self.frames} frames "
            f"({self.dropped} dropped, {self.skipped} skipped), {self.fps:.1f} fps effective, "
            f"{self.budget_misses}/{self.frames} over the {self.budget_ms:.1f} ms budget"
        )
        if self.out:
            text += f", saved {self.out} ({self.video_frames} frames at {self.video_fps:g} fps)"
        return text


def _check_config(cfg: DemoConfig) -> None:
    if not 0.0 <= cfg.opacity <= 1.0:
        raise InputError(f"opacity {cfg.opacity} must be between 0 and 1")
    if cfg.fps_target <= 0:
        raise InputError(f"fps target {cfg.fps_target} must be positive")
    if cfg.max_frames is not None and cfg.max_frames < 1:
        raise InputError(f"max frames {cfg.max_frames} must be at least 1")
    if cfg.out and Path(cfg.out).suffix.lower() not in FOURCC:
        raise InputError(f"output {cfg.out} must end in one of {', '.join(FOURCC)}")
    if cfg.out:
        check_writable(cfg.out, "--out")


def _open_segmenter(model_path: str | Path, cfg: DemoConfig):
    from .runtime import Segmenter

    return Segmenter(
        model_path, threads=cfg.threads, provider=cfg.provider, artifacts=cfg.artifacts,
        tidl_options=dict(cfg.tidl_options) or None, ov_options=dict(cfg.ov_options) or None,
    )  # fmt: skip


def _open_source(spec: Any, cfg: DemoConfig):
    """A FrameSource from a spec; a ready source object (tests, embedding apps) passes through."""
    if not isinstance(spec, str | int | Path):
        return spec
    from .sources import open_source

    # max_frames is enforced by the loop: for a live source it counts processed frames.
    return open_source(
        str(spec) if isinstance(spec, Path) else spec, size=cfg.frame_size, seed=cfg.seed
    )


def _stats(values: list[float]) -> StageStats:
    if not values:
        return StageStats(0.0, 0.0)
    arr = np.asarray(values, np.float64)
    return StageStats(round(float(arr.mean()), 3), round(float(np.percentile(arr, 99)), 3))


def run_demo(
    model_path: str | Path, source_spec: Any, cfg: DemoConfig = DemoConfig()
) -> DemoResult:
    """Segment a source frame by frame, showing and/or recording the annotated view.

    Args:
        model_path: ONNX model exported by gradgroup.
        source_spec: ``"synthetic"``, a camera index or device, a video, an image folder, a
            GStreamer/RTSP string (see ``sources.open_source``), or an open FrameSource.
        cfg: demo settings.

    Returns:
        DemoResult with frame counts, per-stage statistics, effective fps and budget misses.
        Ctrl-C ends the run early with ``interrupted=True``; the video so far is kept.

    Raises:
        InputError: bad settings, model or source, no display for ``show``, no readable frame.
        RunError: the video cannot be written or a live source stalls.
    """
    _check_config(cfg)
    if cfg.show:
        check_display()
    seg = _open_segmenter(model_path, cfg)
    source = _open_source(source_spec, cfg)
    if not cfg.show and not cfg.out:
        log.warning("no --out and no --show: the demo only measures (add --out out.mp4)")
    loop = _DemoLoop(seg, source, cfg)
    with source:
        loop.run()
    skipped = list(getattr(source, "skipped", []) or [])
    if loop.frames == 0 and not loop.interrupted:
        raise InputError(f"source {source_spec!r} gave no readable frame ({len(skipped)} skipped)")
    return DemoResult(
        model=str(model_path),
        source=str(source_spec)
        if isinstance(source_spec, str | int | Path)
        else type(source).__name__,
        frames=loop.frames,
        dropped=loop.dropped,
        skipped=len(skipped),
        stages={k: _stats(loop.times[k]) for k in ROWS},
        fps=round(loop.frames / loop.wall_s, 2) if loop.wall_s > 0 else 0.0,
        wall_s=round(loop.wall_s, 3),
        budget_ms=round(cfg.budget_ms, 3),
        budget_misses=loop.misses,
        out=loop.out,
        video_frames=loop.video_frames,
        video_fps=loop.video_fps,
        snapshots=loop.snapshots,
        skipped_names=skipped,
        interrupted=loop.interrupted,
    )


class _DemoLoop:
    """The frame loop and its counters; split out so ``run_demo`` reads top to bottom."""

    def __init__(self, seg: Any, source: Any, cfg: DemoConfig) -> None:
        self.seg, self.source, self.cfg = seg, source, cfg
        self.times: dict[str, list[float]] = {k: [] for k in ROWS}
        self.frames = self.misses = self.dropped = self.video_frames = 0
        self.paused_drops = 0
        self.wall_s = 0.0
        self.video_fps = 0.0
        self.out: str | None = None
        self.snapshots: list[str] = []
        self.interrupted = False
        self.quit = False
        self.paused = False
        self._fps_ema = 0.0
        self._last = 0.0
        self._hud: Hud | None = None

    def run(self) -> None:
        from tqdm import tqdm

        cfg = self.cfg
        src_fps = float(getattr(self.source, "fps", 0.0) or 0.0)
        self.video_fps = src_fps if src_fps > 0 else cfg.fps_target
        recorder = VideoRecorder(cfg.out, self.video_fps) if cfg.out else None
        count = getattr(self.source, "count", None)
        total = min(x for x in (count, cfg.max_frames) if x) if (count or cfg.max_frames) else None
        # disable=None: tqdm hides itself when stderr is not a terminal.
        quiet = cfg.show or not cfg.progress
        bar = tqdm(total=total, unit="frame", leave=False, disable=True if quiet else None)
        start = time.perf_counter()
        try:
            with FrameFeed(self.source) as feed:
                while not self.quit and (cfg.max_frames is None or self.frames < cfg.max_frames):
                    got = feed.next()
                    if got is None:
                        break
                    img, drops = self._process(got, feed)
                    if recorder is not None:
                        # Live: a frame is written once for itself and once per stale frame
                        # dropped before it, so the video keeps the camera's timing.
                        for _ in range(1 + drops):
                            recorder.write(img)
                    if cfg.show:
                        self._show(img, feed)
                    bar.update(1)
        except KeyboardInterrupt:
            self.interrupted = True
            log.warning("interrupted: closing the video and summarizing %d frames", self.frames)
        except BaseException:
            if recorder is not None:
                recorder.discard()
            raise
        finally:
            self.wall_s = time.perf_counter() - start
            bar.close()
            if cfg.show:
                cv2.destroyWindow(WINDOW)
        if recorder is not None:
            self.out = recorder.finish()
            self.video_frames = recorder.frames

    def _process(self, got: Any, feed: FrameFeed) -> tuple[np.ndarray, int]:
        """Segment and render one frame; returns the view and the live drops since the last."""
        frame = got.frame.image
        seg = self.seg(frame)
        t0 = time.perf_counter()
        view = overlay(frame, seg.class_map, self.seg.meta.classes, self.cfg.opacity)
        if self.cfg.legend:
            draw_legend(view, seg.class_map, self.seg.meta.classes)
        stages = {"capture": got.capture_ms, **seg.timings}
        stages["render"] = (time.perf_counter() - t0) * 1000.0
        frame_ms = sum(seg.timings.values()) + stages["render"]
        dropped = feed.dropped - self.paused_drops
        new_drops, self.dropped = dropped - self.dropped, dropped
        now = time.perf_counter()
        if self.frames:
            dt = max(now - self._last, 1e-6)
            self._fps_ema = 1.0 / dt if self._fps_ema == 0 else 0.9 * self._fps_ema + 0.1 / dt
        self._last = now
        hud = Hud(self._fps_ema, stages, self.cfg.budget_ms, frame_ms, self.frames + 1, dropped)
        draw_hud(view, hud)
        stages["render"] = (time.perf_counter() - t0) * 1000.0  # with the HUD, for the stats
        self.misses += hud.over_budget  # the miss the viewer saw, decided before the HUD
        for k, v in stages.items():
            self.times[k].append(v)
        self.times["frame"].append(frame_ms)
        self.times["latency"].append((time.perf_counter() - got.stamp) * 1000.0)
        self.frames += 1
        self._hud = hud
        return view, new_drops

    def _show(self, img: np.ndarray, feed: FrameFeed) -> None:
        cv2.imshow(WINDOW, img)
        self._key(cv2.waitKey(1) & 0xFF, img)
        if self.paused:
            drops_at_pause = feed.dropped
            paused_view = img.copy()
            self._hud.paused = True
            draw_hud(paused_view, self._hud)
            cv2.imshow(WINDOW, paused_view)
            while self.paused and not self.quit:
                self._key(cv2.waitKey(30) & 0xFF, img)
            self.paused_drops += feed.dropped - drops_at_pause  # frames missed while paused
        if cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            self.quit = True  # the user closed the window

    def _key(self, key: int, img: np.ndarray) -> None:
        if key in (ord("q"), 27):
            self.quit = True
        elif key == ord(" "):
            self.paused = not self.paused
        elif key == ord("s"):
            folder = Path(self.cfg.snapshot_dir)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"snapshot_{self.frames:06d}_{len(self.snapshots):02d}.png"
            cv2.imwrite(str(path), img)
            self.snapshots.append(str(path))
            log.info("snapshot saved to %s", path)
