"""Training data: deploy preprocessing, augmentation, the resumable sampler and class weights."""

import numpy as np
import pytest
import torch

from gradgroup.deploy.classes import CITYSCAPES
from gradgroup.deploy.datasets import Sample
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.preprocess import Preprocess, normalize, resize_frame
from gradgroup.train.data import Augment, SegDataset, StreamSampler, augment_pair, class_weights

SPEC = Preprocess(32, 64)


class Toy:
    """A LabelledDataset of random images at 48x96 with a known label layout."""

    classes = CITYSCAPES

    def __init__(self, n=5, labels=None):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (n, 48, 96, 3), dtype=np.uint8)
        if labels is None:
            labels = np.zeros((48, 96), np.uint8)
            labels[:, 48:] = 2  # left half road, right half building
        self.labels = labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return Sample(self.images[i], self.labels, f"toy{i}")


def test_eval_items_are_deploy_preprocessing():
    data = SegDataset(Toy(), SPEC)
    image, labels = data[1]
    expected = normalize(resize_frame(Toy().images[1], SPEC, frame_order="RGB"), SPEC)[0]
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, 32, 64)
    assert np.array_equal(image.numpy(), expected)
    assert labels.dtype == torch.int64 and set(labels.unique().tolist()) == {0, 2}


def test_augmentation_is_a_function_of_the_stream_position():
    data = SegDataset(Toy(), SPEC, Augment(), seed=3)
    a, b = data[(1, 17)], data[(1, 17)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    others = [data[(1, k)][1] for k in range(8)]
    assert any(not torch.equal(others[0], o) for o in others[1:])
    assert data.cache()
    c, d = data[(1, 17)], data[(1, 17)]  # read, then from the cache
    assert 1 in data._cache
    assert torch.equal(a[0], c[0]) and torch.equal(a[1], d[1])  # the cache changes nothing


def test_flip_mirrors_and_downscale_pads_with_ignore():
    rgb = np.zeros((32, 64, 3), np.uint8)
    labels = np.zeros((32, 64), np.uint8)
    labels[:, 32:] = 2
    rng = np.random.default_rng(0)
    img, lab = augment_pair(rgb, labels, rng, Augment(flip=1.0, scale=(1.0, 1.0)))
    assert lab.shape == (32, 64) and img.shape == (32, 64, 3)
    assert (lab[:, :32] == 2).all() and (lab[:, 32:] == 0).all()
    img, lab = augment_pair(rgb, labels, rng, Augment(flip=0.0, scale=(0.5, 0.5)))
    assert lab.shape == (32, 64)
    assert (lab == 255).mean() == pytest.approx(0.75)  # a quarter of the area is image
    assert set(np.unique(lab)) <= {0, 2, 255}


def test_stream_sampler_covers_each_pass_and_resumes_mid_stream():
    n, batch, world = 10, 2, 2
    full = [list(StreamSampler(n, batch, 5, 0, 5, rank=r, world=world)) for r in range(world)]
    positions = sorted(k for r in full for _, k in r)
    assert positions == list(range(20))  # 5 iterations x 2 ranks x 2 images
    first_pass = [i for r in full for i, k in r if k < n]
    assert sorted(first_pass) == list(range(n))  # one pass is a permutation
    tail = list(StreamSampler(n, batch, 5, 3, 2, rank=1, world=world))
    assert tail == full[1][3 * batch :]
    other_seed = [i for i, _ in StreamSampler(n, batch, 6, 0, 5)]
    assert other_seed != [i for i, _ in StreamSampler(n, batch, 5, 0, 5)]


def test_class_weights_follow_erfnet_formula():
    labels = np.full((48, 96), 255, np.uint8)
    labels[:, :24] = 0  # half of the labelled pixels road, half building
    labels[:, 24:48] = 2
    weights, used = class_weights(SegDataset(Toy(4, labels), SPEC), 19, max_samples=3)
    assert used == 3
    assert weights[0].item() == pytest.approx(1 / np.log(1.10 + 0.5), rel=1e-5)
    assert weights[2].item() == pytest.approx(weights[0].item())
    assert weights[1].item() == pytest.approx(1 / np.log(1.10), rel=1e-5)  # absent class


def test_empty_labels_and_empty_sets_fail_clearly():
    with pytest.raises(InputError, match="no labelled pixels"):
        class_weights(SegDataset(Toy(2, np.full((48, 96), 255, np.uint8)), SPEC), 19)
    with pytest.raises(InputError, match="empty"):
        SegDataset(Toy(0), SPEC)
