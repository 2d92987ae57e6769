"""Accuracy of any predictor on a labelled dataset, at the model's input size (torch-free).

The same loop serves PyTorch checkpoints, fp32 ONNX and int8 ONNX models: a predictor maps a
(H, W, 3) uint8 RGB frame at model size to (H, W) class ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

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
) -> SegMetrics:
    """mIoU, per-class IoU and pixel accuracy of ``predict`` over (RGB image, labels) samples.

    Images are resized exactly as deploy resizes them; labels with nearest-neighbour sampling.
    """
    cm = ConfusionMatrix(num_classes)
    for image, labels in tqdm(samples, total=total, desc=desc, disable=not progress, leave=False):
        rgb = resize_frame(image, spec, frame_order="RGB")
        cm.update(resize_labels(labels, spec), predict(rgb))
    return cm.result()
