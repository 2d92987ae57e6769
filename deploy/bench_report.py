"""Benchmark reports: side-by-side tables (text / markdown) and JSON, ratios against the baseline.

Absolute milliseconds belong to one machine; the ratio columns (``x base``, the first model = 1.00)
are what compare across machines.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .bench import BenchConfig, BenchRow, SystemInfo
from .fileio import to_json, write_text_atomic
from .table import format_markdown, format_table

LATENCY_HEADER = (
    "model", "prec", "GMACs", "params", "infer p50", "infer p99", "frame p50", "frame p99",
    "± std", "FPS", ">budget infer/frame", "p99 infer/frame", "infer x base", "frame x base",
)  # fmt: skip
ENERGY_HEADER = (
    "model", "file MB", "peak act MB", "compute mJ", "SRAM mJ", "DRAM mJ", "total mJ",
    "W @fps", "measured mJ", "energy x base", "MACs x base", "mIoU",
)  # fmt: skip
STAGE_HEADER = ("model", "frame HxW", "preprocess ms", "inference ms", "postprocess ms", "frames")
# ``--csv``: one row per model. edgeai-benchmark's names where it has the figure (TIDL's counters:
# num_subgraphs, infer_time_core_ms, infer_time_subgraph_ms, ddr_transfer_mb; empty off TIDL);
# p50_ms.. are inference alone, frame_* the whole frame; energy_* and power_w are the analytical
# estimate, rapl_mj the measured package energy; miou is a fraction.
CSV_COLUMNS = (
    "model", "name", "precision", "provider", "threads", "model_size", "frame_size", "frames",
    "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "fps", "frame_p50_ms", "frame_p90_ms",
    "frame_p99_ms", "frame_mean_ms", "frame_fps", "budget_ms", "meets_budget", "preprocess_ms",
    "postprocess_ms", "gmacs", "params", "file_mb", "peak_activation_mb", "miou",
    "energy_compute_mj", "energy_sram_mj", "energy_dram_mj", "energy_total_mj", "power_w",
    "rapl_mj", "num_subgraphs", "infer_time_core_ms", "infer_time_subgraph_ms", "ddr_transfer_mb",
    "subgraph_ms",
)  # fmt: skip
ESTIMATE_CSV_COLUMNS = (
    "model", "name", "soc", "tensor_bits", "est_ms", "est_low_ms", "est_high_ms", "est_fps",
    "meets_budget", "est_ddr_mb", "layers", "arm_layers", "est_subgraphs",
)  # fmt: skip


def _ratio(value: float, base: float) -> str:
    ratio = value / base if base else None
    return "-" if ratio is None else f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


def _verdict(passed: bool) -> str:
    return "pass" if passed else "FAIL"


def latency_rows(rows: list[BenchRow]) -> list[list[str]]:
    """Latency table cells (ms), ratios against the first row."""
    base = rows[0]
    out = []
    for r in rows:
        out.append([
            r.name, r.precision, f"{r.macs / 1e9:.3f}", f"{r.params:,}",
            f"{r.inference.p50:.2f}", f"{r.inference.p99:.2f}",
            f"{r.frame.p50:.2f}", f"{r.frame.p99:.2f}", f"{r.frame.std:.2f}",
            f"{r.frame.fps:.1f}",
            f"{100 * r.inference.over_budget:.0f}% / {100 * r.frame.over_budget:.0f}%",
            f"{_verdict(r.inference.passed)} / {_verdict(r.frame.passed)}",
            _ratio(r.inference.p50, base.inference.p50), _ratio(r.frame.p50, base.frame.p50),
        ])  # fmt: skip
    return out


def energy_rows(rows: list[BenchRow]) -> list[list[str]]:
    """Model-facts and energy cells (estimates unless the column says measured)."""
    base = rows[0]
    out = []
    for r in rows:
        e = r.energy
        measured = r.measured.get("rapl_package_mj_per_frame")
        out.append([
            r.name, f"{r.file_bytes / 1e6:.2f}", f"{r.peak_activation_bytes / 1e6:.2f}",
            f"{e.compute_mj:.3f}", f"{e.sram_mj:.3f}", f"{e.dram_mj:.3f}", f"{e.total_mj:.3f}",
            f"{e.watts:.3f}", f"{measured:.1f}" if measured is not None else "-",
            _ratio(e.total_mj, base.energy.total_mj), _ratio(r.macs, base.macs),
            f"{r.miou:.3f}" if r.miou is not None else "-",
        ])  # fmt: skip
    return out


def stage_rows(rows: list[BenchRow]) -> list[list[str]]:
    """Mean time per stage of the whole frame."""
    return [
        [r.name, f"{r.frame_size[0]}x{r.frame_size[1]}", *(f"{r.stages_ms[k]:.2f}"
         for k in ("preprocess", "inference", "postprocess")), str(r.frames)]
        for r in rows
    ]  # fmt: skip


def header_lines(info: SystemInfo) -> list[str]:
    """Machine and budget lines printed above the tables."""
    engine = info.engine or f"onnxruntime {info.onnxruntime}"
    return [
        f"threads {info.threads} · provider {info.provider} ({engine}) · CPU {info.cpu} · "
        f"{info.platform}",
        f"budget {info.budget_ms:.1f} ms/frame ({info.fps_target:g} fps); pass = p99 within budget "
        "(inference alone / whole frame = preprocess + inference + postprocess)",
        "energy columns are estimates (gradgroup.deploy.energy) except 'measured' "
        "(RAPL package energy)",
    ]


def provider_lines(rows: list[BenchRow]) -> list[str]:
    """The providers each session really used, where they are not the CPU provider alone."""
    return [
        f"{r.name}: session providers {', '.join(r.providers)}"
        for r in rows
        if r.providers != ["CPUExecutionProvider"]
    ]


def format_report(rows: list[BenchRow], info: SystemInfo) -> str:
    """The plain-text report the CLI prints."""
    parts = header_lines(info)
    parts += ["", "latency (ms)", format_table(LATENCY_HEADER, latency_rows(rows))]
    parts += ["", "stages (mean ms)", format_table(STAGE_HEADER, stage_rows(rows))]
    parts += [
        "",
        "model facts and energy per frame",
        format_table(ENERGY_HEADER, energy_rows(rows)),
    ]
    parts += provider_lines(rows)
    ti = [r for r in rows if "ti_ddr_mb_per_frame" in r.measured]
    for r in ti:
        parts.append(
            f"{r.name}: TIDL DDR {r.measured['ti_ddr_mb_per_frame']:.2f} MB/frame -> "
            f"{r.measured['ti_dram_mj_per_frame']:.3f} mJ DRAM (measured bytes)"
        )
    parts += tidl_lines(rows)
    return "\n".join(parts)


def tidl_lines(rows: list[BenchRow]) -> list[str]:
    """TIDL's own counters per model: subgraphs, core time and each subgraph's processing."""
    lines = []
    for r in rows:
        t = r.tidl
        if not t:
            continue
        core = t.get("infer_time_core_ms")
        each = ", ".join(f"{name} {ms:.2f}" for name, ms in (t.get("subgraph_ms") or {}).items())
        lines.append(
            f"{r.name}: TIDL {t['num_subgraphs']} subgraph(s), core "
            + (f"{core:.2f} ms" if core is not None else "-")
            + (f" (subgraphs: {each} ms)" if each else " (no per-subgraph times: "
               "TIDL_RT_PERFSTATS=1 was not in effect)")
        )  # fmt: skip
    return lines


def _cell(value: Any, digits: int = 4) -> str:
    """A CSV cell: empty for None, true/false, floats rounded."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(round(value, digits)) if abs(value) < 1e15 else ""  # inf, nan: empty
    return str(value)


