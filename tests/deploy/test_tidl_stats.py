"""TIDL's get_TI_benchmark_data() read defensively, as edgeai-benchmark reads it (fake dicts)."""

import pytest

from gradgroup.deploy.tidl_stats import parse_ti_benchmark, summarize

MS = 1_000_000  # TI's timestamps are nanoseconds


def ti_dict(subgraphs: dict[str, tuple[int, int, int]], run_ms: int = 10, ddr=(1000, 500)):
    """A fake counter dict: subgraph name -> (copy in, proc, copy out) in ms, one after another."""
    stats = {"ts:run_start": 5 * MS, "ts:run_end": (5 + run_ms) * MS,
             "ddr:read_start": 100, "ddr:read_end": 100 + ddr[0],
             "ddr:write_start": 7, "ddr:write_end": 7 + ddr[1]}  # fmt: skip
    t = 5 * MS
    for name, (cin, proc, cout) in subgraphs.items():
        for part, ms in (("copy_in", cin), ("proc", proc), ("copy_out", cout)):
            stats[f"ts:subgraph_{name}_{part}_start"] = t
            t += ms * MS
            stats[f"ts:subgraph_{name}_{part}_end"] = t
    return stats


def test_one_subgraph_core_time_excludes_the_copies():
    run = parse_ti_benchmark(ti_dict({"subgraph_0": (1, 6, 2)}))
    assert run.total_ms == 10.0 and run.core_ms == 7.0  # 10 - (1 + 2), as TI computes it
    assert run.subgraph_ms == {"subgraph_0": 6.0} and run.ddr_bytes == 1500


def test_several_subgraphs_names_with_underscores_and_no_copy_subtraction():
    run = parse_ti_benchmark(ti_dict({"subgraph_0": (1, 3, 1), "tidl_12_out": (0, 2, 0)}))
    assert run.subgraph_ms == {"subgraph_0": 3.0, "tidl_12_out": 2.0}
    assert run.core_ms == run.total_ms == 10.0  # TI subtracts copies for one subgraph only


@pytest.mark.parametrize(
    "broken",
    [
        {"ts:subgraph_a_proc_start": "x", "ts:subgraph_a_proc_end": 5},  # not a number
        {"ts:subgraph_a_proc_start": 9, "ts:subgraph_a_proc_end": 5},  # backwards
        {"ts:subgraph_a_proc_start": 1},  # no end
        {"ts:run_start": None, "unrelated": 3},
    ],
)
def test_malformed_counters_are_left_out_not_guessed(broken):
    assert parse_ti_benchmark(broken) is None
    good = {**ti_dict({"subgraph_0": (0, 4, 0)}), **broken}
    run = parse_ti_benchmark(good)
    assert run.subgraph_ms == {"subgraph_0": 4.0}
    assert parse_ti_benchmark(None) is None and parse_ti_benchmark([1, 2]) is None


def test_summary_uses_edgeai_benchmark_names_and_means():
    runs = [parse_ti_benchmark(ti_dict({"s0": (1, p, 1)}, run_ms=r, ddr=(2_000_000, 0)))
            for p, r in ((4, 8), (6, 10))]  # fmt: skip
    summary = summarize(runs)
    assert summary["num_subgraphs"] == 1 and summary["runs"] == 2
    assert summary["infer_time_core_ms"] == pytest.approx(7.0)  # mean of 6 and 8
    assert summary["infer_time_subgraph_ms"] == pytest.approx(5.0)
    assert summary["subgraph_ms"] == {"s0": pytest.approx(5.0)}
    assert summary["ddr_transfer_mb"] == pytest.approx(2.0)
    no_ddr = summarize([parse_ti_benchmark(ti_dict({"s0": (0, 1, 0)}, ddr=(0, 0)))])
    assert no_ddr["ddr_transfer_mb"] == 0.0  # PC emulation: the counters do not move
    assert summarize([]) is None
