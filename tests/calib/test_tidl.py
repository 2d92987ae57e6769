"""TIDL options, SoC choice and TI's package layout (the compile itself needs TI's ONNX Runtime
build, absent here: a fake compilation provider stands in, as TI's writes artifacts on run)."""

import json
import shutil

import onnxruntime as ort
import pytest

from gradgroup.calib.tidl import TidlConfig, compile_tidl, find_tidl_tools, tidl_options
from gradgroup.cli import main
from gradgroup.deploy.errors import InputError, MissingDependencyError, RunError


@pytest.mark.parametrize(
    "soc, scale_type", [("tda4vm", 1), ("am68a", 4), ("am69a", 4), ("am62a", 4), ("am67a", 4)]
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
        deny_list_type=("MaxPool", "Resize"),
        deny_list_name=("/dec/up1/Resize",),
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
        "deny_list:layer_type": "MaxPool, Resize",  # not TI's legacy plain deny_list
        "deny_list:layer_name": "/dec/up1/Resize",
    }


def test_defaults_are_tis_documented_ones(monkeypatch):
    monkeypatch.delenv("SOC", raising=False)
    opts = tidl_options(TidlConfig(), "/t", "/a", frames=1, prequantized=False)
    assert opts["advanced_options:calibration_iterations"] == 50
    assert TidlConfig().soc == "am68a"
    assert not any(k.startswith("deny_list") for k in opts)


def test_qdq_model_is_compiled_as_prequantized_and_extra_options_override():
    cfg = TidlConfig(options={"advanced_options:add_data_convert_ops": 3, "tensor_bits": 8})
    opts = tidl_options(cfg, "/t", "/a", frames=1, prequantized=True)
    assert opts["advanced_options:prequantized_model"] == 1
    assert opts["advanced_options:add_data_convert_ops"] == 3


@pytest.mark.parametrize(
    "env, soc", [("am67a", "am67a"), ("AM69A", "am69a"), ("j721e", "tda4vm"), ("am68pa", "tda4vm"),
                 ("j722s", "am67a"), (" am62a\n", "am62a")]
)  # fmt: skip
def test_soc_defaults_to_dollar_soc_like_tis_tools(monkeypatch, env, soc):
    monkeypatch.setenv("SOC", env)
    assert TidlConfig().soc == soc
    assert TidlConfig(soc="am68a").soc == "am68a"  # --soc wins


def test_unknown_dollar_soc_is_one_line_naming_it(monkeypatch):
    monkeypatch.setenv("SOC", "am62")  # TI's ARM-only SoC: no C7x/MMA to compile for
    with pytest.raises(InputError, match=r"--soc 'am62' \(from \$SOC\) is not one of") as info:
        TidlConfig()
    assert "am67a" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"soc": "tda5"}, "--soc 'tda5'"),
        ({"tensor_bits": 4}, "--tensor-bits 4"),
        ({"calibration_frames": 0}, "--calibration-frames 0"),
        (
            {"options": {"artifacts_folder": "/x"}},
            "artifacts_folder is set by gradgroup; use --out",
        ),
        ({"options": {"advanced_options:calibration_frames": 3}}, "use --calib-frames"),
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


class FakeCompiler:
    """Stands in for TI's TIDLCompilationProvider: records the options, writes artifacts."""

    def __init__(self, files=("123_tidl_net.bin", "allowedNode.txt"), fail_on_run=False):
        self.files, self.fail_on_run = files, fail_on_run
        self.options, self.runs = None, 0

    def __call__(self, model_path, options):
        from pathlib import Path

        self.options = dict(options)
        compiler = self

        class Session:
            def run(self, outputs, feed):
                if compiler.fail_on_run:
                    raise RuntimeError("TIDL_E_UNSUPPORTED layer\nsecond line")
                compiler.runs += 1
                for name in compiler.files:
                    (Path(options["artifacts_folder"]) / name).write_text("x")

        return Session()