def csv_row(r: BenchRow, info: SystemInfo) -> dict[str, str]:
    """One model's CSV cells (see :data:`CSV_COLUMNS`)."""
    inf, fr, e, t = r.inference, r.frame, r.energy, r.tidl or {}
    values: dict[str, Any] = {
        "model": r.model, "name": r.name, "precision": r.precision, "provider": info.provider,
        "threads": info.threads, "model_size": "x".join(map(str, r.model_size)),
        "frame_size": "x".join(map(str, r.frame_size)), "frames": r.frames,
        "p50_ms": inf.p50, "p90_ms": inf.p90, "p99_ms": inf.p99, "mean_ms": inf.mean,
        "std_ms": inf.std, "fps": inf.fps, "frame_p50_ms": fr.p50, "frame_p90_ms": fr.p90,
        "frame_p99_ms": fr.p99, "frame_mean_ms": fr.mean, "frame_fps": fr.fps,
        "budget_ms": info.budget_ms, "meets_budget": fr.passed,
        "preprocess_ms": r.stages_ms.get("preprocess"),
        "postprocess_ms": r.stages_ms.get("postprocess"), "gmacs": r.macs / 1e9,
        "params": r.params, "file_mb": r.file_bytes / 1e6,
        "peak_activation_mb": r.peak_activation_bytes / 1e6, "miou": r.miou,
        "energy_compute_mj": e.compute_mj, "energy_sram_mj": e.sram_mj,
        "energy_dram_mj": e.dram_mj, "energy_total_mj": e.total_mj, "power_w": e.watts,
        "rapl_mj": r.measured.get("rapl_package_mj_per_frame"),
        "num_subgraphs": t.get("num_subgraphs"), "infer_time_core_ms": t.get("infer_time_core_ms"),
        "infer_time_subgraph_ms": t.get("infer_time_subgraph_ms"),
        "ddr_transfer_mb": t.get("ddr_transfer_mb"),
        "subgraph_ms": ";".join(f"{k}={_cell(v)}" for k, v in (t.get("subgraph_ms") or {}).items()),
    }  # fmt: skip
    return {k: _cell(values[k]) for k in CSV_COLUMNS}


