"""Accuracy of any predictor on a labelled dataset, at the model's input size or the label's
(torch-free).

The same loop serves PyTorch checkpoints, fp32 ONNX and int8 ONNX models: a predictor maps a
(H, W, 3) uint8 RGB frame at model size to (H, W) class ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cv2
import numpy as np
from tqdm import tqdm

from .metrics import ConfusionMatrix, SegMetrics
from .preprocess import Preprocess, resize_frame, resize_labels

Predictor = Callable[[np.ndarray], np.ndarray]


def evaluate(
    predict: Predictor,
    samples: Iterable[tuple[np.ndarray, np.ndarray]],
    spec: Preprocess,
    num_classes: int,
    total: int | None = None,
    progress: bool = True,
    desc: str = "eval",
    full_res: bool = False,
) -> SegMetrics:
    """mIoU, per-class IoU and accuracy, and pixel accuracy of ``predict`` over (RGB image,
    labels) samples.

    Images are resized exactly as deploy resizes them. By default labels are resized to the model
    size (nearest neighbour) and scored there; with ``full_res`` the prediction is resized to the
    label's size (nearest neighbour, as ``Segmenter`` returns class maps) and scored there.
    """
    cm = ConfusionMatrix(num_classes)
    for image, labels in tqdm(samples, total=total, desc=desc, disable=not progress, leave=False):
        rgb = resize_frame(image, spec, frame_order="RGB")
        pred = predict(rgb)
        if full_res:
            cm.update(labels, upsample_ids(pred, labels.shape[:2]))
        else:
            cm.update(resize_labels(labels, spec), pred)
    return cm.result()


def upsample_ids(ids: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An (h, w) class map resized to ``shape`` (H, W) with nearest-neighbour sampling."""
    if ids.shape[:2] == tuple(shape):
        return ids
    ids = np.asarray(ids, np.uint8)
    return cv2.resize(ids, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
