"""Checkpoints: atomic writes, safe loading, exact model rebuild, clear errors."""

import pytest
import torch

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.preprocess import Preprocess
from gradgroup.train.checkpoint import (
    checkpoint_preprocess,
    load_checkpoint,
    model_from_checkpoint,
    model_state,
    save_checkpoint,
)
from gradgroup.train.grouping import GradualGroupConv2d, convert_to_grouped, set_alpha
from gradgroup.train.models import create_model


def outputs_equal(a, b):
    x = torch.randn(1, 3, 32, 64)
    a.eval(), b.eval()
    with torch.no_grad():
        return torch.equal(a(x), b(x))


@pytest.mark.parametrize("converted", [False, True])
def test_roundtrip_rebuilds_same_model(tmp_path, converted):
    torch.manual_seed(0)
    model = create_model("dg4-light", form="gradual")
    set_alpha(model, 0.0 if converted else 0.4)
    if converted:
        convert_to_grouped(model)
    path = save_checkpoint(
        tmp_path / "m.pt", model_state(model, "dg4-light", preprocess=Preprocess(32, 64))
    )
    ckpt = load_checkpoint(path)
    rebuilt = model_from_checkpoint(ckpt)
    has_gradual = any(isinstance(m, GradualGroupConv2d) for m in rebuilt.modules())
    assert has_gradual is not converted
    assert ckpt["alpha"] == (0.0 if converted else pytest.approx(0.4))
    assert checkpoint_preprocess(ckpt).size == (32, 64)
    assert outputs_equal(model, rebuilt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temp file left behind


def test_missing_and_corrupt_files_fail_clearly(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable gradgroup checkpoint"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(InputError, match="no 'model'"):
        load_checkpoint(other)


def test_loading_never_runs_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "model_args": {}, "x": Evil()}, path)
    with pytest.raises(InputError):
        load_checkpoint(path)


def test_weights_that_do_not_fit_the_arch(tmp_path):
    state = model_state(create_model("dg4"), "dg4")
    state["model_args"]["arch"] = "dg8"
    with pytest.raises(InputError, match="do not fit 'dg8'"):
        model_from_checkpoint(state)
