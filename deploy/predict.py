"""Predictions as files: one PNG per input image, in the formats evaluation tools and people read.

:func:`predict_folder` segments every image of a source and writes ``OUT/<format>/<name>.png``
for each format asked for (:data:`.prediction.FORMATS`: ``trainid``, ``labelid``, ``color``,
``overlay``). ``<name>`` is the input's path relative to the source folder (sub-folders are
kept) with a ``.png`` suffix, the file name for one image, ``frame_000123`` for a video's frames.
Every file appears atomically, so a run that was interrupted, re-run with the same command, skips
the inputs whose files are all there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError
from .fileio import check_writable, folder_lock, to_json, write_text_atomic
from .prediction import FORMATS, Prediction, check_cityscapes, check_formats, output_path
from .sources import (
    IMAGE_EXTENSIONS,
    FolderSource,
    FrameSource,
    list_images,
    open_source,
    parse_frame_spec,
)

log = logging.getLogger(__name__)

MANIFEST = ".gradgroup-predict.json"  # which model wrote the folder: a resume must not mix two


@dataclass(frozen=True)
class PredictConfig:
    """Settings of :func:`predict_folder`.

    Attributes:
        formats: output formats, from :data:`FORMATS`; each goes to its own sub-folder.
        opacity: weight of the class colours in ``overlay``, 0..1.
        max_frames: stop after the first N inputs (needed for endless sources).
        overwrite: redo every input, also those whose files exist (a resume skips them).
        provider, threads, artifacts, tidl_options, ov_options: as for
            :class:`.runtime.Segmenter`.
        progress: show a progress bar.
    """

    formats: tuple[str, ...] = ("color",)
    opacity: float = 0.5
    max_frames: int | None = None
    overwrite: bool = False
    provider: str = "cpu"
    threads: int | None = 2
    artifacts: str | None = None
    tidl_options: tuple[tuple[str, str], ...] = ()
    ov_options: tuple[tuple[str, str], ...] = ()
    progress: bool = True


@dataclass
class PredictResult:
    """What :func:`predict_folder` did: inputs written, already done, skipped, and the speed."""

    model: str
    source: str
    out: str
    formats: list[str]
    images: int  # inputs segmented and written by this run
    files: int  # PNG files written by this run
    resumed: int  # inputs whose files were already there
    skipped: int  # unreadable inputs
    skipped_names: list[str]
    seconds: float
    fps: float
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        parts = [f"{self.images} image(s) in {self.seconds:.1f} s ({self.fps:.1f} fps)"]
        if self.resumed:
            parts.append(f"{self.resumed} already done")
        if self.skipped:
            names = ", ".join(self.skipped_names[:3]) + (", ..." if self.skipped > 3 else "")
            parts.append(f"{self.skipped} skipped ({names})")
        head = "predict interrupted" if self.interrupted else "predict done"
        return f"{head}: {', '.join(parts)}; saved to {self.out} ({', '.join(self.formats)})"


def open_images(
    spec: str | Path | int, max_frames: int | None = None, exclude: tuple[Path, ...] = ()
) -> FrameSource:
    """Open a source of images to predict: one image file, a folder (``images:DIR`` or bare)
    read with its sub-folders, or any other frame spec of :func:`.sources.parse_frame_spec`
    (video, camera, stream, ``synthetic``).

    Args:
        spec: the source.
        max_frames: stop after N images; required for sources without an end.
        exclude: folders under a source folder whose images are not inputs (the outputs).

    Raises:
        InputError: the source does not exist, holds no images, or has no end and no
            ``max_frames``.
    """
    frames = parse_frame_spec(str(spec) if isinstance(spec, Path) else spec)
    path = Path(str(frames.value))
    if frames.kind == "video" and path.suffix.lower() in IMAGE_EXTENSIONS:  # one image
        return FolderSource(path.parent, max_frames, files=[path])
    if frames.kind == "images":
        skip = [p.resolve() for p in exclude]
        files = [
            p
            for p in list_images(path, recursive=True)
            if not any(p.resolve().is_relative_to(s) for s in skip)
        ]
        return FolderSource(path, max_frames, files=files)
    source = open_source(str(spec) if isinstance(spec, Path) else spec, max_frames=max_frames)
    if source.count is None and max_frames is None:
        source.close()
        raise InputError(f"source {spec!r} has no end; give the number of frames (--max-frames)")
    return source


def iter_predictions(
    seg: Any, source: Any, max_frames: int | None = None, skip: Callable[[str], bool] | None = None
) -> Iterator[Prediction]:
    """Segment a source image by image.

    Args:
        seg: a :class:`.runtime.Segmenter`.
        source: an image, folder, video or stream spec (:func:`open_images`), an open
            FrameSource, or one (H, W, 3) uint8 BGR array.
        max_frames: stop after N images.
        skip: names for which this returns True are not segmented (a resume's finished inputs).

    Yields:
        One :class:`Prediction` per readable image; unreadable ones are warned about and left
        out (``source.skipped`` names them).
    """
    if isinstance(source, np.ndarray):
        got = seg(source)
        yield Prediction("image", got.class_map, seg.meta.classes, source, got.timings)
        return
    own = not isinstance(source, FrameSource)  # opened here, so closed here
    opened = open_images(source, max_frames) if own else source
    with opened if own else nullcontext(opened):
        for count, frame in enumerate(opened):
            if max_frames is not None and count >= max_frames:
                break
            if skip is not None and skip(frame.name):
                continue
            got = seg(frame.image)
            yield Prediction(frame.name, got.class_map, seg.meta.classes, frame.image, got.timings)


def predict_folder(
    model: str | Path,
    source: str | Path | int,
    out: str | Path,
    cfg: PredictConfig = PredictConfig(),
) -> PredictResult:
    """Segment every image of ``source`` and write one PNG per image and format under ``out``.

    Everything is checked before the first image: the formats, the output folder, the source,
    the model (and that it predicts Cityscapes classes for ``labelid``), and that ``out`` was not
    written by another model. Inputs whose files all exist are skipped (a resume) unless
    ``cfg.overwrite``. Ctrl-C stops after the current image with ``interrupted=True``.

    Returns:
        PredictResult with the counts, the skipped names, seconds and fps.

    Raises:
        InputError: a bad format or setting, output folder, source or model; two inputs that
            would write the same file; no readable image.
        RunError: a file cannot be written (disk full, ...).
    """
    from .runtime import Segmenter

    formats = check_formats(cfg.formats)
    if not 0.0 <= cfg.opacity <= 1.0:
        raise InputError(f"opacity {cfg.opacity} must be between 0 and 1")
    if cfg.max_frames is not None and cfg.max_frames < 1:
        raise InputError(f"max frames {cfg.max_frames} must be at least 1")
    out = Path(out)
    check_writable(out, "--out", folder=True)
    with ExitStack() as stack:
        src = stack.enter_context(
            open_images(source, cfg.max_frames, tuple(out / f for f in FORMATS))
        )
        seg = Segmenter(
            model, provider=cfg.provider, threads=cfg.threads, artifacts=cfg.artifacts,
            tidl_options=dict(cfg.tidl_options) or None, ov_options=dict(cfg.ov_options) or None,
        )  # fmt: skip
        if "labelid" in formats:
            check_cityscapes(seg.meta.classes, f"model {model}")
        digest = _check_manifest(out, model, cfg.overwrite)

        def done(name: str) -> bool:
            return not cfg.overwrite and all(output_path(out, name, f).exists() for f in formats)

        resumed = _drop_finished(src, done) if isinstance(src, FolderSource) else 0
        stack.enter_context(folder_lock(out, "predict"))
        write_text_atomic(out / MANIFEST, to_json({"model": str(model), "sha256": digest}) + "\n")
        loop = _Loop(seg, src, out, formats, cfg, done)
        loop.run()
        resumed += loop.resumed
        skipped = list(src.skipped)
        if loop.images == 0 and resumed == 0 and not loop.interrupted:
            (out / MANIFEST).unlink(missing_ok=True)  # leave no folder behind for nothing
            raise InputError(f"source {source} gave no readable image ({len(skipped)} skipped)")
    return PredictResult(
        model=str(model), source=str(source), out=str(out), formats=list(formats),
        images=loop.images, files=loop.files, resumed=resumed, skipped=len(skipped),
        skipped_names=skipped, seconds=round(loop.seconds, 3),
        fps=round(loop.images / loop.seconds, 2) if loop.seconds > 0 else 0.0,
        interrupted=loop.interrupted,
    )  # fmt: skip


class _Loop:
    """The segment-and-write loop of :func:`predict_folder`, with its counters."""

    def __init__(self, seg, src, out: Path, formats, cfg: PredictConfig, done) -> None:
        self.seg, self.src, self.out, self.formats, self.cfg = seg, src, out, formats, cfg
        self.done = done
        self.images = self.files = self.resumed = 0
        self.seconds = 0.0
        self.interrupted = False

    def _skip(self, name: str) -> bool:
        if self.done(name):
            self.resumed += 1
            self.bar.update(1)
            return True
        return False

    def run(self) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        cfg = self.cfg
        # disable=None: tqdm hides itself when stderr is not a terminal.
        self.bar = tqdm(
            total=self.src.count, unit="img", leave=False, disable=None if cfg.progress else True
        )
        start = time.perf_counter()
        try:
            with logging_redirect_tqdm() if cfg.progress else nullcontext():
                for pred in iter_predictions(self.seg, self.src, cfg.max_frames, self._skip):
                    for fmt in self.formats:
                        path = output_path(self.out, pred.name, fmt)
                        if cfg.overwrite or not path.exists():
                            pred.save(path, fmt, cfg.opacity)
                            self.files += 1
                    self.images += 1
                    self.bar.update(1)
        except KeyboardInterrupt:
            self.interrupted = True
            log.warning("interrupted after %d image(s); the same command resumes", self.images)
        finally:
            self.seconds = time.perf_counter() - start
            self.bar.close()


def _drop_finished(src: FolderSource, done: Callable[[str], bool]) -> int:
    """Refuse two inputs that would write the same file; drop the finished ones (not read)."""
    owners: dict[Path, Path] = {}
    for path in src.files:
        key = output_path(".", path.relative_to(src.root).as_posix(), "x")
        if key in owners:
            raise InputError(
                f"inputs {owners[key]} and {path} would both be written as {key.name}; rename one"
            )
        owners[key] = path
    todo = [p for p in src.files if not done(p.relative_to(src.root).as_posix())]
    resumed = len(src.files) - len(todo)
    src.files, src.count = todo, len(todo)
    return resumed


def _check_manifest(out: Path, model: str | Path, overwrite: bool) -> str:
    """sha256 of the model; InputError when ``out`` holds another model's predictions."""
    digest = hashlib.sha256(Path(model).read_bytes()).hexdigest()
    try:
        before = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return digest
    if not overwrite and isinstance(before, dict) and before.get("sha256") not in (None, digest):
        raise InputError(
            f"--out {out} holds predictions of another model ({before.get('model')}); "
            "pass --overwrite to replace them or choose another folder"
        )
    return digest
