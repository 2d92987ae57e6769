"""The demo, headless: real ORT sessions, real OpenCV video files, real image folders."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from gradgroup.cli import main
from gradgroup.deploy import view
from gradgroup.deploy.classes import CITYSCAPES, ClassTable, colorize
from gradgroup.deploy.demo import DemoConfig, run_demo
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.sources import Frame, FrameSource
from gradgroup.deploy.view import Hud, VideoRecorder, classes_present, draw_hud, overlay

H, W = 48, 96  # source size: not the model's 32x64, so resizing back is exercised


def _image(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    img = np.zeros((H, W, 3), np.uint8)
    img[: H // 2] = (180, 130, 70)
    img[H // 2 :] = (128, 64, 128)
    x = 8 + 6 * i
    img[20:40, x : x + 20] = rng.integers(0, 256, 3, dtype=np.uint8)
    return img


@pytest.fixture
def video(tmp_path):
    """A 10-frame 96x48 mp4 at 12 fps."""
    path = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (W, H))
    for i in range(10):
        writer.write(_image(i))
    writer.release()
    return path


def _read_video(path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} is not a playable video"
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames, fps


def _no_partials(folder) -> None:
    assert not [p.name for p in folder.iterdir() if ".partial" in p.name]


def test_video_in_annotated_video_out(tiny_onnx, video, tmp_path):
    out = tmp_path / "out" / "seg.mp4"
    result = run_demo(tiny_onnx, video, DemoConfig(out=str(out), progress=False))
    assert (result.frames, result.dropped, result.skipped) == (10, 0, 0)
    frames, fps = _read_video(out)
    assert len(frames) == 10 == result.video_frames
    assert frames[0].shape == (H, W, 3)
    assert fps == pytest.approx(12.0)
    assert set(result.stages) == {
        "capture",
        "preprocess",
        "inference",
        "postprocess",
        "render",
        "frame",
        "latency",
    }
    for name, s in result.stages.items():
        assert 0 < s.mean_ms <= s.p99_ms, name
    assert result.fps > 0 and 0 <= result.budget_misses <= 10
    assert result.budget_ms == pytest.approx(1000 / 30, abs=1e-3)
    assert not result.interrupted and result.out == str(out)
    # The view is the input blended with class colours, not the input itself.
    assert np.abs(frames[5].astype(int) - _image(5).astype(int)).mean() > 5
    _no_partials(out.parent)


def test_image_folder_and_max_frames(tiny_onnx, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"{i:03d}.png"), _image(i))
    out = tmp_path / "folder.avi"
    result = run_demo(tiny_onnx, str(folder), DemoConfig(out=str(out), progress=False))
    assert (result.frames, result.skipped) == (6, 0)
    frames, _ = _read_video(out)
    assert len(frames) == 6 and frames[0].shape == (H, W, 3)

    result = run_demo(tiny_onnx, str(folder), DemoConfig(max_frames=4, progress=False))
    assert result.frames == 4 and result.out is None


def test_corrupt_image_is_a_counted_skip(tiny_onnx, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i:03d}.png"), _image(i))
    (folder / "002b.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    out = tmp_path / "seg.mp4"
    result = run_demo(tiny_onnx, str(folder), DemoConfig(out=str(out), progress=False))
    assert (result.frames, result.skipped, result.skipped_names) == (4, 1, ["002b.png"])
    assert len(_read_video(out)[0]) == 4


def test_budget_indicator_and_miss_count(tiny_onnx, video, tmp_path):
    out = tmp_path / "over.mp4"
    over = run_demo(tiny_onnx, video, DemoConfig(out=str(out), fps_target=1e6, progress=False))
    assert over.budget_misses == over.frames == 10
    within = run_demo(tiny_onnx, video, DemoConfig(fps_target=0.01, progress=False))
    assert within.budget_misses == 0
    # Over budget draws a red border: the bottom-right corner is red in the recorded video.
    corner = _read_video(out)[0][3][-2:, -2:].reshape(-1, 3).mean(0)
    b, g, r = corner
    assert r > 150 and g < 100 and b < 100


class Interrupted(FrameSource):
    """A file-like source that is stopped with Ctrl-C after ``n`` frames."""

    def __init__(self, n: int, error: type[BaseException] = KeyboardInterrupt) -> None:
        super().__init__()
        self.n, self.error, self.size = n, error, (H, W)

    def __iter__(self):
        for i in range(self.n):
            yield Frame(_image(i), f"f{i}", i)
        raise self.error()


def test_ctrl_c_keeps_a_playable_video(tiny_onnx, tmp_path):
    out = tmp_path / "stopped.mp4"
    result = run_demo(tiny_onnx, Interrupted(5), DemoConfig(out=str(out), progress=False))
    assert result.interrupted and result.frames == 5
    frames, _ = _read_video(out)
    assert len(frames) == 5 and frames[0].shape == (H, W, 3)
    _no_partials(tmp_path)


def test_crash_leaves_no_video(tiny_onnx, tmp_path):
    out = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError):
        run_demo(tiny_onnx, Interrupted(3, RuntimeError), DemoConfig(out=str(out), progress=False))
    assert list(tmp_path.iterdir()) == []


class FastLive(FrameSource):
    """A live source producing frames faster than the demo consumes them."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.live, self.size = n, True, (H, W)

    def __iter__(self):
        for i in range(self.n):
            yield Frame(_image(i % 10), f"cam{i}", i)


def test_live_source_drops_stale_frames_and_keeps_timing(tiny_onnx, tmp_path):
    out = tmp_path / "live.mp4"
    result = run_demo(tiny_onnx, FastLive(200), DemoConfig(out=str(out), progress=False))
    assert result.dropped > 0
    assert result.frames + result.dropped == 200
    # Drops are filled by repeating the frame shown, so the recording keeps the camera's timing.
    assert result.video_frames == len(_read_video(out)[0]) == 200


