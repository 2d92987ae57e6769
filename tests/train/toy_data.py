"""A learnable toy labelled set for trainer tests (import as ``from toy_data import Blocks``)."""

import numpy as np

from gradgroup.deploy.classes import CITYSCAPES
from gradgroup.deploy.datasets import Sample


class Blocks:
    """Learnable toy scenes: rectangles of class colours plus noise, deterministic by index."""

    classes = CITYSCAPES

    def __init__(self, n, offset=0):
        self.n, self.offset = n, offset

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        rng = np.random.default_rng(self.offset + i)
        labels = np.zeros((32, 64), np.uint8)
        for cls in rng.choice([2, 8, 10, 13], 3, replace=False):
            y, x = rng.integers(0, 24), rng.integers(0, 48)
            labels[y : y + 12, x : x + 20] = cls
        labels[:2] = 255
        palette = np.asarray(CITYSCAPES.palette, np.int16)[np.minimum(labels, 18)]
        image = np.clip(palette + rng.integers(-20, 20, palette.shape), 0, 255).astype(np.uint8)
        return Sample(image, labels, f"blocks{i}")
