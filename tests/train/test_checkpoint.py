"""Checkpoints: atomic writes, safe loading, exact model rebuild, clear errors."""

import pytest
import torch

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.preprocess import Preprocess
from gradgroup.train.checkpoint import (
    checkpoint_preprocess,
    init_from,
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


def _saved(tmp_path, arch, alpha=1.0, num_classes=19, name=None):
    torch.manual_seed(1)
    model = create_model(arch, num_classes, form="gradual")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
    set_alpha(model, alpha)
    path = save_checkpoint(tmp_path / (name or f"{arch}.pt"), model_state(model, arch))
    return path, model


def test_dense_checkpoint_initialises_the_gradual_model_exactly(tmp_path):
    """d-light at alpha 1 is dg4-light's dense start: every tensor loads, same function."""
    path, dense = _saved(tmp_path, "d-light")
    torch.manual_seed(2)
    gradual = create_model("dg4-light", form="gradual")
    report = init_from(gradual, path)
    assert report.loaded > 0 and not (report.mismatched or report.missing or report.unused)
    assert outputs_equal(dense, gradual)
    assert "tensors loaded" in report.summary()


def test_depthwise_start_groups_its_layers_and_decays_only_the_rest(tmp_path):
    """A converted d-light (depthwise convs, dense pointwise) is dg4-light's start in the D form:
    its depthwise layers become grouped convs at once, only the pointwise ones stay gradual, the
    function is the same, and a checkpoint of the mixed model rebuilds it exactly."""
    torch.manual_seed(1)
    source = create_model("d-light", form="gradual")
    set_alpha(source, 0.0)
    convert_to_grouped(source)
    path = save_checkpoint(tmp_path / "d-light.pt", model_state(source, "d-light"))
    model = create_model("dg4-light", form="gradual")
    report = init_from(model, path)
    assert not (report.mismatched or report.missing or report.unused)
    assert len(report.grouped) == 68 and all(".conv" in n for n in report.grouped)
    assert "68 layers already grouped in the checkpoint" in report.summary()
    remaining = [n for n, m in model.named_modules() if isinstance(m, GradualGroupConv2d)]
    assert len(remaining) == 26 and all(".pw" in n for n in remaining)
    assert outputs_equal(source, model)
    set_alpha(model, 0.5)
    state = model_state(model, "dg4-light")
    assert state["model_args"]["grouped"] == list(report.grouped)
    rebuilt = model_from_checkpoint(state)
    assert [type(m) for m in rebuilt.modules()] == [type(m) for m in model.modules()]
    assert outputs_equal(model, rebuilt)


def test_init_names_what_does_not_fit(tmp_path):
    path, _ = _saved(tmp_path, "erfnet", num_classes=5)
    model = create_model("erfnet", 19, form="gradual")
    report = init_from(model, path)
    assert report.mismatched == ("output_conv.weight", "output_conv.bias")
    assert "2 kept as initialised (shape differs): output_conv.weight" in report.summary()
    light = create_model("dg4-light", form="gradual")
    report = init_from(light, path)  # ERFNet's decoder into a light decoder
    # ERFNet's dense 3x1/1x3 convs fit the gradual form's; its pointwise-free blocks and decoder
    # do not.
    assert report.loaded > 0 and any(".pw1." in name for name in report.missing)
    assert any(name.startswith("decoder") for name in report.mismatched)


def test_init_refuses_half_decayed_and_unfitting_checkpoints(tmp_path):
    path, _ = _saved(tmp_path, "dg4-light", alpha=0.4)
    with pytest.raises(InputError, match="alpha=0.4, neither dense nor grouped"):
        init_from(create_model("dg4-light", form="gradual"), path)
    torch.save(
        {"model": {"x": torch.zeros(1)}, "model_args": {"arch": "?", "num_classes": 19}},
        tmp_path / "x.pt",
    )
    with pytest.raises(InputError, match="no tensor"):
        init_from(create_model("dg4-light", form="gradual"), tmp_path / "x.pt")


def test_a_checkpoint_over_the_file_size_limit_is_a_run_error(tmp_path):
    """torch.save into a file reports EFBIG as an opaque RuntimeError; the error names the file."""
    import resource

    from gradgroup.deploy.errors import RunError

    state = model_state(create_model("dg4-light"), "dg4-light")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(RunError, match=r"cannot write .*last\.pt: File too large"):
            save_checkpoint(tmp_path / "last.pt", state)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert list(tmp_path.iterdir()) == []


def test_training_data_is_recorded_absolute_and_absent_in_older_checkpoints(tmp_path, monkeypatch):
    from gradgroup.train.checkpoint import checkpoint_data

    monkeypatch.chdir(tmp_path)
    model = create_model("dg4-light")
    assert model_state(model, "dg4-light", data="folder:data")["data"] == f"folder:{tmp_path}/data"
    assert checkpoint_data(model_state(model, "dg4-light", data="synthetic")) == "synthetic"
    assert "data" not in model_state(model, "dg4-light")
    assert checkpoint_data(model_state(model, "dg4-light")) is None
