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
    """Metrics of one confusion matrix accumulated over a whole evaluation (not per image).

    Per class ``c``: IoU = TP / (TP + FP + FN) and accuracy = TP / (TP + FN), both NaN when the
    ground truth holds no pixel of ``c`` - even if ``c`` was predicted (its false positives still
    count as false negatives of the true classes). mIoU and mAcc average the classes present in
    the ground truth (0.0 when none is); a present class never predicted counts as 0. MMSeg
    differs: a class predicted but absent from the ground truth is an IoU of 0 in its mean.
    """

    miou: float
    iou: tuple[float, ...]
    pixel_accuracy: float
    acc: tuple[float, ...] = ()  # per-class accuracy (recall), NaN if absent
    macc: float = 0.0
    matrix: tuple[tuple[int, ...], ...] = ()  # rows = ground truth, columns = prediction

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> SegMetrics:
        tp = np.diag(matrix).astype(np.float64)
        gt, pred = matrix.sum(1), matrix.sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / (gt + pred - tp)
            acc = tp / gt
        absent = gt == 0
        iou[absent] = np.nan
        acc[absent] = np.nan
        total = matrix.sum()
        return cls(
            miou=_mean_present(iou, absent),
            iou=tuple(float(v) for v in iou),
            pixel_accuracy=float(tp.sum() / total) if total else 0.0,
            acc=tuple(float(v) for v in acc),
            macc=_mean_present(acc, absent),
            matrix=tuple(tuple(int(v) for v in row) for row in matrix),
        )

    def to_dict(self, names: tuple[str, ...] | None = None) -> dict:
        return {
            "miou": self.miou,
            "pixel_accuracy": self.pixel_accuracy,
            "iou": _per_class(self.iou, names),
            "macc": self.macc,
            "acc": _per_class(self.acc, names),
        }


def _mean_present(values: np.ndarray, absent: np.ndarray) -> float:
    return float(values[~absent].mean()) if (~absent).any() else 0.0


def _per_class(values: tuple[float, ...], names: tuple[str, ...] | None) -> dict:
    """``{class name: value}``, None for a class absent from the ground truth."""
    return {
        (names[i] if names else str(i)): (None if np.isnan(v) else round(v, 6))
        for i, v in enumerate(values)
    }
