"""Segmentation metrics from a confusion matrix (numpy, so ONNX and int8 models use it too)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classes import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates a (C, C) confusion matrix, rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, target: np.ndarray, pred: np.ndarray) -> None:
        """Add a batch of label maps; ``IGNORE_INDEX`` and out-of-range labels are skipped."""
        target = np.asarray(target).reshape(-1).astype(np.int64)
        pred = np.asarray(pred).reshape(-1).astype(np.int64)
        n = self.num_classes
        valid = (target >= 0) & (target < n) & (target != IGNORE_INDEX)
        self.matrix += np.bincount(n * target[valid] + pred[valid], minlength=n * n).reshape(n, n)

    def merge(self, other: np.ndarray) -> None:
        """Add another matrix (e.g. from another process)."""
        self.matrix += other

    def result(self) -> SegMetrics:
        return SegMetrics.from_matrix(self.matrix)


@dataclass(frozen=True)
class SegMetrics:
    """mIoU over classes present in the ground truth, per-class IoU (NaN if absent), pixel acc."""

    miou: float
    iou: tuple[float, ...]
    pixel_accuracy: float

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> SegMetrics:
        tp = np.diag(matrix).astype(np.float64)
        gt, pred = matrix.sum(1), matrix.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / (gt + pred - tp)
        iou[gt == 0] = np.nan
        present = ~np.isnan(iou)
        miou = float(iou[present].mean()) if present.any() else 0.0
        total = matrix.sum()
        return cls(miou, tuple(float(v) for v in iou), float(tp.sum() / total) if total else 0.0)

    def to_dict(self, names: tuple[str, ...] | None = None) -> dict:
        per_class = {
            (names[i] if names else str(i)): (None if np.isnan(v) else round(v, 6))
            for i, v in enumerate(self.iou)
        }
        return {"miou": self.miou, "pixel_accuracy": self.pixel_accuracy, "iou": per_class}
