"""Benchmark charts (PNG): latency distributions and the accuracy–GMACs–latency trade-off.

matplotlib is optional (``pip install 'gradgroup[plot]'``); :func:`require_matplotlib` says so in
one line before any work is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .bench import BenchRow, SystemInfo
from .errors import MissingDependencyError
from .fileio import atomic_path


def require_matplotlib() -> Any:
    """Import matplotlib with the file-only Agg backend, or raise MissingDependencyError."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError(
            "--plot needs matplotlib, which is not installed (pip install 'gradgroup[plot]')"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bench(rows: list[BenchRow], info: SystemInfo, path: str | Path) -> Path:
    """Write a PNG: per-model latency box plots (inference and whole frame) with the budget line,
    and, when any model's mIoU is known, mIoU against GMACs with marker area = frame latency
    (the layout of the paper's accuracy/complexity figure).

    Raises:
        MissingDependencyError: matplotlib is absent.
    """
    plt = require_matplotlib()
    with_acc = [r for r in rows if r.miou is not None]
    ncols = 2 if with_acc else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.5 * ncols, 4.5), squeeze=False)
    ax = axes[0][0]
    names = [r.name for r in rows]
    positions = range(1, len(rows) + 1)
    style = {"widths": 0.3, "patch_artist": True, "showfliers": True}
    inf = ax.boxplot([r.samples_ms["inference"] for r in rows],
                     positions=[p - 0.18 for p in positions], **style)  # fmt: skip
    whole = ax.boxplot([r.samples_ms["frame"] for r in rows],
                       positions=[p + 0.18 for p in positions], **style)  # fmt: skip
    for box in inf["boxes"]:
        box.set_facecolor("#9ecae1")
    for box in whole["boxes"]:
        box.set_facecolor("#fdae6b")
    ax.axhline(info.budget_ms, color="#d62728", linestyle="--", linewidth=1)
    ax.text(0.5, info.budget_ms, f" budget {info.budget_ms:.1f} ms ({info.fps_target:g} fps)",
            color="#d62728", va="bottom", fontsize=8)  # fmt: skip
    medians = [r.frame.p50 for r in rows]
    if max(medians) > 20 * min(medians):  # models orders of magnitude apart: keep all readable
        ax.set_yscale("log")
    ax.set_xticks(list(positions), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("latency per frame (ms)")
    ax.set_title(f"{info.provider}, {info.threads} threads — {info.cpu}", fontsize=9)
    ax.legend([inf["boxes"][0], whole["boxes"][0]], ["inference", "whole frame"], fontsize=8)
    if with_acc:
        _tradeoff(axes[0][1], with_acc)
    fig.tight_layout()
    return _save(fig, plt, Path(path))


def _tradeoff(ax: Any, rows: list[BenchRow]) -> None:
    """mIoU vs GMACs, marker area proportional to whole-frame p50 latency.

    GMACs are the architecture's (the paper's axis); an int8 graph may execute more, e.g. where
    calibration lowers few-group 1x1 convs to dense ones for ORT's kernels.
    """
    slowest = max(r.frame.p50 for r in rows)
    for r in rows:
        size = 40 + 600 * r.frame.p50 / slowest
        gmacs = (r.arch_macs or r.macs) / 1e9
        ax.scatter(gmacs, 100 * r.miou, s=size, alpha=0.6, edgecolors="k")
        ax.annotate(f"{r.name}\n{r.frame.p50:.1f} ms", (gmacs, 100 * r.miou),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)  # fmt: skip
    ax.margins(0.2)  # room for the labels of the corner points
    ax.set_xlabel("GMACs per frame")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("accuracy vs complexity (marker area = frame latency)", fontsize=9)
    ax.grid(alpha=0.3)


def _save(fig: Any, plt: Any, path: Path) -> Path:
    """Save atomically: a failed save leaves no partial PNG."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path
