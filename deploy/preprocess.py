"""The one preprocessing every stage uses: resize, colour order, mean/std, layout.

Training, calibration, export verification and the board runtime all call these functions, so a
frame means the same thing everywhere. Pixel statistics are in 0..255 units:
``x = (rgb - mean) / std``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InputError

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Preprocess:
    """How a frame becomes a model input.

    Attributes:
        height, width: model input size in pixels.
        mean, std: per-channel RGB statistics in 0..255 units.
        color_order: channel order the *model* expects ("RGB" or "BGR").
        layout: tensor layout of the model input ("NCHW" or "NHWC").
    """

    height: int = 512
    width: int = 1024
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color_order: str = "RGB"
    layout: str = "NCHW"

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise InputError(f"input size {self.height}x{self.width} must be positive")
        if self.color_order not in ("RGB", "BGR"):
            raise InputError(f"colour order {self.color_order!r} must be 'RGB' or 'BGR'")
        if self.layout not in ("NCHW", "NHWC"):
            raise InputError(f"layout {self.layout!r} must be 'NCHW' or 'NHWC'")
        if any(s <= 0 for s in self.std):
            raise InputError(f"std {self.std} must be positive")

    @classmethod
    def from_dict(cls, data: dict) -> Preprocess:
        """Rebuild from ``dataclasses.asdict`` output (JSON turns the tuples into lists)."""
        return cls(**{**data, "mean": tuple(data["mean"]), "std": tuple(data["std"])})

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` (e.g. ``"512x1024"``) into ``(height, width)``."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"size {text!r} is not HxW, e.g. 512x1024") from None
    if h <= 0 or w <= 0:
        raise InputError(f"size {text!r} must be positive")
    return h, w


MAX_MODEL_PIXELS = 4096 * 4096  # beyond this a single activation tensor is gigabytes


def check_model_size(size: tuple[int, int], flag: str = "--size") -> tuple[int, int]:
    """A model input size the zoo can run: each side a multiple of 8 (ERFNet downsamples 8x and
    concatenates at every step) and at most MAX_MODEL_PIXELS pixels; returns ``size``."""
    h, w = size
    if h <= 0 or w <= 0 or h % 8 or w % 8:
        raise InputError(f"{flag} {h}x{w}: both sides must be positive multiples of 8")
    if h * w > MAX_MODEL_PIXELS:
        raise InputError(f"{flag} {h}x{w} is larger than 4096x4096 pixels; pick a camera size")
    return size


def check_frame(frame: np.ndarray) -> None:
    """Raise InputError unless ``frame`` is a non-empty (H, W, 3) uint8 image."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame is a {type(frame).__name__}, expected a numpy array")
    if frame.dtype != np.uint8:
        raise InputError(f"frame dtype is {frame.dtype}, expected uint8")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"frame shape is {frame.shape}, expected (H, W, 3)")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise InputError("frame is empty (0 pixels)")


def resize_frame(
    frame: np.ndarray, spec: Preprocess, frame_order: str = "BGR", out_order: str = "RGB"
) -> np.ndarray:
    """Resize a uint8 (H, W, 3) frame to the model size, in RGB unless ``out_order`` says BGR.

    Args:
        frame: image as read by OpenCV (``frame_order="BGR"``) or as RGB.
        spec: the model's preprocessing.
        frame_order: channel order of ``frame``.
        out_order: channel order of the result; the runtime asks for ``"BGR"`` when both the
            frame and a BGR model are BGR, so the frame is never reordered twice.

    Returns:
        (height, width, 3) uint8 image in ``out_order`` (RGB by default: the form calibration
        sets store).
    """
    check_frame(frame)
    for order in (frame_order, out_order):
        if order not in ("RGB", "BGR"):
            raise InputError(f"frame order {order!r} must be 'RGB' or 'BGR'")
    if (frame.shape[0], frame.shape[1]) != spec.size:
        frame = cv2.resize(frame, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    if frame_order != out_order:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)  # the same swap either way
    return np.ascontiguousarray(frame)


def resize_labels(labels: np.ndarray, spec: Preprocess) -> np.ndarray:
    """Resize an (H, W) uint8 label map to the model size with nearest-neighbour sampling."""
    if labels.shape[:2] == spec.size:
        return labels
    return cv2.resize(labels, (spec.width, spec.height), interpolation=cv2.INTER_NEAREST)


def to_layout(rgb: np.ndarray, spec: Preprocess, order: str = "RGB") -> np.ndarray:
    """Turn (H, W, 3) or (N, H, W, 3) RGB into a batch in the model's colour order and layout.

    ``order`` is the channel order of ``rgb``; it is reversed only when it is not the model's.
    """
    batch = rgb[None] if rgb.ndim == 3 else rgb
    if spec.color_order != order:
        batch = batch[..., ::-1]
    if spec.layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch)


def normalize(rgb: np.ndarray, spec: Preprocess, order: str = "RGB") -> np.ndarray:
    """uint8 RGB (H, W, 3) or (N, H, W, 3) at model size -> float32 batch, normalized, laid out.

    ``order`` is the channel order of ``rgb`` (``spec.mean``/``std`` are RGB either way).
    """
    mean = np.asarray(spec.mean, np.float32)
    inv_std = 1.0 / np.asarray(spec.std, np.float32)
    if order == "BGR":
        mean, inv_std = mean[::-1], inv_std[::-1]
    x = (rgb.astype(np.float32) - mean) * inv_std
    return to_layout(x, spec, order).astype(np.float32, copy=False)


def preprocess(frame: np.ndarray, spec: Preprocess, frame_order: str = "BGR") -> np.ndarray:
    """Frame of any size -> float32 (1, 3, H, W) (or NHWC) model input."""
    return normalize(resize_frame(frame, spec, frame_order), spec)
