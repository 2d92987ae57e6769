"""Feeding frames to the demo: a reader thread with a latest-frame policy for live sources.

A camera keeps producing frames whether or not the consumer keeps up. Reading it in the loop would
let the driver's queue fill and latency grow without bound, so a live source is read on its own
thread that keeps only the newest frame: a frame replaced before the consumer took it is dropped
and counted. Files, folders and synthetic scenes are not real-time; they are read in the loop,
frame by frame, and nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import RunError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Captured:
    """One frame handed to the consumer.

    Attributes:
        frame: the source's ``Frame`` (``.image`` BGR uint8, ``.name``, ``.index``).
        capture_ms: time the consumer spent getting it (decode for files, waiting for live).
        stamp: ``time.perf_counter()`` when the frame became available, for end-to-end latency.
    """

    frame: Any
    capture_ms: float
    stamp: float


class LatestFrameReader:
    """Reads an iterable of frames on a daemon thread, keeping only the newest one.

    Args:
        source: any iterable of frames (a live ``FrameSource``).
        timeout_s: ``read`` raises RunError when no frame arrives for this long.
    """

    def __init__(self, source: Iterable[Any], timeout_s: float = 10.0) -> None:
        self._source = source
        self._timeout_s = timeout_s
        self._cond = threading.Condition()
        self._slot: tuple[Any, float] | None = None
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.received = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="gradgroup-capture", daemon=True)

    def start(self) -> LatestFrameReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for frame in self._source:
                stamp = time.perf_counter()
                with self._cond:
                    if self._slot is not None:
                        self.dropped += 1  # the consumer never saw the frame being replaced
                    self._slot = (frame, stamp)
                    self.received += 1
                    self._cond.notify_all()
                if self._stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, which re-raises it in its thread
            self._error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def read(self) -> tuple[Any, float] | None:
        """Newest unseen ``(frame, stamp)``; None once the source is exhausted.

        Raises:
            RunError: no frame arrived within ``timeout_s``.
            Exception: whatever the source raised on the reader thread.
        """
        deadline = time.perf_counter() + self._timeout_s
        with self._cond:
            # Short waits so Ctrl-C reaches the main thread promptly.
            while self._slot is None and not self._done:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise RunError(
                        f"the live source delivered no frame for {self._timeout_s:.0f} s; "
                        "check the camera or stream"
                    )
                self._cond.wait(min(left, 0.1))
            if self._slot is not None:
                item, self._slot = self._slot, None
                return item
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            return None

    def close(self, join_s: float = 1.0) -> None:
        """Ask the thread to stop after its current frame and wait briefly for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(join_s)
            if self._thread.is_alive():
                log.debug("capture thread still blocked in the source; left as daemon")


class FrameFeed:
    """Frames from a source with capture timing; threaded latest-frame policy when live.

    Args:
        source: a ``FrameSource`` (its ``live`` attribute picks the policy) or any iterable.
        threaded: override the policy (None: follow ``source.live``).
        timeout_s: for live sources, how long to wait for a frame before giving up.
    """

    def __init__(
        self, source: Iterable[Any], threaded: bool | None = None, timeout_s: float = 10.0
    ) -> None:
        self.threaded = bool(getattr(source, "live", False)) if threaded is None else threaded
        self._reader: LatestFrameReader | None = None
        self._iter: Iterator[Any] | None = None
        if self.threaded:
            self._reader = LatestFrameReader(source, timeout_s).start()
        else:
            self._iter = iter(source)

    @property
    def dropped(self) -> int:
        """Stale live frames dropped so far (always 0 for files, folders and synthetic)."""
        return self._reader.dropped if self._reader else 0

    def next(self) -> Captured | None:
        """The next frame to process (newest one when live); None at the end of the source."""
        t0 = time.perf_counter()
        if self._reader is not None:
            item = self._reader.read()
            if item is None:
                return None
            frame, stamp = item
        else:
            assert self._iter is not None
            frame = next(self._iter, None)
            if frame is None:
                return None
            stamp = time.perf_counter()
        return Captured(frame, (time.perf_counter() - t0) * 1000.0, stamp)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def __enter__(self) -> FrameFeed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
