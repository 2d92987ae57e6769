"""The latency/energy benchmark: statistics, frame sources, reports and the CLI."""

import json
import logging
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from gradgroup.cli import main
from gradgroup.deploy.bench import (
    BenchConfig,
    LatencyStats,
    bench_frames,
    benchmark,
    cpu_model,
    load_accuracy,
    system_info,
)
from gradgroup.deploy.bench_report import format_report, report_dict
from gradgroup.deploy.calibset import save_calibset
from gradgroup.deploy.errors import InputError, MissingDependencyError
from gradgroup.deploy.graph.stats import graph_stats
from gradgroup.deploy.metadata import ModelMeta, read_meta, write_meta
from gradgroup.deploy.preprocess import Preprocess

FAST = {"runs": 5, "warmup": 0.1, "threads": 1, "progress": False}


@pytest.fixture(scope="module")
def scored(tiny_onnx, tmp_path_factory):
    """The tiny model again, with an mIoU in its metadata."""
    model = onnx.load(str(tiny_onnx))
    meta = read_meta(model)
    write_meta(model, ModelMeta(arch=meta.arch, preprocess=meta.preprocess, extra={"miou": 0.42}))
    path = tmp_path_factory.mktemp("scored") / "scored.onnx"
    onnx.save(model, str(path))
    return path


def test_threads_beyond_the_cpus_are_capped_with_one_warning(caplog, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    with caplog.at_level(logging.WARNING, logger="gradgroup.deploy.bench"):
        cfg = BenchConfig(threads=1000)
    assert cfg.threads == 2 and system_info(cfg).threads == 2
    assert [r.getMessage() for r in caplog.records] == [
        "--threads 1000 is more than the 2 CPUs here; using 2"
    ]
    assert BenchConfig(threads=2).threads == 2


def test_latency_stats_exact():
    s = LatencyStats.from_samples([10.0, 20.0, 30.0, 40.0], budget_ms=25.0)
    assert (s.p50, s.max, s.mean) == (25.0, 40.0, 25.0)
    assert s.p90 == pytest.approx(37.0) and s.p99 == pytest.approx(39.7)
    assert s.std == pytest.approx(np.std([10, 20, 30, 40]))
    assert s.fps == pytest.approx(40.0) and s.over_budget == 0.5 and not s.passed
    assert LatencyStats.from_samples([10.0, 20.0], budget_ms=25.0).passed


def test_benchmark_one_model(tiny_onnx):
    cfg = BenchConfig(**FAST)
    (row,) = benchmark([tiny_onnx], cfg)
    assert row.frames == 5 and len(row.samples_ms["frame"]) == 5
    for s in (row.inference, row.frame):
        assert 0 < s.p50 <= s.p90 <= s.p99 <= s.max
    # The whole frame contains its inference, frame by frame.
    assert all(f >= i for f, i in zip(row.samples_ms["frame"], row.samples_ms["inference"]))
    assert set(row.stages_ms) == {"preprocess", "inference", "postprocess"}
    stats = graph_stats(tiny_onnx)
    assert (row.macs, row.params, row.precision) == (stats.macs, stats.params, "fp32")
    assert row.peak_activation_bytes == stats.peak_activation_bytes
    assert row.energy.label == "estimate" and row.energy.total_mj > 0
    assert row.frame_size == row.model_size == (32, 64)
    assert row.miou is None


def test_duration_budget_and_frame_size(tiny_onnx):
    cfg = BenchConfig(runs=None, duration=0.3, warmup=0.0, threads=1, progress=False,
                      fps_target=1e6, frame_size=(64, 128))  # fmt: skip
    (row,) = benchmark([tiny_onnx], cfg)
    assert row.frames >= 2
    assert sum(row.samples_ms["frame"]) <= 300 + row.frame.max  # stops once time is up
    assert row.frame_size == (64, 128)
    assert row.frame.over_budget == 1.0 and not row.frame.passed  # 1 µs budget


def test_frames_never_blank_and_calib_frames_used(tmp_path):
    cfg = BenchConfig(num_frames=3, frame_size=(48, 96))
    frames = bench_frames(cfg, (32, 64))
    assert len(frames) == 3 and all(f.shape == (48, 96, 3) and f.std() > 0 for f in frames)
    assert not np.array_equal(frames[0], frames[1])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 64, 3), dtype=np.uint8)
    calib = save_calibset(tmp_path / "c.npz", images, ["a", "b"], Preprocess(32, 64))
    frames = bench_frames(BenchConfig(calib=str(calib), num_frames=8), (32, 64))
    assert len(frames) == 2
    assert np.array_equal(frames[1], images[1][..., ::-1])  # RGB set -> BGR camera frames