@pytest.fixture
def fake_tidl(tmp_path, monkeypatch):
    """(compiler, tools folder): TI's provider listed, the compile session faked."""
    import gradgroup.deploy.session as session

    tools = tmp_path / "tidl_tools"
    tools.mkdir()
    (tools / "tidl_model_import_onnx.so").write_bytes(b"")
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["TIDLCompilationProvider", "CPUExecutionProvider"]
    )
    compiler = FakeCompiler()
    monkeypatch.setattr(session, "tidl_compile_session", compiler)
    monkeypatch.delenv("SOC", raising=False)
    return compiler, tools


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_compile_writes_tis_package_layout(fake_tidl, model_dir, tmp_path):
    compiler, tools = fake_tidl
    out = tmp_path / "pkg" / "tiny_tidl"
    cfg = TidlConfig(
        tidl_tools=str(tools), soc="am67a", calibration_frames=3, deny_list_type=("MaxPool",),
        options={"advanced_options:high_resolution_optimization": 1},
    )  # fmt: skip
    result = compile_tidl(model_dir / "tiny.onnx", out, cfg)
    # The compiler wrote into a staging folder; the package appeared whole at --out.
    assert compiler.runs == 3 and compiler.options["advanced_options:calibration_frames"] == 3
    assert compiler.options["artifacts_folder"] != str(out / "artifacts")
    assert compiler.options["deny_list:layer_type"] == "MaxPool"
    assert compiler.options["advanced_options:high_resolution_optimization"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["artifacts", "model", "param.yaml"]
    assert sorted(p.name for p in (out / "artifacts").iterdir()) == [
        "123_tidl_net.bin",
        "allowedNode.txt",
    ]
    assert (out / "model" / "tiny.onnx").read_bytes() == (model_dir / "tiny.onnx").read_bytes()
    assert _leftovers(out.parent) == []
    assert result.package == str(out) and result.artifacts == str(out / "artifacts")
    assert result.model == str(out / "model" / "tiny.onnx")
    assert result.options["artifacts_folder"] == str(out / "artifacts")
    assert "TIDL package for am67a" in result.summary() and "model/tiny.onnx" in result.summary()
    text = (out / "param.yaml").read_text()
    for line in (
        "task_type: segmentation",
        "  resize: [32, 64]",
        "  crop: [32, 64]",
        "  data_layout: NCHW",
        "  reverse_channels: false",
        "  artifacts_folder: artifacts",
        "  model_path: model/tiny.onnx",
        "  session_name: onnxrt",
        "  input_optimization: false",  # tiny.onnx takes float32: the board normalizes
        "  input_mean: [123.675, 116.28, 103.53]",
        "  target_device: AM67A",
        '    "advanced_options:calibration_iterations": 50',
        "  with_argmax: true",  # logits out
    ):
        assert line + "\n" in text, line
    assert "tidl_tools_path" not in text and str(tmp_path) not in text  # no paths of this PC


def test_recompile_replaces_a_package_and_a_failure_keeps_the_old_one(
    fake_tidl, model_dir, tmp_path, monkeypatch
):
    import gradgroup.deploy.session as session

    compiler, tools = fake_tidl
    out = tmp_path / "tiny_tidl"
    cfg = TidlConfig(tidl_tools=str(tools), calibration_frames=1)
    compile_tidl(model_dir / "tiny.onnx", out, cfg)
    compiler.files = ("456_tidl_net.bin",)
    compile_tidl(model_dir / "tiny.onnx", out, cfg)
    assert [p.name for p in (out / "artifacts").iterdir()] == ["456_tidl_net.bin"]
    assert _leftovers(tmp_path) == []
    monkeypatch.setattr(session, "tidl_compile_session", FakeCompiler(fail_on_run=True))
    with pytest.raises(RunError, match="TIDL compilation failed: TIDL_E_UNSUPPORTED") as info:
        compile_tidl(model_dir / "tiny.onnx", out, cfg)
    assert "\n" not in str(info.value)
    assert [p.name for p in (out / "artifacts").iterdir()] == ["456_tidl_net.bin"]
    assert _leftovers(tmp_path) == []
    monkeypatch.setattr(session, "tidl_compile_session", FakeCompiler(files=()))
    with pytest.raises(RunError, match="wrote no artifacts"):
        compile_tidl(model_dir / "tiny.onnx", tmp_path / "new", cfg)
    assert not (tmp_path / "new").exists() and _leftovers(tmp_path) == []


def test_out_holding_other_files_is_refused_before_compiling(fake_tidl, model_dir, tmp_path):
    compiler, tools = fake_tidl
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a TIDL package"):
        compile_tidl(model_dir / "tiny.onnx", tmp_path, TidlConfig(tidl_tools=str(tools)))
    assert compiler.options is None and (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match="is a file"):
        compile_tidl(
            model_dir / "tiny.onnx", tmp_path / "notes.txt", TidlConfig(tidl_tools=str(tools))
        )


def test_param_yaml_follows_the_models_input_dtype_and_colour_order(model_dir):
    import dataclasses

    from gradgroup.calib.tidl_package import param_dict
    from gradgroup.deploy.graph.core import load_onnx
    from gradgroup.deploy.metadata import read_meta

    model = load_onnx(model_dir / "tiny.onnx")
    meta = read_meta(model)
    float_rgb = param_dict(model, meta, "tiny.onnx", "tda4vm", {})
    s = float_rgb["session"]
    assert s["input_scale"] == [round(1 / v, 9) for v in meta.preprocess.std]
    assert s["input_details"][0]["type"] == "tensor(float)" and s["target_device"] == "TDA4VM"
    assert s["input_details"][0]["shape"][1:] == [3, 32, 64]
    bgr = dataclasses.replace(meta.preprocess, color_order="BGR")
    uint8 = dataclasses.replace(meta, input_dtype="uint8", output="argmax", preprocess=bgr)
    p = param_dict(model, uint8, "tiny.onnx", "am68a", {})
    assert p["session"]["input_optimization"] is True  # normalization is inside the graph
    assert p["session"]["input_mean"] is None and p["session"]["input_scale"] is None
    assert p["preprocess"]["reverse_channels"] is True
    assert p["postprocess"]["with_argmax"] is False
    f = dataclasses.replace(meta, preprocess=bgr)
    assert param_dict(model, f, "t", "am68a", {})["session"]["input_mean"] == list(
        meta.preprocess.mean[::-1]
    )


def test_yaml_emitter_quotes_what_yaml_would_misread():
    from gradgroup.calib.tidl_package import to_yaml

    data = {
        "a": {"on": "yes", "n": None, "t": True, "x": 0.5, "s": "tensor(float)", "e": {}},
        "list": [1, "466", "model/m.onnx"],
        "details": [{"name": "in:0", "shape": [1, None, 8]}, {"name": "out"}],
        "deny_list:layer_type": "MaxPool, Resize",
    }
    assert to_yaml(data) == (
        "a:\n"
        '  "on": "yes"\n'
        '  "n": null\n'
        "  t: true\n"
        "  x: 0.5\n"
        "  s: tensor(float)\n"
        "  e: {}\n"
        'list: [1, "466", model/m.onnx]\n'
        "details:\n"
        '- name: "in:0"\n'
        "  shape: [1, null, 8]\n"
        "- name: out\n"
        '"deny_list:layer_type": "MaxPool, Resize"\n'
    )
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(to_yaml(data)) == data


def test_cli_tidl_flags_map_to_tis_options(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SOC", "j722s")
    names = "advanced_options:output_feature_16bit_names_list=a, b"
    argv = ["calib", "m.onnx", "--target", "tidl", "--deny-list", "MaxPool", "--deny-list-name",
            "n1", "n2", "--tidl-option", "tensor_bits=16", "--tidl-option", names,
            "--print-config", "--json"]  # fmt: skip
    assert main(argv) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["soc"] == "am67a" and cfg["calibration_iterations"] == 50
    assert cfg["deny_list_type"] == ["MaxPool"] and cfg["deny_list_name"] == ["n1", "n2"]
    assert cfg["options"] == {
        "tensor_bits": 16,
        "advanced_options:output_feature_16bit_names_list": "a, b",
    }
    # The printed config loads back: options become --tidl-option items again.
    saved = tmp_path / "c.json"
    saved.write_text(json.dumps(cfg))
    assert main(["calib", "m.onnx", "--config", str(saved), "--print-config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["options"] == cfg["options"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--tidl-option", "debug_level"], "KEY=VALUE"),
        (["--tidl-option", "artifacts_folder=/x"], "use --out"),
        (["--soc", "am62"], "--soc 'am62'"),
    ],
)
def test_cli_bad_tidl_input_is_one_line(capsys, extra, message):
    assert main(["calib", "m.onnx", "--target", "tidl", *extra, "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and err.startswith("gradgroup: error:")


def test_bad_dollar_soc_only_matters_for_tidl(capsys, monkeypatch):
    monkeypatch.setenv("SOC", "bogus")
    with pytest.raises(SystemExit) as stop:
        main(["calib", "--help"])
    assert stop.value.code == 0 and "$SOC" in capsys.readouterr().out
    assert main(["calib", "m.onnx", "--print-config", "--json"]) == 0  # --target cpu
    capsys.readouterr()
    assert main(["calib", "m.onnx", "--target", "tidl", "--print-config"]) == 2
    assert "(from $SOC)" in capsys.readouterr().err


def test_cli_compiles_into_the_default_package_named_after_dollar_soc(
    fake_tidl, model_dir, tmp_path, capsys, monkeypatch
):
    _, tools = fake_tidl
    shutil.copy(model_dir / "tiny.onnx", tmp_path / "tiny.onnx")
    shutil.copy(model_dir / "tiny.calib.npz", tmp_path / "tiny.calib.npz")
    monkeypatch.setenv("SOC", "am69a")
    argv = ["calib", str(tmp_path / "tiny.onnx"), "--target", "tidl", "--tidl-tools", str(tools),
            "--calib-frames", "2", "--json"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    out = tmp_path / "tiny_tidl_am69a"
    assert report["soc"] == "am69a" and report["package"] == str(out)
    assert report["param_yaml"] == str(out / "param.yaml") and (out / "param.yaml").is_file()
    assert "  target_device: AM69A\n" in (out / "param.yaml").read_text()
