"""Frame sources: real video files and image folders written here, synthetic scenes, errors."""

import time

import cv2
import numpy as np
import pytest

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.scenes import SceneSequence
from gradgroup.deploy.sources import FrameSpec, open_source, parse_frame_spec


def _frames(n, h=48, w=64):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), np.uint8) for _ in range(n)]


def _write_video(path, fourcc, frames, fps=10.0):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


@pytest.mark.parametrize(("name", "fourcc"), [("clip.mp4", "mp4v"), ("clip.avi", "MJPG")])
def test_video_file_round_trip(tmp_path, name, fourcc):
    frames = _frames(12)
    _write_video(tmp_path / name, fourcc, frames, fps=12.0)
    with open_source(str(tmp_path / name)) as src:
        assert not src.live and src.count == 12 and src.size == (48, 64)
        assert src.fps == pytest.approx(12.0)
        got = list(src)
    assert [f.index for f in got] == list(range(12))
    assert got[3].name == "frame_000003"
    assert got[0].image.shape == (48, 64, 3) and got[0].image.dtype == np.uint8
    # Lossy codecs: close to what was written, frame by frame, in order.
    err = [np.abs(g.image.astype(int) - f.astype(int)).mean() for g, f in zip(got, frames)]
    assert max(err) < 60
    assert src.skipped == []


def test_video_max_frames(tmp_path):
    _write_video(tmp_path / "clip.avi", "MJPG", _frames(12))
    with open_source(str(tmp_path / "clip.avi"), max_frames=5) as src:
        assert src.count == 5
        assert len(list(src)) == 5


def test_corrupt_frame_in_the_middle_is_a_counted_skip(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path, "MJPG", _frames(12))
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) == 12  # one JPEG per frame
    data[starts[5] : starts[6] - 16] = bytes(starts[6] - 16 - starts[5])  # wipe frame 5
    path.write_bytes(bytes(data))
    with open_source(str(path)) as src:
        names = [f.name for f in src]
    assert src.skipped == ["frame_000005"]
    assert names == [f"frame_{i:06d}" for i in range(12) if i != 5]


def test_truncated_video_ends_early_without_false_skips(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path, "MJPG", _frames(20))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])  # the header still promises 20 frames
    with open_source(str(path)) as src:
        got = list(src)
    assert 5 < len(got) < 20
    assert [f.index for f in got] == list(range(len(got)))
    assert src.skipped == []


def test_image_folder_sorted_with_corrupt_file_skipped(tmp_path):
    frames = _frames(3, 20, 30)
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"img_{i}.png"), f)
    (tmp_path / "img_1b.png").write_bytes(b"this is not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    with open_source(str(tmp_path)) as src:
        assert src.count == 4 and src.size == (20, 30) and not src.live
        got = list(src)
    assert [f.name for f in got] == ["img_0.png", "img_1.png", "img_2.png"]
    assert np.array_equal(got[2].image, frames[2])  # PNG is lossless, BGR in, BGR out
    assert src.skipped == ["img_1b.png"]


def test_missing_path_and_empty_folder_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_source(str(tmp_path / "nope.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        open_source(str(tmp_path / "empty"))
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="will not open"):
        open_source(str(tmp_path / "junk.mp4"))


def test_synthetic_yields_exactly_max_frames_of_requested_size():
    with open_source("synthetic", size=(32, 64), max_frames=4, seed=3) as src:
        assert src.count == 4 and src.size == (32, 64) and src.fps == 30.0 and not src.live
        got = list(src)
    assert len(got) == 4
    assert all(f.image.shape == (32, 64, 3) for f in got)
    rgb, _ = SceneSequence(3, (32, 64)).frame(2)
    assert np.array_equal(got[2].image, rgb[..., ::-1])  # delivered as BGR, like OpenCV


def test_synthetic_is_endless_without_max_frames():
    with open_source("synthetic", size=(16, 32)) as src:
        assert src.count is None
        it = iter(src)
        assert [next(it).index for _ in range(3)] == [0, 1, 2]


def test_missing_camera_fails_fast():
    start = time.perf_counter()
    with pytest.raises(InputError):
        open_source(99)
    with pytest.raises(InputError):
        open_source("99")
    with pytest.raises(InputError):
        open_source("/dev/video99")
    assert time.perf_counter() - start < 10


def test_bad_arguments():
    with pytest.raises(InputError):
        open_source("synthetic", max_frames=0)
    with pytest.raises(InputError):
        open_source("synthetic", size=(0, 10))


def test_unopenable_stream_and_pipeline_are_input_errors():
    start = time.perf_counter()
    with pytest.raises(InputError):
        open_source("rtsp://127.0.0.1:9/none")  # nothing listens on the discard port
    # Without GStreamer in OpenCV this is refused up front; with it, the bogus element fails.
    with pytest.raises(InputError):
        open_source("videotestsrc num-buffers=1 ! no_such_element ! appsink")
    assert time.perf_counter() - start < 20


def test_one_frame_grammar_explicit_and_bare_forms_agree(tmp_path):
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"not decoded by the parser")
    cases = {
        "synthetic": ("synthetic", None),
        "0": ("camera", 0),
        "camera:2": ("camera", 2),
        f"images:{tmp_path / 'imgs'}": ("images", str(tmp_path / "imgs")),
        str(tmp_path / "imgs"): ("images", str(tmp_path / "imgs")),
        f"video:{clip}": ("video", str(clip)),
        str(clip): ("video", str(clip)),
        "rtsp://host/stream": ("stream", "rtsp://host/stream"),
        "videotestsrc ! appsink": ("gstreamer", "videotestsrc ! appsink"),
    }
    for spec, (kind, value) in cases.items():
        assert parse_frame_spec(spec) == FrameSpec(kind, value), spec
    with open_source(f"images:{tmp_path / 'imgs'}") as src:
        assert [f.name for f in src] == ["a.png"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("images:{tmp}/clip.avi", "is not a folder"),
        ("video:{tmp}", "is not a file"),
        ("images:{tmp}/none", "does not exist"),
        ("camera:front", "camera index"),
        ("nothing-here", "does not exist"),
    ],
)
def test_frame_spec_errors_are_one_clear_line(tmp_path, spec, message):
    (tmp_path / "clip.avi").write_bytes(b"x")
    with pytest.raises(InputError, match=message) as err:
        parse_frame_spec(spec.format(tmp=tmp_path))
    assert "\n" not in str(err.value)
