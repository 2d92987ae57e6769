"""Unlabelled frame sources for the demo, the benchmark and the calibration-set builder.

One grammar names a stream of frames everywhere (``demo``, ``predict``, ``export --calib-data``):
:func:`parse_frame_spec` reads it and ``open_source(spec)`` opens it.

- ``synthetic`` — a procedural street-scene sequence (:class:`.scenes.SceneSequence`), the
  camera driving forward; infinite unless ``max_frames`` is given.
- ``images:DIR`` — a folder of images (``.png .jpg .jpeg .bmp .tif .tiff .webp``), in name order;
  a bare folder path means the same.
- ``video:FILE`` — a video file (anything OpenCV's FFmpeg backend decodes); a bare file path
  means the same.
- ``camera:N`` — a live camera by index; a bare index (``0``) or a device path ``/dev/videoN``
  means the same.
- an RTSP/HTTP(S) URL, or a GStreamer pipeline string (contains ``!``) where OpenCV was built with
  GStreamer — live.

Labelled datasets (``cityscapes:DIR``, ``folder:DIR``) are :mod:`.datasets`' grammar; where
frames are wanted from one (calibration), its train images are read.

Every source yields :class:`Frame` objects holding BGR uint8 images, as OpenCV delivers them.
A source that does not exist or will not open raises :class:`~.errors.InputError`. A single bad
frame — a corrupt file in a folder, an undecodable frame in the middle of a video — is skipped,
warned about once and recorded by name in ``source.skipped``; it never raises.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_FPS = 30.0
SYNTHETIC_SIZE = (512, 1024)
# A video whose frames fail this many times in a row is treated as ending there (truncated file).
MAX_CONSECUTIVE_FAILURES = 30


@dataclass(frozen=True)
class Frame:
    """One frame from a source."""

    image: np.ndarray  # (H, W, 3) uint8 BGR, as OpenCV delivers
    name: str  # file name, "frame_000123", ...
    index: int


class FrameSource:
    """Base class: a context manager and iterable of :class:`Frame`.

    Attributes:
        live: camera or stream (True) or file, folder, synthetic (False).
        fps: nominal frame rate (the video's own, the camera's reported, 30 otherwise).
        size: (H, W) when known.
        count: frames in a file or folder (after ``max_frames``); None when live or infinite.
        skipped: names of frames that could not be read.
    """

    live: bool = False
    fps: float = DEFAULT_FPS
    size: tuple[int, int] | None = None
    count: int | None = None

    def __init__(self, max_frames: int | None = None) -> None:
        self.max_frames = max_frames
        self.skipped: list[str] = []

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the device or file; safe to call twice."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _skip(self, name: str, why: str) -> None:
        self.skipped.append(name)
        log.warning("skipped frame %s: %s", name, why)

    def _cap(self, n: int | None) -> int | None:
        if self.max_frames is None:
            return n
        return self.max_frames if n is None else min(n, self.max_frames)


class SyntheticSource(FrameSource):
    """Procedural street scenes as a moving sequence."""

    def __init__(self, size: tuple[int, int], max_frames: int | None, seed: int) -> None:
        from .scenes import SceneSequence

        super().__init__(max_frames)
        self.size = size
        self.count = max_frames
        self.sequence = SceneSequence(seed, size)

    def __iter__(self) -> Iterator[Frame]:
        t = 0
        while self.max_frames is None or t < self.max_frames:
            rgb, _ = self.sequence.frame(t)
            yield Frame(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), f"frame_{t:06d}", t)
            t += 1


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (its sub-folders too with ``recursive``), by relative path.

    Hidden files and folders (a leading ``.``: editors' and gradgroup's own temp files) are left
    out.
    """
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        (
            p
            for p in found
            if p.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
            and p.is_file()
        ),
        key=lambda p: p.relative_to(folder).parts,
    )