def format_csv(columns: tuple[str, ...], rows: list[dict[str, str]]) -> str:
    """Rows of cells as CSV text (header first, ``\\n`` line ends)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(path: str | Path, rows: list[BenchRow], info: SystemInfo) -> Path:
    """Write the benchmark as CSV (one row per model), atomically."""
    return write_text(path, format_csv(CSV_COLUMNS, [csv_row(r, info) for r in rows]))


def estimate_csv_row(row: Any, fps_target: float) -> dict[str, str]:
    """One model x SoC estimate's CSV cells (see :data:`ESTIMATE_CSV_COLUMNS`)."""
    e = row.estimate
    values = {
        "model": row.model, "name": row.name, "soc": e.soc, "tensor_bits": e.bits,
        "est_ms": e.ms, "est_low_ms": e.low_ms, "est_high_ms": e.high_ms, "est_fps": e.fps,
        "meets_budget": e.meets(fps_target), "est_ddr_mb": e.ddr_mb, "layers": e.layers,
        "arm_layers": e.arm_layers, "est_subgraphs": e.subgraphs,
    }  # fmt: skip
    return {k: _cell(values[k]) for k in ESTIMATE_CSV_COLUMNS}


def format_markdown_report(rows: list[BenchRow], info: SystemInfo) -> str:
    """The same report as GitHub markdown."""
    parts = [f"_{line}_\n" for line in header_lines(info)]
    parts += ["**latency (ms)**\n", format_markdown(LATENCY_HEADER, latency_rows(rows)), ""]
    parts += ["**stages (mean ms)**\n", format_markdown(STAGE_HEADER, stage_rows(rows)), ""]
    parts += ["**model facts and energy per frame**\n"]
    parts += [format_markdown(ENERGY_HEADER, energy_rows(rows)), ""]
    return "\n".join(parts)


def report_dict(rows: list[BenchRow], info: SystemInfo, cfg: BenchConfig) -> dict[str, Any]:
    """JSON-ready report: system, config, rows (with raw samples) and ratios to the baseline."""
    base = rows[0]
    out_rows = []
    for r in rows:
        d = asdict(r)
        d["energy"]["label"] = "estimate"
        d["measured_label"] = "measured"
        d["ratios"] = {
            "inference_p50": r.inference.p50 / base.inference.p50,
            "frame_p50": r.frame.p50 / base.frame.p50,
            "energy": r.energy.total_mj / base.energy.total_mj if base.energy.total_mj else None,
            "macs": r.macs / base.macs if base.macs else None,
        }
        out_rows.append(d)
    return {"system": asdict(info), "config": asdict(cfg), "baseline": base.name, "rows": out_rows}


def write_text(path: str | Path, text: str) -> Path:
    """Write a file atomically (temp file + rename), so a failure leaves nothing behind."""
    return write_text_atomic(path, text)


def write_json(path: str | Path, rows: list[BenchRow], info: SystemInfo, cfg: BenchConfig,
               extra: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """Write :func:`report_dict` (plus ``extra`` top-level keys, e.g. estimates) as JSON."""
    return write_text(path, to_json({**report_dict(rows, info, cfg), **(extra or {})}, indent=2)
                      + "\n")  # fmt: skip
