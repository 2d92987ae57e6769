"""TIDL option building (the compile itself needs TI's ONNX Runtime build, absent here)."""

import pytest

from gradgroup.calib.tidl import TidlConfig, compile_tidl, find_tidl_tools, tidl_options
from gradgroup.deploy.errors import InputError, MissingDependencyError


@pytest.mark.parametrize(
    "soc, scale_type", [("tda4vm", 1), ("am68a", 4), ("am69a", 4), ("am62a", 4)]
)
def test_scale_type_follows_the_soc(soc, scale_type):
    opts = tidl_options(TidlConfig(soc=soc), "/tools", "/art", frames=12, prequantized=False)
    assert opts["advanced_options:quantization_scale_type"] == scale_type


def test_option_names_and_values_are_tis():
    cfg = TidlConfig(
        soc="am68a",
        tensor_bits=16,
        accuracy_level=0,
        calibration_iterations=3,
        debug_level=2,
        deny_list=("MaxPool", "Resize"),
    )
    opts = tidl_options(cfg, "/t", "/a", frames=7, prequantized=False)
    assert opts == {
        "tidl_tools_path": "/t",
        "artifacts_folder": "/a",
        "tensor_bits": 16,
        "accuracy_level": 0,
        "debug_level": 2,
        "advanced_options:calibration_frames": 7,
        "advanced_options:calibration_iterations": 3,
        "advanced_options:quantization_scale_type": 4,
        "deny_list": "MaxPool, Resize",
    }


def test_qdq_model_is_compiled_as_prequantized_and_extra_options_override():
    cfg = TidlConfig(options={"advanced_options:add_data_convert_ops": 3, "tensor_bits": 8})
    opts = tidl_options(cfg, "/t", "/a", frames=1, prequantized=True)
    assert opts["advanced_options:prequantized_model"] == 1
    assert opts["advanced_options:add_data_convert_ops"] == 3
    assert "deny_list" not in tidl_options(TidlConfig(), "/t", "/a", 1, False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"soc": "tda5"}, "--soc 'tda5'"),
        ({"tensor_bits": 4}, "--tensor-bits 4"),
        ({"calibration_frames": 0}, "--calibration-frames 0"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(InputError, match=message):
        TidlConfig(**kwargs)


def test_missing_tools_or_runtime_is_a_one_line_missing_dependency(
    tmp_path, model_dir, monkeypatch
):
    monkeypatch.delenv("TIDL_TOOLS_PATH", raising=False)
    with pytest.raises(MissingDependencyError, match="--tidl-tools"):
        find_tidl_tools(None)
    with pytest.raises(MissingDependencyError, match="does not exist"):
        find_tidl_tools(str(tmp_path / "nowhere"))
    tools = tmp_path / "tidl_tools"
    tools.mkdir()
    (tools / "placeholder.so").write_bytes(b"")
    out = tmp_path / "artifacts"
    with pytest.raises(MissingDependencyError, match="TIDLCompilationProvider") as info:
        compile_tidl(model_dir / "tiny.onnx", out, TidlConfig(tidl_tools=str(tools)))
    assert "\n" not in str(info.value) and "edgeai-tidl-tools" in str(info.value)
    assert not out.exists()
