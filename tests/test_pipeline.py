"""The main job end to end at a tiny size: every artifact, the report's fields, resuming."""

import json
import time
from pathlib import Path

import cv2
import onnx
import pytest

from gradgroup.cli import main
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.metadata import read_meta
from gradgroup.pipeline import PipelineConfig, run_pipeline

TINY = dict(
    arch="dg4-light", baseline="erfnet", size=(32, 64), deploy_size=(64, 128), budget_min=0.02,
    batch_size=2, bench_seconds=0.2, demo_frames=3, threads=1,
)  # fmt: skip


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline")
    cfg = PipelineConfig(out=str(out), **TINY)
    return cfg, run_pipeline(cfg, progress=False)


def test_every_artifact_exists(pipeline_run):
    cfg, result = pipeline_run
    out = Path(result.out)
    report = json.loads(Path(result.report_json).read_text())
    for name, rel in report["artifacts"].items():
        assert (out / rel).is_file(), name
    for arch in ("dg4-light", "erfnet"):
        assert (out / "train" / arch / "best.pt").is_file()
        for path in (f"models/{arch}.onnx", f"models/{arch}.int8.onnx", f"models/tidl/{arch}.onnx"):
            onnx.checker.check_model(str(out / path))
    assert (out / "report.md").read_text().startswith("# gradgroup pipeline report")


def test_run_folder_records_versions_command_and_settings(pipeline_run):
    cfg, result = pipeline_run
    run = json.loads((Path(result.out) / "run.json").read_text())
    assert run["config"]["arch"] == cfg.arch and run["config"]["max_drop"] == cfg.max_drop
    assert {"onnxruntime", "onnx", "numpy", "python", "torch"} <= set(run["versions"])
    trained = json.loads((Path(result.out) / "train" / cfg.arch / "run.json").read_text())
    assert trained["config"]["arch"] == cfg.arch


def test_report_fields(pipeline_run):
    cfg, result = pipeline_run
    report = json.loads(Path(result.report_json).read_text())
    rows = report["models"]
    assert [(r["model"], r["precision"]) for r in rows] == [
        ("dg4-light", "fp32"), ("dg4-light", "int8"), ("erfnet", "fp32"), ("erfnet", "int8"),
    ]  # fmt: skip
    for row in rows:
        for key in (
            "miou",
            "params",
            "macs",
            "p50_ms",
            "p99_ms",
            "fps",
            "meets_budget",
            "energy_mj",
        ):
            assert row[key] is not None, key
        assert row["p50_ms"] <= row["p99_ms"] and row["energy_label"] == "estimate"
    assert rows[1]["int8_drop"] is not None
    assert rows[0]["macs"] * 5 < rows[2]["macs"]  # the light dg4 is far cheaper than ERFNet
    assert len(report["deploy_models"]) == 4
    assert report["deploy_models"][0]["macs"] == pytest.approx(4 * rows[0]["macs"], rel=0.01)
    for name in ("dg4-light.onnx", "dg4-light.int8.onnx"):  # the camera pipeline's form
        deploy = onnx.load(str(Path(result.out) / "models/deploy" / name))
        meta = read_meta(deploy)
        assert meta.input_dtype == "uint8" and meta.output == "argmax"
        assert deploy.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    train = report["training"]
    assert train["dg4-light"]["alpha"] == 0.0 and train["dg4-light"]["schedule"] == "gradual"
    tidl = onnx.load(str(Path(result.out) / "models/tidl/dg4-light.onnx"))
    assert any(n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
               for n in tidl.graph.node)  # fmt: skip


def test_models_record_the_pipelines_data_and_calibrate_on_it(pipeline_run):
    cfg, result = pipeline_run
    models = Path(result.out) / "models"
    for rel in ("dg4-light.onnx", "dg4-light.int8.onnx", "deploy/erfnet.int8.onnx"):
        assert read_meta(onnx.load(str(models / rel))).data == cfg.data == "synthetic", rel
    for rel in ("dg4-light.export.json", "deploy/dg4-light.export.json"):
        assert json.loads((models / rel).read_text())["config"]["calib_data"] == cfg.data
    accuracy = json.loads((models / "dg4-light.int8.json").read_text())["accuracy"]
    assert accuracy["eval_data"].startswith("synthetic val")


