"""The demo's view: legend, timing HUD, over-budget alarm, and where the view goes (window, video).

Everything is drawn onto the frame itself (no side panel) so a recorded video keeps the source's
size. Text and swatches scale with the frame height so the HUD stays legible from 256-pixel
synthetic frames to 1080p cameras.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .classes import ClassTable
from .errors import InputError, RunError
from .fileio import publish, temp_beside

WINDOW = "gradgroup demo"
FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}  # container -> codec OpenCV writes
FONT = cv2.FONT_HERSHEY_SIMPLEX
STAGES = ("capture", "preprocess", "inference", "postprocess", "render")
_SHORT = {"capture": "cap", "preprocess": "pre", "inference": "inf", "postprocess": "post"}
_RED = (0, 0, 255)  # BGR
_ALARM = (90, 90, 255)  # lighter red: pure red text is hard to read on the dark panel
_WHITE = (255, 255, 255)
_GREEN = (80, 220, 80)


@dataclass
class Hud:
    """What the HUD shows for one frame.

    Attributes:
        fps: smoothed frames per second of the whole loop.
        stages: per-stage milliseconds for this frame (keys from ``STAGES``).
        budget_ms: the per-frame budget, 1000 / fps target.
        frame_ms: the time checked against the budget for this frame.
        index: frames processed so far.
        dropped: stale live frames dropped so far.
        paused: draw a PAUSED tag.
    """

    fps: float
    stages: dict[str, float] = field(default_factory=dict)
    budget_ms: float = 1000.0 / 30.0
    frame_ms: float = 0.0
    index: int = 0
    dropped: int = 0
    paused: bool = False

    @property
    def over_budget(self) -> bool:
        return self.frame_ms > self.budget_ms


def _scale(frame: np.ndarray) -> float:
    """Font scale for a frame: 0.45 up to 288 px high, ~0.9 at 720 px and above."""
    return float(np.clip(frame.shape[0] / 640.0, 0.45, 0.9))


def _panel(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, alpha: float = 0.55) -> None:
    """Darken a rectangle in place so text on top reads on any background."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        roi[:] = cv2.convertScaleAbs(roi, alpha=1.0 - alpha)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, colour=_WHITE) -> None:
    thick = 1 if scale < 0.7 else 2
    cv2.putText(img, text, org, FONT, scale, colour, thick, cv2.LINE_AA)


@functools.lru_cache(maxsize=16)
def _bgr_lut(table: ClassTable) -> np.ndarray:
    """The table's palette as a read-only (256, 1, 3) BGR cv2.LUT table, built once per table."""
    lut = np.ascontiguousarray(table.palette_array()[:, ::-1].reshape(256, 1, 3))
    lut.setflags(write=False)  # shared by every later call
    return lut


def overlay(
    frame: np.ndarray, class_map: np.ndarray, table: ClassTable, opacity: float
) -> np.ndarray:
    """Blend the class colours over a BGR frame of the same size (a new image).

    cv2.LUT on the id map repeated over 3 channels is ~10x faster than indexing the palette
    with numpy, which matters at camera resolutions.
    """
    ids = class_map.astype(np.uint8, copy=False)
    colour = cv2.LUT(cv2.merge([ids, ids, ids]), _bgr_lut(table))
    return cv2.addWeighted(frame, 1.0 - opacity, colour, opacity, 0.0)


