"""The pipeline's report: one table per model size, the trade-off plot, every artifact's path."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gradgroup import __version__
from gradgroup.config import HELD_OUT, PipelineConfig
from gradgroup.deploy.fileio import to_json, write_text_atomic
from gradgroup.deploy.table import format_markdown
from gradgroup.results import ReportFiles, Results

HEADER = [
    "model", "precision", "mIoU %", "int8 drop", "agreement %", "params", "GMACs", "p50 ms",
    "p99 ms", "FPS", "meets {fps:g} fps", "energy mJ/frame (est.)",
]  # fmt: skip


def _pct(value: float | None) -> str:
    """A fraction (mIoU, agreement, drop) printed in percent or points."""
    return "—" if value is None else f"{100 * value:.1f}"


def model_rows(cfg: PipelineConfig, results: Results, table: str) -> list[dict[str, Any]]:
    """One dict per benchmarked model: accuracy from training/calibration, speed from the bench."""
    rows = []
    for bench in results.bench.tables[table].rows:
        run = results.train.runs[bench.model]
        acc = results.calib.models[bench.model].accuracy
        if bench.precision == "fp32":  # the exported model on the held-out scenes; else training's
            miou = acc.fp32_miou if acc is not None else run.miou
            drop = None
        else:
            miou, drop = (acc.int8_miou, acc.drop) if acc is not None else (None, None)
        # Parameters and MACs of the architecture (PyTorch's count, the paper's convention): the
        # int8 graph may execute more (calib lowers few-group 1x1 convs to dense ones for speed).
        exp = results.export.models[bench.model]
        arch_counts = {
            "params": exp.params,
            "macs": exp.deploy_macs if table == "deploy" else exp.macs,
            "graph_macs": bench.macs,
        }
        agreement = acc.agreement if acc is not None and bench.precision != "fp32" else None
        row = {**bench.to_dict(), **arch_counts, "miou": miou, "int8_drop": drop}
        rows.append({**row, "agreement": agreement, "schedule": run.schedule})
    return rows


def _markdown_table(rows: list[dict[str, Any]], fps: float) -> str:
    header = [h.format(fps=fps) for h in HEADER]
    body = [
        [
            f"{r['model']} ({r['schedule']})", r["precision"], _pct(r["miou"]),
            _pct(r["int8_drop"]), _pct(r.get("agreement")), f"{r['params']:,}",
            f"{r['macs'] / 1e9:.2f}",
            f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['fps']:.1f}",
            "yes" if r["meets_budget"] else "no", f"{r['energy_mj']:.2f}",
        ]
        for r in rows
    ]  # fmt: skip
    return format_markdown(header, body)


def _soc_estimates(rows: list[dict[str, Any]], fps: float) -> list[str]:
    """A TDA4VM estimate section for the deployment-size graphs (each row gains the estimate)."""
    from gradgroup.deploy.errors import GradgroupError
    from gradgroup.deploy.estimate import estimate
    from gradgroup.deploy.estimate_report import caption

    body = []
    for r in rows:
        try:
            e = estimate(r["path"], "tda4vm")
        except GradgroupError as exc:  # an estimate is a bonus: the report stands without it
            body.append([r["model"], r["precision"], "—", "—", "—", "—", str(exc)])
            continue
        r["tda4vm_estimate"] = e.to_dict()
        body.append([r["model"], r["precision"], f"{e.ms:.1f}", f"{e.low_ms:.1f}-{e.high_ms:.1f}",
                     f"{e.fps:.1f}", e.meets(fps), str(e.arm_layers)])  # fmt: skip
    header = ["model", "precision", "est. ms", "band ms", "est. fps", f"meets {fps:g} fps",
              "Arm fallback layers"]  # fmt: skip
    return [
        "## TDA4VM estimate (offline, no board)",
        "",
        caption(fps) + ". These are the ORT-form graphs above: layers TIDL does not accelerate "
        "(factorized 3x1/1x3 depthwise convs) are charged at the Arm rate; `gradgroup export "
        "--target tidl` rewrites them into TIDL's forms (`gradgroup bench M --estimate tda4vm`).",
        "",
        format_markdown(header, body),
        "",
    ]


def _artifacts(out: Path, results: Results) -> dict[str, str]:
    paths: dict[str, str] = {}
    for arch, run in results.train.runs.items():
        exp, cal = results.export.models[arch], results.calib.models[arch]
        paths[f"{arch} checkpoint"] = run.checkpoint
        paths[f"{arch} training curves"] = str(Path(run.checkpoint).parent / "curves.png")
        paths[f"{arch} ONNX (ORT form)"] = exp.onnx
        legal = f"{exp.tidl_unsupported} unsupported, {exp.tidl_unverified} unverified"
        paths[f"{arch} ONNX (TIDL target: {legal})"] = exp.tidl_onnx
        paths[f"{arch} int8 ONNX"] = cal.int8_onnx
        paths[f"{arch} int8 report"] = cal.report
        paths[f"{arch} calibration set"] = exp.calib_set
        paths[f"{arch} ONNX at deployment size"] = exp.deploy_onnx
        paths[f"{arch} int8 ONNX at deployment size"] = cal.deploy_int8_onnx
    paths["benchmark"] = results.bench.tables["model"].markdown
    paths["benchmark at deployment size"] = results.bench.tables["deploy"].markdown
    paths["demo video"] = results.demo.out
    return {k: os.path.relpath(v, out) for k, v in paths.items()}


def build_report(cfg: PipelineConfig, out: Path, results: Results) -> ReportFiles:
    """Write ``report.md`` and ``report.json``; return their paths and the rows."""
    rows = model_rows(cfg, results, "model")
    deploy_rows = model_rows(cfg, results, "deploy")
    system = results.bench.system
    runs = results.train.runs
    plot = results.bench.tables["model"].plot
    artifacts = _artifacts(out, results)
    lines = [
        "# gradgroup pipeline report",
        "",
        f"gradgroup {__version__} · {system.cpu} · {system.threads} ONNX Runtime threads "
        f"({system.onnxruntime}) · Python {platform.python_version()}",
        f"Data: {cfg.data} · model size {cfg.size[0]}x{cfg.size[1]} · training budget "
        f"{cfg.budget_min:g} min per model · int8 max drop {100 * cfg.max_drop:g} mIoU points",
        "",
        "## Training",
        "",
        format_markdown(
            [
                "model",
                "schedule",
                "start",
                "iterations",
                "planned s/it",
                "minutes",
                "final alpha",
                "best mIoU %",
            ],
            [
                [
                    a,
                    r.schedule,
                    r.init or "random",
                    r.iterations,
                    f"{r.seconds_per_iteration:.2f}",
                    f"{r.seconds / 60:.1f}",
                    f"{r.alpha:g}",
                    _pct(r.miou),
                ]
                for a, r in runs.items()
            ],
        ),  # fmt: skip
        "",
        f"## Models at {cfg.size[0]}x{cfg.size[1]} (the trained size)",
        "",
        f"mIoU of the exported fp32 and int8 models on {HELD_OUT} held-out validation scenes; "
        "agreement: pixels where int8 and fp32 pick the same class.",
        "",
        _markdown_table(rows, cfg.fps_target),
        "",
        f"## Latency at the deployment size {cfg.deploy_size[0]}x{cfg.deploy_size[1]}",
        "",
        "Same weights exported at the camera size as class-map models (uint8 frame in, class ids "
        "out: normalization and argmax inside the graph); accuracy columns refer to the trained "
        "size.",
        "",
        _markdown_table(deploy_rows, cfg.fps_target),
        "",
        "Latency is ONNX Runtime inference on this machine; only ratios carry over to other "
        "machines. Energy is the analytical estimate (paper's table, 8 MB on-chip SRAM).",
        "",
        *_soc_estimates(deploy_rows, cfg.fps_target),
    ]
    if plot:
        lines += ["## Trade-off", "", f"![latency and accuracy]({os.path.relpath(plot, out)})", ""]
    lines += ["## Artifacts", "", format_markdown(["what", "path"], list(artifacts.items())), ""]
    md_path, json_path = out / "report.md", out / "report.json"
    report = {
        "config": json.loads(to_json(cfg.__dict__, default=list)),
        "system": asdict(system),
        "training": {arch: r.to_dict() for arch, r in runs.items()},
        "models": rows,
        "deploy_models": deploy_rows,
        "demo": {k: getattr(results.demo, k) for k in ("frames", "fps", "budget_misses", "out")},
        "artifacts": artifacts,
    }
    write_text_atomic(md_path, "\n".join(lines) + "\n")
    write_text_atomic(json_path, to_json(report, indent=2) + "\n")
    return ReportFiles(report_md=str(md_path), report_json=str(json_path), rows=rows)
