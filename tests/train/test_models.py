"""The zoo: every name builds in both forms, runs, and reproduces the paper's table."""

import pytest
import torch

from gradgroup.deploy.errors import InputError
from gradgroup.train.flops import count_model
from gradgroup.train.grouping import GradualGroupConv2d, convert_to_grouped, set_alpha
from gradgroup.train.models import ZOO, create_model, parse_arch

SIZE = (32, 64)


def params(name: str) -> int:
    return sum(p.numel() for p in create_model(name).parameters())


@pytest.mark.parametrize("name", ZOO)
def test_every_model_runs_at_tiny_size(name):
    model = create_model(name, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *SIZE))
    assert out.shape == (1, 5, *SIZE)


def test_paper_parameter_differences_exact():
    # Differences between the seed's rows (the seed's absolute counts use another convention).
    assert params("erfnet") - params("d") == 1_491_328
    assert params("d") - params("dg2") == 151_552
    assert params("dg2") - params("dg4") == 75_776
    assert params("dg4") - params("dg8") == 37_888
    for g in (2, 4, 8):
        assert params(f"dg{g}s") == params(f"dg{g}")  # shuffle adds no parameters
    assert params("d-light") - params("dg2-light") == 151_552
    assert params("dg2-light") - params("dg4-light") == 75_776


def test_absolute_counts_and_macs_match_design_at_1024x512():
    erfnet = count_model(create_model("erfnet"), (512, 1024))
    light = count_model(create_model("dg4-light"), (512, 1024))
    assert erfnet.params == 2_064_191
    assert erfnet.macs == pytest.approx(26.60e9, rel=1e-3)
    assert light.params == 187_647
    assert light.macs == pytest.approx(2.71e9, rel=2e-3)
    assert erfnet.macs / light.macs == pytest.approx(9.8, abs=0.05)


def test_gmac_differences_match_paper():
    macs = {
        n: count_model(create_model(n), (512, 1024)).macs / 1e9 for n in ("d", "dg2", "dg4", "dg8")
    }
    assert macs["d"] - macs["dg2"] == pytest.approx(1.745, abs=1e-3)
    assert macs["dg2"] - macs["dg4"] == pytest.approx(0.872, abs=1e-3)
    assert macs["dg4"] - macs["dg8"] == pytest.approx(0.437, abs=1e-3)


def test_gradual_form_converts_to_the_grouped_form_exactly():
    torch.manual_seed(0)
    gradual = create_model("dg4s-light", form="gradual").eval()
    n_gradual = sum(1 for m in gradual.modules() if isinstance(m, GradualGroupConv2d))
    assert n_gradual > 0
    x = torch.randn(1, 3, *SIZE)
    set_alpha(gradual, 0.0)
    with torch.no_grad():
        before = gradual(x)
        assert convert_to_grouped(gradual) == n_gradual
        after = gradual(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    grouped = create_model("dg4s-light", form="grouped")
    assert sum(p.numel() for p in gradual.parameters()) == sum(
        p.numel() for p in grouped.parameters()
    )
    assert count_model(gradual, SIZE).params == count_model(grouped, SIZE).params


def test_gradual_form_counts_as_its_deployed_form():
    assert count_model(create_model("dg4", form="gradual"), SIZE) == count_model(
        create_model("dg4"), SIZE
    )


def test_selective_application_leaves_first_blocks_dense():
    spec = parse_arch("dg4s-sel5-light")
    assert (spec.groups, spec.shuffle, spec.dense_blocks, spec.light_decoder) == (4, True, 5, True)
    assert params("dg4-sel5") > params("dg4") and params("dg4-sel13") - params("dg4-sel5") > 0
    assert params("d-sel13") == params("erfnet")  # every encoder block left dense


@pytest.mark.parametrize("bad", ["dg3x", "resnet", "dg3", "dg4-sel14", "dg1"])
def test_unknown_names_fail_clearly(bad):
    with pytest.raises(InputError, match="model"):
        create_model(bad)


def test_suggestion_for_typo():
    with pytest.raises(InputError, match="did you mean 'dg4-light'"):
        create_model("dg4-lite")
