"""Energy model arithmetic (exact hand-made cases), real graphs, RAPL and TIDL counters."""

import pytest
from onnx_fixtures import int8_model

from gradgroup.deploy.energy import (
    MAC_PJ,
    RaplMeter,
    dram_mj_from_bytes,
    estimate_energy,
    ti_ddr_bytes,
)
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.graph.stats import GraphStats, TensorUse, graph_stats

MB = 1_000_000


def stats(weight_bytes=2 * MB, peak=3 * MB, macs=None):
    macs = macs or {"fp32": 10**9, "int8": 2 * 10**9}
    tensors = (
        TensorUse("w", weight_bytes, "weight"),
        TensorUse("x", MB, "input", MB),
        TensorUse("small", MB, "activation", 2 * MB),
        TensorUse("big", 2 * MB, "activation", peak),
        TensorUse("y", MB // 2, "output", MB),
    )
    return GraphStats(params=0, macs=sum(macs.values()), macs_by_type={}, macs_by_precision=macs,
                      precision="int8", file_bytes=0, weight_bytes=weight_bytes,
                      peak_activation_bytes=peak + MB, peak_intermediate_bytes=peak,
                      tensors=tensors)  # fmt: skip


def words_mj(nbytes, pj):
    return nbytes / 4 * pj * 1e-9


def test_compute_energy_by_precision():
    e = estimate_energy(stats(), fps=30)
    assert MAC_PJ == {"fp32": 3.7 + 0.9, "int8": 0.2 + 0.03}
    assert e.compute_mj == pytest.approx(10**9 * 4.6e-9 + 2 * 10**9 * 0.23e-9)
    assert e.watts == pytest.approx(e.total_mj * 30 / 1000)
    assert e.total_mj == pytest.approx(e.compute_mj + e.sram_mj + e.dram_mj)
    assert e.label == "estimate"


def test_everything_fits_a_large_sram():
    e = estimate_energy(stats(), sram_mb=8)  # weights 2 MB + peak 3 MB <= 8 MB: resident
    assert e.weights_resident
    # SRAM: weights read once, each activation written and read once; DRAM: input + output.
    assert e.sram_mj == pytest.approx(words_mj(2 * MB + 2 * (MB + 2 * MB), 5))
    assert e.dram_mj == pytest.approx(words_mj(MB + MB // 2, 640))
    assert e.dram_bytes == MB + MB // 2


def test_tight_sram_sends_weights_and_big_activations_to_dram():
    e = estimate_energy(stats(), sram_mb=2.5)  # 2 + 3 > 2.5: weights stream from DRAM
    assert not e.weights_resident
    # Budget for activations 2.5 MB: "small" (live 2 MB) fits, "big" (live 3 MB) does not.
    assert e.sram_mj == pytest.approx(words_mj(2 * MB, 5))
    assert e.dram_bytes == 2 * MB + 2 * 2 * MB + MB + MB // 2
    assert e.dram_mj == pytest.approx(words_mj(e.dram_bytes, 640))
    zero = estimate_energy(stats(), sram_mb=0)
    assert zero.sram_mj == 0 and zero.dram_mj > e.dram_mj


def test_bad_settings():
    with pytest.raises(InputError, match="fps"):
        estimate_energy(stats(), fps=0)
    with pytest.raises(InputError, match="SRAM"):
        estimate_energy(stats(), sram_mb=-1)


def test_real_graph_fp32_vs_int8(tiny_onnx, tmp_path):

    fp32 = estimate_energy(graph_stats(tiny_onnx))
    int8 = estimate_energy(graph_stats(int8_model(tiny_onnx, tmp_path / "q.onnx")))
    assert int8.compute_mj == pytest.approx(fp32.compute_mj * 0.23 / 4.6)
    assert fp32.weights_resident and fp32.dram_bytes > 0  # input and logits cross DRAM
    assert fp32.total_mj > 0 and fp32.sram_mj > 0


def _fake_rapl(tmp_path, value, max_range=None):
    (tmp_path / "energy_uj").write_text(f"{value}\n")
    if max_range is not None:
        (tmp_path / "max_energy_range_uj").write_text(f"{max_range}\n")


def test_rapl_meter_reads_fake_sysfs(tmp_path):
    meter = RaplMeter(tmp_path)
    assert not meter.available
    _fake_rapl(tmp_path, 1_000_000, 10_000_000)
    assert meter.available
    meter.start()
    _fake_rapl(tmp_path, 3_500_000)
    assert meter.stop() == pytest.approx(2.5)
    _fake_rapl(tmp_path, 9_000_000)
    meter.start()
    _fake_rapl(tmp_path, 500_000)  # wrapped at 10 J
    assert meter.stop() == pytest.approx(1.5)


def test_ti_ddr_counters():
    run = {"ddr:read_start": 100, "ddr:read_end": 4100, "ddr:write_start": 0, "ddr:write_end": 96,
           "ts:run_start": 0, "ts:run_end": 10}  # fmt: skip
    assert ti_ddr_bytes(run) == 4096
    assert ti_ddr_bytes({"ts:run_start": 0}) == 0
    assert dram_mj_from_bytes(4 * MB) == pytest.approx(MB * 640e-9)
