"""What bench hands to others: CSV, JSON on stdout, the CI budget gate, TIDL's own counters."""

import csv
import json
import logging
import os

import pytest

from gradgroup.cli import main
from gradgroup.deploy import bench
from gradgroup.deploy.bench_report import CSV_COLUMNS, ESTIMATE_CSV_COLUMNS
from gradgroup.deploy.runtime import Segmenter

FAST = ["--runs", "3", "--warmup", "0", "--threads", "1", "--no-progress"]


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_and_json_on_stdout(tiny_onnx, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    table = tmp_path / "b.csv"
    rc = main(["bench", str(tiny_onnx), *FAST, "--csv", str(table), "--json"])
    assert rc == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout is the JSON report and nothing else
    assert "bench done: 1 model(s)" in caplog.text  # logged (stderr), not on stdout
    (row,) = read_csv(table)
    assert tuple(row) == CSV_COLUMNS
    measured = report["rows"][0]
    assert row["name"] == "tiny" and row["precision"] == "fp32" and row["frames"] == "3"
    assert row["frame_size"] == row["model_size"] == "32x64"
    assert float(row["p99_ms"]) == pytest.approx(measured["inference"]["p99"], abs=1e-4)
    assert float(row["frame_p50_ms"]) == pytest.approx(measured["frame"]["p50"], abs=1e-4)
    assert int(row["params"]) == measured["params"]
    assert float(row["gmacs"]) == pytest.approx(measured["macs"] / 1e9, abs=1e-4)
    assert float(row["energy_total_mj"]) > 0 and row["meets_budget"] in ("true", "false")
    assert row["num_subgraphs"] == row["infer_time_core_ms"] == row["miou"] == ""  # not TIDL


def test_fail_over_budget_is_exit_3_naming_the_models(tiny_onnx, tmp_path, capsys):
    impossible = ["bench", str(tiny_onnx), *FAST, "--fps-target", "1e6"]  # 1 µs per frame
    assert main(impossible) == 0  # a missed budget is a result...
    capsys.readouterr()
    table = tmp_path / "b.csv"
    assert main([*impossible, "--fail-over-budget", "--csv", str(table)]) == 3  # ...or a gate
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gradgroup: error: 1 of 1 model(s) over the")
    assert "tiny" in err[0] and "whole-frame p99" in err[0]
    assert read_csv(table)[0]["meets_budget"] == "false"  # the outputs are still written
    assert main(["bench", str(tiny_onnx), *FAST, "--fps-target", "0.01", "--fail-over-budget"]) == 0


def test_estimate_only_csv_and_gate(tiny_onnx, tmp_path, capsys):
    table = tmp_path / "e.csv"
    argv = ["bench", str(tiny_onnx), "--estimate", "tda4vm,am62a", "--csv", str(table)]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = read_csv(table)
    assert tuple(rows[0]) == ESTIMATE_CSV_COLUMNS
    assert [r["soc"] for r in rows] == ["tda4vm", "am62a"]
    assert float(rows[0]["est_ms"]) == pytest.approx(data["estimates"][0]["ms"], abs=1e-4)
    assert main([*argv, "--fps-target", "1e6", "--fail-over-budget"]) == 3
    assert "tiny on tda4vm" in capsys.readouterr().err


class FakeTidl(Segmenter):
    """A CPU session that answers get_TI_benchmark_data() like TI's runtime on the board."""

    perfstats_at_init: list = []

    def __init__(self, path, provider="cpu", **kwargs):
        FakeTidl.perfstats_at_init.append(os.environ.get("TIDL_RT_PERFSTATS"))
        kwargs.pop("artifacts", None)
        kwargs.pop("tidl_options", None)
        super().__init__(path, "cpu", **kwargs)
        self.runs = 0

    def ti_benchmark(self):
        self.runs += 1
        ms = 1_000_000
        return {"ts:run_start": 0, "ts:run_end": 9 * ms,
                "ts:subgraph_subgraph_0_proc_start": 1 * ms,
                "ts:subgraph_subgraph_0_proc_end": 5 * ms,
                "ts:subgraph_subgraph_1_proc_start": 6 * ms,
                "ts:subgraph_subgraph_1_proc_end": 8 * ms,
                "ddr:read_start": 0, "ddr:read_end": 3_000_000,
                "ddr:write_start": 0, "ddr:write_end": 1_000_000}  # fmt: skip


def test_tidl_counters_reach_the_report_and_csv(tiny_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TIDL_RT_PERFSTATS", raising=False)
    monkeypatch.setattr(bench, "Segmenter", FakeTidl)
    FakeTidl.perfstats_at_init.clear()
    table, report = tmp_path / "t.csv", tmp_path / "t.json"
    argv = ["bench", str(tiny_onnx), *FAST, "--provider", "tidl", "--artifacts", str(tmp_path)]
    assert main([*argv, "--csv", str(table), "--json-out", str(report)]) == 0
    assert FakeTidl.perfstats_at_init == ["1"]  # set before the session was created
    printed = capsys.readouterr().out
    assert "tiny: TIDL 2 subgraph(s), core 9.00 ms (subgraphs: subgraph_0 4.00" in printed
    (row,) = read_csv(table)
    assert row["num_subgraphs"] == "2" and float(row["infer_time_core_ms"]) == 9.0
    assert float(row["infer_time_subgraph_ms"]) == 6.0 and float(row["ddr_transfer_mb"]) == 4.0
    assert row["subgraph_ms"] == "subgraph_0=4.0;subgraph_1=2.0"
    tidl = json.loads(report.read_text())["rows"][0]["tidl"]
    assert tidl["runs"] == 3 and tidl["subgraph_ms"] == {"subgraph_0": 4.0, "subgraph_1": 2.0}
