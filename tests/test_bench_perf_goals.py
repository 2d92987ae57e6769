"""bench/perf_goals.py's judging logic: the provider goals and the fastest accurate model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def perf_goals():
    sys.path.insert(0, str(BENCH))  # the script imports its sibling op_profile
    try:
        spec = importlib.util.spec_from_file_location("perf_goals", BENCH / "perf_goals.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


BIG = "512x1024"


def _verdicts(rows: list[list[str]]) -> dict[str, str]:
    return {f"{r[0]} | {r[1]}": r[4] for r in rows}


def test_provider_variant_names_the_reduced_precision_explicitly(perf_goals):
    assert perf_goals.provider_options("openvino") == ("openvino", ())
    assert perf_goals.provider_options("openvino+bf16") == (
        "openvino",
        (("INFERENCE_PRECISION_HINT", "bf16"),),
    )
    assert perf_goals.provider_options("cpu") == ("cpu", ())


def test_30_fps_goal_takes_the_fastest_light_model_and_the_fastest_provider(perf_goals):
    frame = {
        ("dg4-light", BIG, "int8", "cpu"): 45.0,
        ("dg4s-light", BIG, "int8", "cpu"): 40.0,
        ("dg4-light", BIG, "int8", "openvino"): 31.0,
        ("erfnet", BIG, "int8", "openvino"): 20.0,  # not a light model: never the 30 fps case
    }
    rows = perf_goals.provider_goals({}, frame, BIG, ["cpu", "openvino"])
    v = _verdicts(rows)
    assert v[f"6 30 fps frame | dg4s-light int8 {BIG} on cpu (ms)"] == "FAIL"
    assert v[f"6 30 fps frame | dg4-light int8 {BIG} on openvino (ms)"] == "PASS"
    assert v["6 30 fps frame | fastest provider: openvino (ms)"] == "PASS"


def test_light_vs_erfnet_is_judged_per_precision_and_provider(perf_goals):
    inference = {
        ("erfnet", BIG, "fp32", "cpu"): 200.0,
        ("dg4-light", BIG, "fp32", "cpu"): 40.0,  # 5x
        ("erfnet", BIG, "int8", "cpu"): 70.0,
        ("dg4-light", BIG, "int8", "cpu"): 35.0,  # 2x
    }
    v = _verdicts(perf_goals.provider_goals(inference, {}, BIG, ["cpu", "openvino"]))
    assert v["7 vs ERFNet, same precision | fp32 on cpu"] == "PASS"
    assert v["7 vs ERFNet, same precision | int8 on cpu"] == "FAIL"
    assert v["7 vs ERFNet, same precision | int8 on openvino"] == "-"  # not measured


def test_fastest_accurate_skips_fast_models_below_the_accuracy_margin(perf_goals):
    frame = {
        ("dg8-light", BIG, "int8", "cpu"): 20.0,  # fastest, but random weights: no mIoU
        ("dg4-light", BIG, "int8", "cpu"): 30.0,  # 0.30: more than 2 points below d-light
        ("d-light", BIG, "int8", "cpu"): 35.0,
        ("erfnet", BIG, "int8", "cpu"): 60.0,
    }
    miou = {
        ("dg4-light", "int8", "cpu"): 0.30,
        ("d-light", "int8", "cpu"): 0.36,
        ("erfnet", "int8", "cpu"): 0.39,  # the baseline does not set the bar
    }
    rows = perf_goals.fastest_accurate(frame, miou, BIG, ["cpu"], margin=0.02)
    assert rows == [["cpu", "d-light int8: 35.0 ms, 36.0 %", "dg8-light int8: 20.0 ms"]]


def test_peak_estimate_orders_precisions_on_this_cpu(perf_goals):
    peaks = perf_goals.cpu_peak_gmacs()
    if not peaks or not all(peaks.values()):
        pytest.skip("no /proc/cpuinfo clock here")
    assert peaks["int8"] >= peaks["fp32"] > 0
    assert peaks["bf16"] >= peaks["fp32"]
