"""The one ORT session builder: provider choice, OpenVINO plugin wiring, one-line errors."""

import json
import sys
import types

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from gradgroup.deploy import session
from gradgroup.deploy.errors import InputError, MissingDependencyError, RunError
from gradgroup.deploy.runtime import Segmenter


def test_refused_graph_is_one_line_of_the_callers_error_type():
    with pytest.raises(RunError, match="cannot load the exported graph") as e:
        session.open_session(b"not a model", "the exported graph", error=RunError)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"provider": "cuda"}, "not one of cpu, tidl, openvino"),
        ({"graph_optimization": "max"}, "not one of all"),
        ({"threads": -1}, "must be 0"),
    ],
)
def test_bad_settings_are_refused_before_ort_runs(tiny_onnx, kwargs, match):
    with pytest.raises(InputError, match=match):
        session.open_session(tiny_onnx, "m", **kwargs)


def test_openvino_without_the_plugin_names_the_extra(tiny_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime_ep_openvino", None)  # import fails
    with pytest.raises(MissingDependencyError, match=r"gradgroup\[openvino\]") as e:
        Segmenter(tiny_onnx, provider="openvino")
    assert "\n" not in str(e.value)


def _fake_plugin(monkeypatch, devices):
    """A plugin module and registry whose device list we choose (no OpenVINO needed)."""
    plugin = types.SimpleNamespace(get_library_path=lambda: "/nowhere/libplugin.so")
    monkeypatch.setitem(sys.modules, "onnxruntime_ep_openvino", plugin)
    monkeypatch.setattr(session, "_registered", set())
    calls = []
    monkeypatch.setattr(ort, "register_execution_provider_library", lambda *a: calls.append(a))
    monkeypatch.setattr(ort, "get_ep_devices", lambda: devices)
    return calls


def _device(ep_name, vendor):
    hw = types.SimpleNamespace(type=ort.OrtHardwareDeviceType.CPU, vendor=vendor)
    return types.SimpleNamespace(ep_name=ep_name, device=hw)


def test_openvino_on_a_cpu_its_plugin_does_not_serve_says_which_cpu(monkeypatch):
    calls = _fake_plugin(monkeypatch, [_device("CPUExecutionProvider", "AMD")])
    with pytest.raises(MissingDependencyError, match="Intel devices only and this CPU is AMD"):
        session.openvino_devices()
    assert calls == [("OpenVINOExecutionProvider", "/nowhere/libplugin.so")]


def test_openvino_registers_once_and_passes_openvino_names_in_load_config(monkeypatch):
    ov_cpu = _device("OpenVINOExecutionProvider", "Intel")
    calls = _fake_plugin(monkeypatch, [_device("CPUExecutionProvider", "Intel"), ov_cpu])
    added = []
    options = types.SimpleNamespace(add_provider_for_devices=lambda d, o: added.append((d, o)))
    session.add_openvino(options, 2, {"INFERENCE_PRECISION_HINT": "bf16", "NUM_STREAMS": 1})
    session.add_openvino(options, None, {})
    assert len(calls) == 1  # the plugin library is registered once per process
    devices, opts = added[0]
    assert devices == [ov_cpu]
    assert json.loads(opts["load_config"]) == {
        "CPU": {
            "INFERENCE_PRECISION_HINT": "bf16",  # the user's choice wins over the f32 default
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": "2",
            "NUM_STREAMS": "1",
        }
    }
    # Without options: full precision, never a reduced one by default.
    assert json.loads(added[1][1]["load_config"])["CPU"]["INFERENCE_PRECISION_HINT"] == "f32"


def test_openvino_refuses_tidl_artifacts(tiny_onnx, tmp_path):
    with pytest.raises(InputError, match="TIDL folder"):
        session.open_session(tiny_onnx, "m", provider="openvino", artifacts=tmp_path)


def _openvino_ready() -> bool:
    try:
        session.openvino_devices()
    except MissingDependencyError:
        return False
    return True


@pytest.mark.skipif(not _openvino_ready(), reason="needs the OpenVINO plugin and an Intel CPU")
def test_openvino_runs_the_whole_graph_and_agrees_with_the_cpu_provider(tiny_onnx):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    ov = Segmenter(tiny_onnx, provider="openvino", threads=1)
    cpu = Segmenter(tiny_onnx, threads=1)
    assert ov.providers[0] == "OpenVINOExecutionProvider"
    assert (ov(frame).class_map == cpu(frame).class_map).mean() > 0.99


@pytest.mark.parametrize(
    "argv",
    [
        ["pipeline", "--provider", "openvino", "--out", "{d}/pp"],
        ["eval", "{model}", "--provider", "openvino", "--limit", "1"],
        ["bench", "{model}", "--provider", "openvino", "--runs", "1"],
        ["predict", "{model}", "{d}/img", "--provider", "openvino", "--out", "{d}/pred"],
    ],
)
def test_every_command_names_the_missing_openvino_extra_before_work(
    argv, tiny_onnx, tmp_path, monkeypatch, capsys
):
    from gradgroup.cli import main

    (tmp_path / "none").mkdir()
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setitem(sys.modules, "onnxruntime_ep_openvino", None)
    rc = main([a.format(d=tmp_path, model=tiny_onnx) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.count("\n") == 0 and "gradgroup[openvino]" in err
    assert not (tmp_path / "pp" / "state.json").exists()
    assert not (tmp_path / "pred").exists() or not list((tmp_path / "pred").rglob("*.png"))


def test_malformed_ov_option_is_one_line(tiny_onnx, capsys):
    from gradgroup.cli import main

    assert main(["bench", str(tiny_onnx), "--provider", "openvino", "--ov-option", "bf16"]) == 2
    assert "--ov-option 'bf16' is not KEY=VALUE" in capsys.readouterr().err
