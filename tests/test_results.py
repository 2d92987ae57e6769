"""The typed stage results: state.json round trips, and an entry that no longer parses re-runs."""

import json
import logging

import pytest

from gradgroup import stages
from gradgroup.config import PipelineConfig
from gradgroup.deploy.bench import SystemInfo
from gradgroup.pipeline import run_pipeline
from gradgroup.results import (
    STAGE_TYPES,
    Accuracy,
    BenchStage,
    BenchSummary,
    BenchTable,
    CalibStage,
    DemoVideo,
    ExportedModel,
    ExportStage,
    QuantizedModel,
    ReportFiles,
    StateError,
    TrainedRun,
    TrainStage,
)

ARCHS = ("dg4-light", "erfnet")


def _file(folder, name):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    return str(path)


def fake_results(folder):
    """One result of every stage, its artifacts real (empty) files under ``folder``."""
    train = TrainStage(
        runs={
            a: TrainedRun(
                "gradual", None, _file(folder, f"{a}/best.pt"), 0.5, 0.0, 24, 3.0, 0.1, "done"
            )  # fmt: skip
            for a in ARCHS
        }
    )
    export = ExportStage(
        models={
            a: ExportedModel(
                *(_file(folder, f"{a}.{k}") for k in ("onnx", "npz", "tidl.onnx")),
                2,
                0,
                _file(folder, f"{a}.deploy.onnx"),
                "c.npz",
                94,
                1000,
                10**6,
                4 * 10**6,
            )  # fmt: skip
            for a in ARCHS
        }
    )
    calib = CalibStage(
        models={
            a: QuantizedModel(
                _file(folder, f"{a}.int8.onnx"),
                _file(folder, f"{a}.d8.onnx"),
                Accuracy(0.40, 0.395, 0.005, 0.97),
                ("Conv_1",),
                "r.json",
            )  # fmt: skip
            for a in ARCHS
        }
    )
    row = BenchSummary("dg4-light", "fp32", "m.onnx", (32, 64), 1000, 10**6, 1.0, 2.0, 900.0,
                       3.0, True, 0.5, "estimate", 4096)  # fmt: skip
    table = BenchTable(_file(folder, "bench.json"), "bench.md", None, (row,))
    system = SystemInfo(1, "CPUExecutionProvider", "cpu", "1.0", "linux", 30.0, 33.3)
    bench = BenchStage(tables={"model": table, "deploy": table}, system=system)
    demo = DemoVideo(_file(folder, "demo.mp4"), 3, 20.0, 0)
    report = ReportFiles(_file(folder, "report.md"), _file(folder, "report.json"), [{"a": 1}])
    return {"train": train, "export": export, "calib": calib, "bench": bench, "demo": demo,
            "report": report}  # fmt: skip


def test_every_stage_round_trips_through_json(tmp_path):
    for name, result in fake_results(tmp_path).items():
        data = json.loads(json.dumps(result.to_dict()))
        assert STAGE_TYPES[name].from_dict(data) == result, name
        assert data["artifacts"] == result.artifacts and result.artifacts, name


def test_a_renamed_or_missing_key_does_not_parse(tmp_path):
    data = fake_results(tmp_path)["export"].to_dict()
    entry = data["models"]["dg4-light"]
    entry["deploy_gmacs"] = entry.pop("deploy_macs")
    with pytest.raises(StateError, match="ExportedModel lacks deploy_macs"):
        ExportStage.from_dict(data)
    with pytest.raises(StateError, match="lacks runs"):
        TrainStage.from_dict({"models": {}})
    with pytest.raises(StateError, match="expected an object"):
        CalibStage.from_dict({"models": {"dg4-light": ["not", "a", "model"]}})


def test_a_stage_entry_that_no_longer_parses_reruns_only_that_stage(tmp_path, monkeypatch, caplog):
    """The first run finishes every stage; after its calib entry lost a key the second run runs
    calib again with one warning and reuses the other stages (the report always runs)."""
    fakes = fake_results(tmp_path / "files")
    calls = []

    def stage(name):
        def run(cfg, out, results, progress):
            calls.append(name)
            if name == "export":  # each stage reads the earlier ones as typed results
                assert results.train.runs["dg4-light"].miou == 0.5
            return fakes[name]

        return run

    for name, fn in (("train", "train_models"), ("export", "export_models"),
                     ("calib", "calibrate_models"), ("bench", "bench_models"),
                     ("demo", "run_demo_video"), ("report", "write_report")):  # fmt: skip
        monkeypatch.setattr(stages, fn, stage(name))
    cfg = PipelineConfig(out=str(tmp_path / "out"), size=(32, 64), deploy_size=(64, 128))
    first = run_pipeline(cfg, progress=False)
    assert calls == ["train", "export", "calib", "bench", "demo", "report"]
    assert first.rows == [{"a": 1}]

    state_path = tmp_path / "out" / "state.json"
    state = json.loads(state_path.read_text())
    del state["stages"]["calib"]["models"]["erfnet"]["accuracy"]["agreement"]
    state_path.write_text(json.dumps(state))
    calls.clear()
    with caplog.at_level(logging.WARNING, logger="gradgroup.pipeline"):
        run_pipeline(cfg, progress=False)
    assert calls == ["calib", "report"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "calib entry no longer parses" in warnings[0]
    assert "Accuracy lacks agreement" in warnings[0]
    rewritten = json.loads(state_path.read_text())["stages"]["calib"]
    assert CalibStage.from_dict(rewritten) == fakes["calib"]


def test_a_stage_whose_files_are_gone_reruns(tmp_path, monkeypatch):
    fakes = fake_results(tmp_path / "files")
    calls = []
    for name, fn in (("train", "train_models"), ("export", "export_models"),
                     ("calib", "calibrate_models"), ("bench", "bench_models"),
                     ("demo", "run_demo_video"), ("report", "write_report")):  # fmt: skip
        monkeypatch.setattr(stages, fn, lambda *a, n=name: calls.append(n) or fakes[n])
    cfg = PipelineConfig(out=str(tmp_path / "out"), size=(32, 64), deploy_size=(64, 128))
    run_pipeline(cfg, progress=False)
    (tmp_path / "files" / "demo.mp4").unlink()
    calls.clear()
    run_pipeline(cfg, progress=False)
    assert calls == ["demo", "report"]


def test_accuracy_in_percent_from_an_older_state_does_not_parse():
    """Accuracy became fractions; a percent-era entry must re-run calib, not be misread."""
    with pytest.raises(ValueError, match="percent"):
        Accuracy.from_dict({"fp32_miou": 40.0, "int8_miou": 39.5, "drop": 0.5, "agreement": 97.0})
    assert Accuracy.from_dict(
        {"fp32_miou": 0.4, "int8_miou": 0.395, "drop": 0.005, "agreement": 0.97}
    ).agreement == pytest.approx(0.97)