def test_demo_video_is_playable(pipeline_run):
    cfg, result = pipeline_run
    cap = cv2.VideoCapture(str(Path(result.out) / "demo.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == cfg.demo_frames


def test_rerun_reuses_finished_stages(pipeline_run):
    cfg, result = pipeline_run
    start = time.perf_counter()
    again = run_pipeline(cfg, progress=False)
    assert time.perf_counter() - start < result.seconds
    assert [r["model"] for r in again.rows] == [r["model"] for r in result.rows]
    state = json.loads((Path(result.out) / "state.json").read_text())
    assert set(state["stages"]) == {"train", "export", "calib", "bench", "demo", "report"}


def test_other_settings_in_the_same_folder_are_refused(pipeline_run):
    cfg, result = pipeline_run
    with pytest.raises(InputError, match="other settings"):
        run_pipeline(
            PipelineConfig(out=result.out, **{**TINY, "arch": "dg8-light"}), progress=False
        )


def test_cli_rejects_bad_settings(capsys, tmp_path):
    assert main(["pipeline", "--out", str(tmp_path), "--size", "30x60"]) == 2
    assert "multiples of 8" in capsys.readouterr().err
    assert main(["pipeline", "--out", str(tmp_path), "--arch", "erfnet"]) == 2


def test_a_folder_another_pipeline_holds_is_refused(tmp_path):
    import os

    from gradgroup.deploy.fileio import folder_lock

    busy = rf"in use by another pipeline \(pid {os.getpid()}\)"
    with folder_lock(tmp_path, "pipeline"), pytest.raises(InputError, match=busy):
        run_pipeline(PipelineConfig(out=str(tmp_path), **TINY), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_training_plan_is_decided_once(tmp_path, monkeypatch):
    """A re-run measures a different step time; resuming needs the first run's plan."""
    from gradgroup import stages

    cfg = PipelineConfig(out=str(tmp_path), **TINY)
    steps = iter([0.5, 0.05, 0.3, 0.2])
    monkeypatch.setattr(stages, "seconds_per_iteration", lambda *a: next(steps))
    first = stages._plan(tmp_path / "m", "dg4-light", cfg, "gradual")
    assert stages._plan(tmp_path / "m", "dg4-light", cfg, "gradual") == first
    assert json.loads((tmp_path / "m" / "plan.json").read_text()) == first
    assert next(steps) == 0.3  # the second call measured nothing


def test_plan_prices_the_decay_in_the_gradual_form_from_its_start(tmp_path, monkeypatch):
    """Decay epochs cost a step of the gradual model as it starts (init applied), fine-tune
    epochs one of the grouped model; the budget buys iterations at their mean."""
    from gradgroup import stages
    from gradgroup.config import EPOCHS, TRAIN_SHARE

    calls = []

    def step(arch, cfg, form, init=None):
        calls.append((form, init))
        return {"grouped": 0.1, "gradual": 0.4}[form]

    monkeypatch.setattr(stages, "seconds_per_iteration", step)
    cfg = PipelineConfig(out=str(tmp_path), budget_min=1.0)
    plan = stages._plan(tmp_path / "m", "dg4-light", cfg, "gradual", "start.pt", EPOCHS // 2)
    assert sorted(calls) == [("gradual", "start.pt"), ("grouped", None)]
    assert plan["step"] == pytest.approx(0.25)
    assert plan["iters_per_epoch"] == -(-int(TRAIN_SHARE * 60 / 0.25) // EPOCHS)
    calls.clear()
    baseline = stages._plan(tmp_path / "b", "erfnet", cfg, "scratch", "erfnet.pt")
    assert calls == [("grouped", None)] and baseline["step"] == pytest.approx(0.1)


def test_init_choices(tmp_path):
    from gradgroup.stages import resolve_init

    assert resolve_init("none", "dg4-light", "synthetic") is None
    assert resolve_init("shipped", "dg4-light", "cityscapes:/data") is None  # scenes only
    with pytest.raises(InputError, match="no such checkpoint"):
        PipelineConfig(out=str(tmp_path), init=str(tmp_path / "nope.pt"))
