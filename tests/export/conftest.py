"""Checkpoints for the export tests: tiny zoo models with non-trivial BatchNorm statistics."""

import pytest
import torch

from gradgroup.deploy.preprocess import Preprocess
from gradgroup.train.checkpoint import model_state, save_checkpoint
from gradgroup.train.grouping import set_alpha
from gradgroup.train.models import create_model

SIZE = (32, 64)


def make_model(arch, form="gradual", alpha=0.0, seed=0, num_classes=19):
    """A zoo model as training would leave it: gradual layers at ``alpha``, BN stats randomised."""
    torch.manual_seed(seed)
    model = create_model(arch, num_classes, form=form)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    set_alpha(model, alpha)
    return model.eval()


def write_ckpt(path, arch, form="gradual", alpha=0.0, size=SIZE, data=None, **pre):
    """Save a checkpoint of ``make_model(arch, form, alpha)`` (trained on ``data``: None records
    none, as older checkpoints); returns (path, model)."""
    model = make_model(arch, form, alpha)
    save_checkpoint(path, model_state(model, arch, preprocess=Preprocess(*size, **pre), data=data))
    return path, model


@pytest.fixture(scope="module")
def dg4s_ckpt(tmp_path_factory):
    """A dg4s checkpoint trained with gradual grouping down to alpha = 0."""
    return write_ckpt(tmp_path_factory.mktemp("ckpt") / "dg4s.pt", "dg4s")


@pytest.fixture
def ckpt_factory(tmp_path):
    """``ckpt_factory(arch, form="gradual", alpha=0.0, size=SIZE, data=None, **pre) -> (path,
    model)``."""

    def make(arch, form="gradual", alpha=0.0, size=SIZE, data=None, **pre):
        path = tmp_path / f"{arch}-{form}-{alpha}.pt"
        return write_ckpt(path, arch, form, alpha, size, data, **pre)

    return make