def test_two_models_ratios_and_report(tiny_onnx, scored):
    cfg = BenchConfig(**FAST)
    rows = benchmark([tiny_onnx, scored], cfg)
    assert rows[1].miou == 0.42
    info = system_info(cfg)
    text = format_report(rows, info)
    assert f"onnxruntime {ort.__version__}" in text and "threads 1" in text
    assert "provider cpu" in text and info.cpu in text and "estimate" in text
    data = report_dict(rows, info, cfg)
    assert data["baseline"] == "tiny"
    assert data["rows"][0]["ratios"]["frame_p50"] == 1.0
    ratio = data["rows"][1]["ratios"]["inference_p50"]
    assert ratio == pytest.approx(rows[1].inference.p50 / rows[0].inference.p50)
    assert data["rows"][1]["ratios"]["macs"] == 1.0


def test_cli_writes_json_markdown_plot(tiny_onnx, scored, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({"model": str(tiny_onnx), "metrics": {"miou": 0.615}}))
    out = {k: tmp_path / f"b.{k}" for k in ("json", "md", "png")}
    files = ["--json-out", str(out["json"]), "--markdown", str(out["md"])]
    files += ["--plot", str(out["png"])]
    rc = main(["bench", str(tiny_onnx), str(scored), "--runs", "5", "--warmup", "0.1",
               "--threads", "1", "--no-progress", "--accuracy", str(acc), *files])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "bench done: 2 model(s)" in printed and "frame p99" in printed
    data = json.loads(out["json"].read_text())
    assert [r["miou"] for r in data["rows"]] == [0.615, 0.42]
    assert len(data["rows"][0]["samples_ms"]["inference"]) == 5
    assert data["system"]["threads"] == 1 and data["config"]["runs"] == 5
    assert "| tiny |" in out["md"].read_text()
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--runs", "0"], "runs=0"),
        (["--provider", "tidl", "--artifacts", "."], "TIDLExecutionProvider"),
        (["--frame-size", "12"], "HxW"),
        (["--tidl-option", "debug_level"], "KEY=VALUE"),
    ],
)
def test_cli_errors_leave_no_files(tiny_onnx, tmp_path, capsys, extra, message):
    if "tidl" in extra and "TIDLExecutionProvider" in ort.get_available_providers():
        pytest.skip("TI's onnxruntime present")
    js = tmp_path / "b.json"
    argv = ["bench", str(tiny_onnx), "--runs", "5", "--no-progress", "--json-out", str(js)]
    rc = main([*argv, *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.startswith("gradgroup: error:")
    assert not js.exists()


def test_missing_model_and_matplotlib(tiny_onnx, tmp_path, capsys, monkeypatch):
    assert main(["bench", str(tmp_path / "nope.onnx"), "--runs", "5"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(InputError, match="no models"):
        benchmark([], BenchConfig())
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now fails
    from gradgroup.deploy.plots import require_matplotlib

    with pytest.raises(MissingDependencyError, match="gradgroup\\[plot\\]"):
        require_matplotlib()
    png = tmp_path / "b.png"
    assert main(["bench", str(tiny_onnx), "--runs", "5", "--plot", str(png)]) == 2
    assert not png.exists()


def test_cpu_model_and_accuracy_files(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: Fancy CPU @ 3GHz\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 400\nModel\t: TI J721E EVM\n")
    assert cpu_model(x86) == "Fancy CPU @ 3GHz" and cpu_model(arm) == "TI J721E EVM"
    acc = tmp_path / "acc.json"
    acc.write_text(json.dumps({"a.onnx": 0.5, "b.onnx": {"miou": 0.7}, "note": "x"}))
    assert load_accuracy(acc) == {"a.onnx": 0.5, "b.onnx": 0.7}
    acc.write_text(json.dumps({"b.onnx": {"miou": 70.0}}))  # percent is refused, not guessed
    with pytest.raises(InputError, match="not a fraction"):
        load_accuracy(acc)
    acc.write_text(json.dumps([{"model": "c.onnx", "miou": 0.3}]))
    assert load_accuracy(acc) == {"c.onnx": 0.3}
    calib_report = {"path": "/x/d.int8.onnx", "accuracy": {"fp32_miou": 0.61, "int8_miou": 0.6}}
    acc.write_text(json.dumps(calib_report))
    assert load_accuracy(acc) == {"/x/d.int8.onnx": 0.6}
    acc.write_text(json.dumps({"note": "no numbers"}))
    with pytest.raises(InputError, match="names no model"):
        load_accuracy(acc)
    acc.write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        load_accuracy(acc)