def classes_present(class_map: np.ndarray, num_classes: int) -> list[tuple[int, float]]:
    """(class id, pixel share) of every class in the map, largest first; ignore ids are left out."""
    # calcHist is ~3x faster than np.bincount on a full-HD map.
    counts = cv2.calcHist([class_map], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    counts = counts[:num_classes]
    total = max(int(class_map.size), 1)
    ids = np.flatnonzero(counts)
    ids = ids[np.argsort(-counts[ids], kind="stable")]
    return [(int(i), counts[i] / total) for i in ids]


def draw_legend(img: np.ndarray, class_map: np.ndarray, table: ClassTable) -> None:
    """Colour swatch + name + share for each class present, bottom-left, as many as fit."""
    scale = _scale(img) * 0.85
    (_, th), base = cv2.getTextSize("Ag", FONT, scale, 1)
    row = th + base + 4
    present = classes_present(class_map, table.num_classes)
    rows = max(0, min(len(present), (img.shape[0] // 2) // row))
    if rows == 0:
        return
    present = present[:rows]
    labels = [f"{table.names[i]} {f'{p * 100:.0f}%' if p >= 0.005 else '<1%'}" for i, p in present]
    width = max(cv2.getTextSize(s, FONT, scale, 1)[0][0] for s in labels)
    sw = th + 2  # swatch side
    x0, y1 = 4, img.shape[0] - 4
    y0 = y1 - rows * row - 4
    _panel(img, x0, y0, x0 + sw + width + 14, y1)
    for k, ((cid, _), label) in enumerate(zip(present, labels)):
        top = y0 + 4 + k * row
        r, g, b = table.palette[cid]
        cv2.rectangle(img, (x0 + 4, top), (x0 + 4 + sw, top + sw), (b, g, r), -1)
        cv2.rectangle(img, (x0 + 4, top), (x0 + 4 + sw, top + sw), _WHITE, 1)
        _text(img, label, (x0 + sw + 10, top + th + 1), scale)


def draw_hud(img: np.ndarray, hud: Hud) -> None:
    """FPS, per-stage ms and frame counters top-left; red border + OVER BUDGET when missed."""
    scale = _scale(img)
    ms = hud.stages
    lines = [
        f"{hud.fps:5.1f} fps  {hud.frame_ms:5.1f}/{hud.budget_ms:.1f} ms",
        "  ".join(f"{_SHORT[s]} {ms.get(s, 0.0):.1f}" for s in STAGES[:4]),
        f"render {ms.get('render', 0.0):.1f} ms  frame {hud.index}  drop {hud.dropped}",
    ]
    (_, th), base = cv2.getTextSize("Ag", FONT, scale, 1)
    row = th + base + 4
    width = max(cv2.getTextSize(s, FONT, scale, 1)[0][0] for s in lines)
    _panel(img, 0, 0, width + 12, row * len(lines) + 6)
    for k, line in enumerate(lines):
        colour = (_ALARM if hud.over_budget else _GREEN) if k == 0 else _WHITE
        _text(img, line, (6, 4 + th + k * row), scale, colour)
    if hud.paused:
        tag = "PAUSED"
        tw = cv2.getTextSize(tag, FONT, scale * 1.4, 2)[0][0]
        _text(img, tag, ((img.shape[1] - tw) // 2, img.shape[0] // 2), scale * 1.4, (0, 255, 255))
    if hud.over_budget:
        h, w = img.shape[:2]
        border = max(2, h // 80)
        cv2.rectangle(img, (0, 0), (w - 1, h - 1), _RED, 2 * border)
        tag = "OVER BUDGET"
        (tw, tth), base = cv2.getTextSize(tag, FONT, scale, 1)
        x1, y0 = w - border - 2, border + 2
        x0, y1 = x1 - tw - 10, y0 + tth + base + 8
        cv2.rectangle(img, (x0, y0), (x1, y1), _RED, -1)  # white on solid red reads at any size
        _text(img, tag, (x0 + 5, y0 + tth + 4), scale)


class VideoRecorder:
    """Writes BGR frames to a temporary file and renames it into place at the end.

    The temporary file is unique and sits beside the output with its extension (OpenCV picks the
    container from it): a crash never leaves a half-written file under the final name, and two
    recorders of the same path never share one.
    """

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.tmp: Path | None = None  # created with the first frame
        self.fps = fps
        self.size: tuple[int, int] | None = None  # (W, H)
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None

    def write(self, img: np.ndarray) -> None:
        if self._writer is None:
            self._open((img.shape[1], img.shape[0]))
        if (img.shape[1], img.shape[0]) != self.size:  # folders may mix sizes; video cannot
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(img)
        self.frames += 1

    def _open(self, size: tuple[int, int]) -> None:
        try:
            self.tmp = temp_beside(self.path, "partial")
        except OSError as exc:
            raise RunError(f"cannot write video {self.path}: {exc.strerror or exc}") from None
        self.size = size
        fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()])
        self._writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, self.size)
        if not self._writer.isOpened():
            self.discard()
            raise RunError(f"OpenCV cannot encode video {self.path}; try an .avi output")

    def _release(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def finish(self) -> str | None:
        """Close the file and move it to its final name; None when nothing was written."""
        self._release()
        if self.frames == 0 or self.tmp is None:
            self.discard()
            return None
        try:
            publish(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            raise RunError(f"cannot write video {self.path}: {exc.strerror or exc}") from None
        return str(self.path)

    def discard(self) -> None:
        """Close and delete the temporary file (failed run)."""
        self._release()
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None


def check_display() -> None:
    """Raise InputError unless a window can be shown (GUI-enabled OpenCV and a display)."""
    hint = "run headless (without --show) with --out out.mp4"
    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if gui and gui.group(1).upper() == "NONE":
        raise InputError(
            f"this OpenCV has no GUI support (opencv-python-headless) so it cannot show a window; "
            f"{hint}, or replace it: pip uninstall opencv-python-headless && pip install "
            "opencv-python"
        )
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise InputError(f"no display to show the demo on (DISPLAY is not set); {hint}")
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise InputError(f"OpenCV cannot open a window; {hint}") from None