def test_synthetic_source(tiny_onnx):
    cfg = DemoConfig(max_frames=3, frame_size=(64, 128), progress=False)
    result = run_demo(tiny_onnx, "synthetic", cfg)
    assert result.frames == 3 and result.dropped == 0


def test_cli_json_and_errors(tiny_onnx, video, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cli.mp4"
    args = ["demo", str(tiny_onnx), "--source", str(video), "--out", str(out)]  # headless
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["frames"] == 10 and data["video_frames"] == 10
    assert set(data["stages"]["inference"]) == {"mean_ms", "p99_ms"}

    assert main(["demo", str(tiny_onnx), "--source", str(tmp_path / "nope.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradgroup: error:") and "nope.mp4" in err and "\n" not in err

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["demo", str(tiny_onnx), "--source", str(empty), "--no-show"]) == 2  # old alias
    assert "no images" in capsys.readouterr().err

    # --show without a GUI-enabled OpenCV or a display: one line pointing at headless --out.
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["demo", str(tiny_onnx), "--source", str(video), "--show"]) == 2
    err = capsys.readouterr().err.strip()
    assert "without --show" in err and "--out" in err and "\n" not in err

    assert main([*args, "--opacity", "1.5"]) == 2
    # TIDL without TI's onnxruntime or artifacts: a one-line error, not a traceback.
    assert main([*args, "--provider", "tidl"]) == 2
    assert main([*args[:-1], str(tmp_path / "x.gif")]) == 2


def test_view_helpers():
    cmap = np.zeros((10, 10), np.uint8)
    cmap[:3] = 13
    cmap[9, 9] = 255  # ignore: not a class, not in the legend
    assert [c for c, _ in classes_present(cmap, 19)] == [0, 13]
    img = np.full((120, 240, 3), 128, np.uint8)
    draw_hud(img, Hud(30.0, {"inference": 10.0}, budget_ms=33.3, frame_ms=12.0))
    assert tuple(img[-1, -1]) == (128, 128, 128)  # within budget: no border
    draw_hud(img, Hud(20.0, {"inference": 40.0}, budget_ms=33.3, frame_ms=45.0))
    assert tuple(img[-1, -1]) == (0, 0, 255)
    assert CITYSCAPES.names[13] == "car"


def test_overlay_is_exact_and_builds_its_colour_table_once_per_palette():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    ids = rng.integers(0, 19, (24, 40), dtype=np.uint8)
    ids[0, :5] = 255  # ignore: black
    # What the runtime's former overlay computed: RGB colours -> BGR, blended.
    colour = cv2.cvtColor(colorize(ids, CITYSCAPES), cv2.COLOR_RGB2BGR)
    want = cv2.addWeighted(image, 0.6, colour, 0.4, 0.0)
    view._bgr_lut.cache_clear()
    for _ in range(3):
        np.testing.assert_array_equal(overlay(image, ids, CITYSCAPES, 0.4), want)
    assert view._bgr_lut.cache_info().misses == 1
    two = ClassTable(("a", "b"), ((255, 0, 0), (0, 0, 255)))
    red = overlay(image, np.zeros_like(ids), two, 1.0)  # another palette, its own table
    assert (red == (0, 0, 255)).all()
    assert view._bgr_lut.cache_info().misses == 2


def test_window_keys_snapshot_pause_quit(tiny_onnx, video, tmp_path, monkeypatch):
    """The window path with OpenCV's GUI calls replaced: keys drive snapshot, pause and quit."""
    import gradgroup.deploy.demo as demo

    keys = iter([ord("s"), ord(" "), ord("s"), ord(" "), ord("q")])
    shown = []
    monkeypatch.setattr(demo, "check_display", lambda: None)
    monkeypatch.setattr(demo.cv2, "imshow", lambda name, img: shown.append(img.copy()))
    monkeypatch.setattr(demo.cv2, "waitKey", lambda ms: next(keys, -1))
    monkeypatch.setattr(demo.cv2, "getWindowProperty", lambda name, prop: 1.0)
    monkeypatch.setattr(demo.cv2, "destroyWindow", lambda name: None)
    snaps = tmp_path / "snaps"
    cfg = DemoConfig(show=True, snapshot_dir=str(snaps), progress=False)
    result = run_demo(tiny_onnx, video, cfg)
    assert result.frames == 3  # s on frame 1; pause, s, resume on frame 2; q on frame 3
    assert len(result.snapshots) == 2 and len(list(snaps.glob("*.png"))) == 2
    assert cv2.imread(result.snapshots[0]).shape == (H, W, 3)
    assert len(shown) == 4  # three frames plus the PAUSED view


def test_two_recorders_of_one_path_do_not_share_a_partial_file(tmp_path):
    """Two demos with the same --out: each writes its own partial file; the last one wins."""
    out = tmp_path / "same.avi"
    first, second = VideoRecorder(out, 12.0), VideoRecorder(out, 12.0)
    for i in range(3):
        first.write(_image(i))
        second.write(_image(i))
    assert first.tmp != second.tmp
    assert first.finish() == second.finish() == str(out)
    assert len(_read_video(out)[0]) == 3
    _no_partials(tmp_path)


def test_a_folder_as_output_is_refused_before_any_frame(tiny_onnx, tmp_path):
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    with pytest.raises(InputError, match="is a folder; give a file name"):
        run_demo(tiny_onnx, "synthetic", DemoConfig(out=str(folder), max_frames=1))
    assert list(tmp_path.iterdir()) == [folder] and not list(folder.iterdir())
