"""The capture feed: latest-frame policy for live sources, frame-by-frame for files."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gradgroup.deploy.capture import FrameFeed, LatestFrameReader
from gradgroup.deploy.errors import RunError
from gradgroup.deploy.sources import Frame, FrameSource


class FakeLive(FrameSource):
    """A live source that delivers frames in bursts the test releases one at a time.

    After each burst it sets ``burst_done`` and blocks until ``go`` is set, so the test knows
    exactly which frames the reader thread has seen before the consumer reads.
    """

    def __init__(self, bursts: list[int], fail_after: int | None = None) -> None:
        super().__init__()
        self.live, self.size = True, (8, 8)
        self.bursts, self.fail_after = bursts, fail_after
        self.burst_done, self.go = threading.Event(), threading.Event()

    def __iter__(self):
        index = 0
        for n in self.bursts:
            for _ in range(n):
                if self.fail_after is not None and index == self.fail_after:
                    raise ValueError("camera unplugged")
                yield Frame(np.full((8, 8, 3), index % 256, np.uint8), f"cam{index}", index)
                index += 1
            self.burst_done.set()
            self.go.wait(5)
            self.go.clear()

    def close(self) -> None:
        self.go.set()


class FastLive(FrameSource):
    """A live source producing ``n`` frames as fast as it can."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.live, self.size = True, (8, 8)
        self.n = n

    def __iter__(self):
        for i in range(self.n):
            yield Frame(np.full((8, 8, 3), i % 256, np.uint8), f"f{i}", i)

    def close(self) -> None:
        pass


def _next_burst(src: FakeLive) -> None:
    assert src.burst_done.wait(5), "fake source did not finish its burst"
    src.burst_done.clear()


def test_latest_frame_policy_hands_over_newest_and_counts_drops():
    src = FakeLive([5, 3, 1])
    reader = LatestFrameReader(src).start()
    try:
        _next_burst(src)
        frame, _ = reader.read()
        assert frame.index == 4  # frames 0..3 were stale when the consumer came
        assert reader.dropped == 4
        src.go.set()
        _next_burst(src)
        frame, _ = reader.read()
        assert frame.index == 7
        assert reader.dropped == 6
        src.go.set()
        _next_burst(src)
        frame, _ = reader.read()
        assert frame.index == 8
        assert reader.dropped == 6  # a frame taken in time is not a drop
        src.go.set()
        assert reader.read() is None  # end of the source
        assert reader.received == 9
    finally:
        src.close()
        reader.close()


def test_fast_live_source_every_frame_is_consumed_or_dropped():
    n = 300
    feed = FrameFeed(FastLive(n))
    assert feed.threaded
    seen = []
    while (got := feed.next()) is not None:
        seen.append(got.frame.index)
        threading.Event().wait(0.002)  # a consumer slower than the producer
    feed.close()
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # never an older frame
    assert seen[-1] == n - 1  # the newest frame is the last one handed over
    assert feed.dropped > 0
    assert len(seen) + feed.dropped == n


def test_file_sources_are_read_frame_by_frame_without_drops():
    class Files(FastLive):
        def __init__(self, n):
            super().__init__(n)
            self.live = False

    feed = FrameFeed(Files(20))
    assert not feed.threaded
    seen = []
    while (got := feed.next()) is not None:
        seen.append(got.frame.index)
        assert got.capture_ms >= 0
    assert seen == list(range(20))
    assert feed.dropped == 0


def test_reader_error_reaches_the_consumer():
    src = FakeLive([4], fail_after=2)
    reader = LatestFrameReader(src).start()
    with pytest.raises(ValueError, match="unplugged"):
        for _ in range(5):
            if reader.read() is None:
                break
    reader.close()


def test_stalled_live_source_times_out():
    class Stalled(FakeLive):
        def __iter__(self):
            self.go.wait(5)
            yield from ()

    src = Stalled([])
    reader = LatestFrameReader(src, timeout_s=0.2).start()
    with pytest.raises(RunError, match="no frame"):
        reader.read()
    src.close()
    reader.close()
