"""Training data: any labelled dataset as a torch ``Dataset``, augmented and resumable.

Frames go through deploy's preprocessing (``resize_frame`` / ``resize_labels`` / ``normalize``), so
a model sees in training exactly what the board feeds it. Augmentation is ERFNet's: horizontal flip
and a random scale (0.5-2.0) followed by a crop, padded with ignore (255) where the scaled image is
smaller than the training size.

Determinism: the sampler yields ``(index, position)`` pairs, ``position`` being the sample's place
in the endless stream of shuffled passes over the data, and each sample draws its augmentation from
``numpy.random.default_rng((seed, position))``. The data a run sees is therefore a pure function of
the seed and the iteration, whatever the number of workers or processes, and a run resumed at any
iteration sees the same data as one that was never stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, get_worker_info
from tqdm import tqdm

from gradgroup.deploy.classes import IGNORE_INDEX, ClassTable
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.preprocess import Preprocess, normalize, resize_frame, resize_labels

log = logging.getLogger(__name__)

CLASS_WEIGHT_C = 1.10  # ERFNet's constant in w = 1 / ln(c + p_class)


class LabelledDataset(Protocol):
    """What ``deploy.datasets.open_dataset`` returns: samples with ``image`` and ``labels``."""

    classes: ClassTable

    def __len__(self) -> int: ...

    def __getitem__(self, index: int): ...


@dataclass(frozen=True)
class Augment:
    """Training augmentation: flip with probability ``flip``, scale uniformly in ``scale``."""

    flip: float = 0.5
    scale: tuple[float, float] = (0.5, 2.0)


class SegDataset(Dataset):
    """A labelled dataset at the model's input size, normalized, optionally augmented.

    Args:
        source: the labelled dataset (``Sample`` objects with ``image``, ``labels``).
        spec: the model's preprocessing (its size is the training size).
        augment: augmentation, or None for evaluation.
        seed: base seed of the augmentation stream.
        limit: use only the first ``limit`` samples.
        limit: use only the first ``limit`` samples.

    Items are ``(image float32 (3, H, W), labels int64 (H, W))``. Indexed by an int (no
    augmentation randomness: evaluation) or by ``(index, position)`` from :class:`StreamSampler`.
    """

    def __init__(
        self,
        source: LabelledDataset,
        spec: Preprocess,
        augment: Augment | None = None,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        if len(source) == 0:
            raise InputError("the dataset is empty; check the data folder or --data spec")
        self.source, self.spec, self.augment, self.seed = source, spec, augment, seed
        self.length = len(source) if limit is None else max(1, min(limit, len(source)))
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        # Pad the image with the mean colour so padded pixels normalize to 0.
        self._pad = tuple(float(round(v)) for v in spec.mean)

    def __len__(self) -> int:
        return self.length

    def base(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` at the model size: (uint8 RGB (H, W, 3), uint8 labels (H, W))."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        sample = self.source[index]
        pair = (
            resize_frame(sample.image, self.spec, frame_order="RGB"),
            resize_labels(sample.labels, self.spec),
        )
        if self._cache is not None and get_worker_info() is None:
            self._cache[index] = pair
        return pair

    def cache(self, max_bytes: int = 2 << 30) -> bool:
        """Keep samples in memory once read, when the whole set fits in ``max_bytes``.

        Rendering a procedural scene or decoding a PNG costs about as much as a training step of a
        small model on a CPU, so with ``workers=0`` each sample is read once. Samples read in
        DataLoader worker processes are not kept (the workers end with each epoch). Returns
        whether caching is on.
        """
        need = len(self) * self.spec.height * self.spec.width * 4
        if need > max_bytes:
            log.info("dataset needs %.1f GB at %dx%d; not caching it", need / 1e9, *self.spec.size)
            return False
        self._cache = {} if self._cache is None else self._cache
        return True

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, position = item if isinstance(item, tuple) else (item, None)
        rgb, labels = self.base(index)
        if self.augment is not None and position is not None:
            rng = np.random.default_rng((self.seed, position))
            rgb, labels = augment_pair(rgb, labels, rng, self.augment, self._pad)
        image = torch.from_numpy(normalize(rgb, self.spec)[0])
        return image, torch.from_numpy(labels.astype(np.int64))


def augment_pair(
    rgb: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    augment: Augment,
    pad: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Flip, scale and crop (or pad with ignore) an image and its labels, same size out as in."""
    h, w = labels.shape
    if rng.random() < augment.flip:
        rgb, labels = rgb[:, ::-1], labels[:, ::-1]
    s = rng.uniform(*augment.scale)
    sh, sw = max(1, round(h * s)), max(1, round(w * s))
    rgb = cv2.resize(np.ascontiguousarray(rgb), (sw, sh), interpolation=cv2.INTER_LINEAR)
    labels = cv2.resize(np.ascontiguousarray(labels), (sw, sh), interpolation=cv2.INTER_NEAREST)
    if sh < h or sw < w:
        ph, pw = max(h - sh, 0), max(w - sw, 0)
        rgb = cv2.copyMakeBorder(rgb, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=pad)
        labels = cv2.copyMakeBorder(labels, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
    y = int(rng.integers(0, rgb.shape[0] - h + 1))
    x = int(rng.integers(0, rgb.shape[1] - w + 1))
    return (
        np.ascontiguousarray(rgb[y : y + h, x : x + w]),
        np.ascontiguousarray(labels[y : y + h, x : x + w]),
    )


class StreamSampler(Sampler):
    """One process's share of an endless stream of shuffled passes, from a given iteration.

    Pass p is ``randperm(n)`` seeded with ``seed + p``. Iteration i takes stream positions
    ``[i*B*W, (i+1)*B*W)``; rank r of W takes the r-th slice of B. Yields ``(index, position)``.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, start: int, iterations: int,
        rank: int = 0, world: int = 1,
    ) -> None:  # fmt: skip
        self.n, self.batch, self.seed = n, batch_size, seed
        self.start, self.iterations, self.rank, self.world = start, iterations, rank, world
        self._perms: dict[int, torch.Tensor] = {}

    def _perm(self, p: int) -> torch.Tensor:
        if p not in self._perms:
            self._perms = {
                p: torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + p))
            }
        return self._perms[p]

    def __len__(self) -> int:
        return self.iterations * self.batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in range(self.start, self.start + self.iterations):
            first = (i * self.world + self.rank) * self.batch
            for k in range(first, first + self.batch):
                yield int(self._perm(k // self.n)[k % self.n]), k


def spread(n: int, k: int) -> list[int]:
    """Up to ``k`` distinct indices of ``range(n)`` spread evenly from first to last."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int)).tolist()


def class_weights(
    dataset: SegDataset, num_classes: int, max_samples: int = 200, progress: bool = False
) -> tuple[torch.Tensor, int]:
    """ERFNet's class weights ``1 / ln(1.10 + p_class)`` from the training labels.

    ``p_class`` is the class's share of labelled (non-ignore) pixels at the training size, over up
    to ``max_samples`` label maps spread evenly across the set. Returns (weights, samples used).
    """
    picks = spread(len(dataset), max_samples)
    counts = np.zeros(num_classes, np.int64)
    for i in tqdm(picks, desc="class weights", disable=not progress, leave=False):
        labels = dataset.base(int(i))[1].reshape(-1)
        labels = labels[labels < num_classes]
        counts += np.bincount(labels, minlength=num_classes)[:num_classes]
    if counts.sum() == 0:
        raise InputError(
            f"no labelled pixels in {len(picks)} label maps; are the masks empty or all 255?"
        )
    p = counts / counts.sum()
    return torch.tensor(1.0 / np.log(CLASS_WEIGHT_C + p), dtype=torch.float32), len(picks)
