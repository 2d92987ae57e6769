"""The board-side runtime: one ONNX Runtime session plus the model's own preprocessing.

``Segmenter`` is what a user's application embeds: it reads the model's metadata, preprocesses a
frame of any size through the shared preprocessing, runs ONNX Runtime and returns the class map at
the frame's size.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .classes import colorize
from .errors import InputError
from .metadata import ModelMeta, read_meta
from .preprocess import check_frame, normalize, resize_frame, to_layout

log = logging.getLogger(__name__)


def load_onnx(path: str | Path):
    """Load and sanity-check an ONNX file; raises InputError for a missing or corrupt one."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InputError(f"model {path} does not exist")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError... for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"model {path} is not a readable ONNX file ({first})") from None


@dataclass
class Segmentation:
    """One segmented frame: class ids at the frame's size and per-stage times in ms."""

    class_map: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


class Segmenter:
    """ONNX Runtime segmentation model driven by its own metadata.

    Args:
        model_path: an ONNX file exported by gradgroup (others work with default metadata).
        threads: intra-op threads (None: ORT's default).
    """

    def __init__(self, model_path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(model_path)
        model = load_onnx(self.path)
        self.meta: ModelMeta = read_meta(model)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types for invalid graphs
            raise InputError(
                f"ONNX Runtime cannot load {self.path}: {str(exc).splitlines()[0]}"
            ) from None
        self.input_name = self.session.get_inputs()[0].name

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB at model size -> the model's input tensor (normalized float or raw uint8)."""
        if self.meta.input_dtype == "uint8":
            return to_layout(rgb, self.meta.preprocess)
        return normalize(rgb, self.meta.preprocess)

    def class_ids(self, output: np.ndarray) -> np.ndarray:
        """Model output (logits or argmax) -> (H, W) uint8 class ids at model size."""
        if self.meta.output == "argmax" or output.shape[1] == 1:
            return output[0, 0].astype(np.uint8)
        return output[0].argmax(0).astype(np.uint8)

    def predict_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB already at model size -> (H, W) uint8 class ids."""
        out = self.session.run(None, {self.input_name: self.prepare(rgb)})[0]
        return self.class_ids(out)

    def __call__(self, frame: np.ndarray, frame_order: str = "BGR") -> Segmentation:
        """Segment a frame of any size; the class map comes back at the frame's size."""
        check_frame(frame)
        t0 = time.perf_counter()
        x = self.prepare(resize_frame(frame, self.meta.preprocess, frame_order))
        t1 = time.perf_counter()
        out = self.session.run(None, {self.input_name: x})[0]
        t2 = time.perf_counter()
        ids = self.class_ids(out)
        if ids.shape != frame.shape[:2]:
            ids = cv2.resize(ids, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
        t3 = time.perf_counter()
        ms = {"preprocess": t1 - t0, "inference": t2 - t1, "postprocess": t3 - t2}
        return Segmentation(ids, {k: v * 1000.0 for k, v in ms.items()})

    def overlay(self, frame: np.ndarray, class_map: np.ndarray, opacity: float = 0.5) -> np.ndarray:
        """Blend the colourized class map over a BGR frame (same size)."""
        colour = cv2.cvtColor(colorize(class_map, self.meta.classes), cv2.COLOR_RGB2BGR)
        return cv2.addWeighted(frame, 1.0 - opacity, colour, opacity, 0.0)