class FolderSource(FrameSource):
    """Images in a folder, in name order; unreadable files are counted skips.

    Args:
        folder: the folder; frame names are paths relative to it (``city/x.png`` with
            ``recursive``).
        max_frames: keep the first N images.
        recursive: read the sub-folders too.
        files: read these images (under ``folder``) instead of listing it.
    """

    def __init__(
        self,
        folder: Path,
        max_frames: int | None,
        recursive: bool = False,
        files: list[Path] | None = None,
    ) -> None:
        super().__init__(max_frames)
        self.root = folder
        self.files = list_images(folder, recursive) if files is None else list(files)
        if not self.files:
            # No flag named here: demo (--source) and export (--calib-data) both read folders.
            raise InputError(f"folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.files = self.files[: self._cap(len(self.files))]
        self.count = len(self.files)
        first = cv2.imread(str(self.files[0]), cv2.IMREAD_COLOR)
        self.size = first.shape[:2] if first is not None else None

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.files):
            name = path.relative_to(self.root).as_posix()
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self._skip(name, "not a readable image")
                continue
            yield Frame(image, name, index)


class CaptureSource(FrameSource):
    """A cv2.VideoCapture: video file, camera, stream URL or GStreamer pipeline."""

    def __init__(
        self,
        target: str | int,
        live: bool,
        api: int,
        size: tuple[int, int] | None,
        max_frames: int | None,
        what: str,
    ) -> None:
        super().__init__(max_frames)
        self.live = live
        self._lock = threading.Lock()
        self._closed = False
        self.cap = cv2.VideoCapture(target, api)
        if not self.cap.isOpened():
            self.cap.release()
            hint = {
                "video file": "not a video OpenCV can decode, or truncated",
                "camera": "no such camera, or another program holds it",
                "camera device": "no such camera, or another program holds it",
            }.get(what, "check the address and that the stream is up")
            raise InputError(f"{what} {target!r} will not open ({hint})")
        if live and size is not None:
            # A request only: the driver picks the nearest mode it supports.
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[0])
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[1])
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else DEFAULT_FPS
        h = int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        w = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.size = (h, w) if h > 0 and w > 0 else None
        if not live:
            n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.count = self._cap(n) if n > 0 else self._cap(None)

    def _read(self) -> tuple[bool, np.ndarray | None]:
        with self._lock:
            if self._closed:
                return False, None
            return self.cap.read()

    def __iter__(self) -> Iterator[Frame]:
        total = None if self.live else int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        index = delivered = 0
        pending: list[str] = []  # unreadable frames, skips once a later frame decodes
        while not self._closed and (self.max_frames is None or delivered < self.max_frames):
            ok, image = self._read()
            name = f"frame_{index:06d}"
            if ok and image is not None and image.size:
                for bad in pending:
                    self._skip(bad, "undecodable video frame")
                pending.clear()
                delivered += 1
                yield Frame(image, name, index)
            elif self.live or total is None or index >= total - 1 or self._closed:
                break  # end of file, or a live source that stopped delivering
            elif len(pending) >= MAX_CONSECUTIVE_FAILURES:
                break  # the container over-reports its frame count: treat as the end
            else:
                # A bad frame before the container's frame count: seek past it and go on.
                pending.append(name)
                with self._lock:
                    if not self._closed:
                        self.cap.set(cv2.CAP_PROP_POS_FRAMES, index + 1)
            index += 1
        if pending:
            log.warning("video ended after %d unreadable frames from %s", len(pending), pending[0])

    def close(self) -> None:
        # Another thread may be blocked in read(); wait briefly, else let it release on return.
        if self._lock.acquire(timeout=2.0):
            try:
                if not self._closed:
                    self.cap.release()
            finally:
                self._closed = True
                self._lock.release()
        else:
            self._closed = True


FRAME_KINDS = ("synthetic", "images", "video", "camera", "stream", "gstreamer")
PREFIXED = ("images", "video", "camera")  # kinds written KIND:VALUE


@dataclass(frozen=True)
class FrameSpec:
    """A parsed frame spec: its kind and the path, index, URL or pipeline it names."""

    kind: str  # one of FRAME_KINDS
    value: str | int | None = None


