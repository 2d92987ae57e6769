"""--artifacts on the board side: an artifacts folder or TI's package holding one, and one folder
per model when bench runs several (TI's runtime is absent here: its provider list is faked)."""

import shutil

import onnxruntime as ort
import pytest

from gradgroup.cli import main
from gradgroup.deploy import bench
from gradgroup.deploy.bench import BenchConfig, _artifacts_for, benchmark
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.session import tidl_artifacts, tidl_provider_options


def _package(folder):
    """A folder in TI's layout, as gradgroup calib --target tidl writes it."""
    (folder / "artifacts").mkdir(parents=True)
    (folder / "artifacts" / "123_tidl_net.bin").write_bytes(b"x")
    (folder / "model").mkdir()
    (folder / "param.yaml").write_text("session:\n  artifacts_folder: artifacts\n")
    return folder


def test_a_package_resolves_to_its_artifacts_folder(tmp_path):
    pkg = _package(tmp_path / "dg4_tidl")
    assert tidl_artifacts(pkg) == pkg / "artifacts"
    assert tidl_artifacts(pkg / "artifacts") == pkg / "artifacts"  # the folder itself
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "param.yaml").write_text("")
    with pytest.raises(InputError, match="param.yaml but no artifacts/"):
        tidl_artifacts(broken)
    with pytest.raises(InputError, match="does not exist; compile the model first"):
        tidl_artifacts(tmp_path / "missing")


def test_provider_options_and_segmenter_use_the_packages_artifacts(
    tiny_onnx, tmp_path, monkeypatch
):
    from gradgroup.deploy.runtime import Segmenter

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["TIDLExecutionProvider", "CPU"])
    pkg = _package(tmp_path / "pkg")
    options = tidl_provider_options(pkg, {"core_number": 2})
    assert options == {"artifacts_folder": str(pkg / "artifacts"), "debug_level": "0",
                       "core_number": "2"}  # fmt: skip
    seen = {}

    class FakeSession:  # TI's InferenceSession: only what Segmenter asks of it at start
        def __init__(self, source, options, providers, provider_options, disabled_optimizers):
            seen.update(source=source, providers=providers, options=provider_options[0])

        def get_inputs(self):
            return [type("Input", (), {"name": "input"})()]

    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    Segmenter(tiny_onnx, provider="tidl", artifacts=pkg, tidl_options={"debug_level": 1})
    assert seen["providers"][0] == "TIDLExecutionProvider" and seen["source"] == str(tiny_onnx)
    assert seen["options"]["artifacts_folder"] == str(pkg / "artifacts")
    assert seen["options"]["debug_level"] == "1"


def test_several_models_need_their_own_artifacts_folder(tmp_path):
    parent = tmp_path / "tidl"
    _package(parent / "a")
    (parent / "b").mkdir()  # a bare artifacts folder works as well
    cfg = BenchConfig(provider="tidl", artifacts=str(parent), threads=1)
    a, b, c = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "c.onnx"
    assert _artifacts_for(cfg, a, several=True) == str(parent / "a")
    assert _artifacts_for(cfg, b, several=True) == str(parent / "b")
    with pytest.raises(InputError, match=r"has no folder c/ for model c\.onnx") as info:
        _artifacts_for(cfg, c, several=True)
    assert "\n" not in str(info.value) and "--out" in str(info.value)
    assert _artifacts_for(cfg, c, several=False) == str(parent)  # one model: the folder given
    cpu = BenchConfig(artifacts=str(parent), threads=1)
    assert _artifacts_for(cpu, c, several=True) == str(parent)  # ignored off TIDL, as before
    gone = BenchConfig(provider="tidl", artifacts=str(tmp_path / "gone"), threads=1)
    with pytest.raises(InputError, match="does not exist"):
        _artifacts_for(gone, a, several=True)


def test_bench_refuses_a_missing_model_folder_before_timing_any(tiny_onnx, tmp_path, monkeypatch):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    shutil.copy(tiny_onnx, a)
    shutil.copy(tiny_onnx, b)
    _package(tmp_path / "tidl" / "a")
    timed = []
    monkeypatch.setattr(bench, "bench_one", lambda *args: timed.append(args))
    cfg = BenchConfig(provider="tidl", artifacts=str(tmp_path / "tidl"), threads=1)
    with pytest.raises(InputError, match="no folder b/"):
        benchmark([a, b], cfg)
    assert timed == []


def test_cli_bench_names_the_missing_folder_in_one_line(tiny_onnx, tmp_path, capsys):
    a, b = tmp_path / "dg4.onnx", tmp_path / "erfnet.onnx"
    shutil.copy(tiny_onnx, a)
    shutil.copy(tiny_onnx, b)
    _package(tmp_path / "tidl" / "dg4")
    argv = ["bench", str(a), str(b), "--provider", "tidl", "--artifacts", str(tmp_path / "tidl"),
            "--runs", "1", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradgroup: error: --artifacts") and "no folder erfnet/" in err
    assert "\n" not in err