def parse_frame_spec(spec: str | int) -> FrameSpec:
    """Read a frame spec (module docstring): the explicit ``KIND:VALUE`` forms or the bare ones.

    Paths are checked: an explicit kind must match what is on disk, and a bare path must exist.

    Raises:
        InputError: a path that does not exist or is not of the kind named, or a bare name that
            is no source at all.
    """
    if isinstance(spec, int) or spec.isdigit():
        return FrameSpec("camera", int(spec))
    if spec == "synthetic":
        return FrameSpec("synthetic")
    kind, sep, value = spec.partition(":")
    if sep and kind in PREFIXED:
        return _prefixed(kind, value, spec)
    if "!" in spec:
        return FrameSpec("gstreamer", spec)
    if "://" in spec:
        return FrameSpec("stream", spec)
    if spec.startswith("/dev/video"):
        if not Path(spec).exists():
            raise InputError(f"camera device {spec} does not exist")
        return FrameSpec("camera", spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return FrameSpec("images", str(path))
    if path.is_file():
        return FrameSpec("video", str(path))
    raise InputError(
        f"source {spec!r} does not exist; give 'synthetic', images:DIR, video:FILE, camera:N "
        "(or a bare folder, file or camera index), an RTSP URL or a GStreamer pipeline"
    )


def _prefixed(kind: str, value: str, spec: str) -> FrameSpec:
    if kind == "camera":
        if not value.isdigit():
            raise InputError(f"source {spec!r}: camera:N takes a camera index, e.g. camera:0")
        return FrameSpec("camera", int(value))
    path = Path(value).expanduser()
    if not value or not path.exists():
        raise InputError(f"source {spec!r}: {value or 'the path'} does not exist")
    if kind == "images" and not path.is_dir():
        raise InputError(f"source {spec!r}: {value} is not a folder")
    if kind == "video" and not path.is_file():
        raise InputError(f"source {spec!r}: {value} is not a file")
    return FrameSpec(kind, str(path))


def open_source(
    spec: str | int,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
    seed: int = 0,
) -> FrameSource:
    """Open a frame source.

    Args:
        spec: a frame spec (:func:`parse_frame_spec`): ``synthetic``, ``images:DIR``,
            ``video:FILE``, ``camera:N``, their bare forms, an RTSP/HTTP URL or a GStreamer
            pipeline (a string containing ``!``).
        size: (H, W) render size for ``synthetic`` (default 512x1024), the resolution requested
            from a camera; files and folders are delivered at their own size.
        max_frames: stop after this many frames (None: until the source ends).
        seed: scene seed for ``synthetic``.

    Returns:
        An open :class:`FrameSource`; use it as a context manager.

    Raises:
        InputError: the source does not exist, will not open, or a folder holds no images.
    """
    if max_frames is not None and max_frames <= 0:
        raise InputError(f"max_frames {max_frames} must be positive")
    if size is not None and (len(size) != 2 or min(size) <= 0):
        raise InputError(f"size {size} must be a positive (H, W)")
    frame = parse_frame_spec(spec)
    kind, value = frame.kind, frame.value
    if kind == "camera" and isinstance(value, int):
        return CaptureSource(value, True, cv2.CAP_ANY, size, max_frames, "camera")
    if kind == "camera":
        return CaptureSource(value, True, cv2.CAP_V4L2, size, max_frames, "camera device")
    if kind == "synthetic":
        return SyntheticSource(tuple(size or SYNTHETIC_SIZE), max_frames, seed)
    if kind == "gstreamer":
        if "GStreamer:                   YES" not in cv2.getBuildInformation():
            raise InputError(
                "GStreamer pipelines need an OpenCV built with GStreamer; this one is not "
                "(use a camera index, a file or an RTSP URL instead)"
            )
        return CaptureSource(value, True, cv2.CAP_GSTREAMER, size, max_frames, "GStreamer pipeline")
    if kind == "stream":
        return CaptureSource(value, True, cv2.CAP_FFMPEG, size, max_frames, "stream")
    if kind == "images":
        return FolderSource(Path(value), max_frames)
    return CaptureSource(value, False, cv2.CAP_FFMPEG, None, max_frames, "video file")
