"""Training curves as a PNG: validation mIoU and alpha per epoch, and how much of each gradual
layer the cross-group paths still carry (``||alpha * W_cross|| / ||W_diag||``).

The alpha -> 0 collapse showed only in these curves, never in ``best.pt``: every run folder gets
its ``curves.png`` (when matplotlib is installed), and ``bench/continuity.py`` overlays runs.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from gradgroup.deploy.fileio import atomic_path
from gradgroup.deploy.plots import require_matplotlib


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_curves(runs: dict[str, list[dict]], path: str | Path, title: str = "") -> Path:
    """Write the curves of one or more runs (label -> metrics rows) to ``path``.

    Raises:
        MissingDependencyError: matplotlib is absent.
    """
    plt = require_matplotlib()
    fig, (ax_miou, ax_cross) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax_alpha = ax_miou.twinx()
    for i, (label, rows) in enumerate(runs.items()):
        color = f"C{i}"
        main = [r for r in rows if r.get("miou") is not None]
        epochs = [r["epoch"] for r in main]
        ax_miou.plot(epochs, [100 * r["miou"] for r in main], "o-", color=color, label=label)
        conv = [r for r in main if r.get("converted_miou") is not None]
        ax_miou.plot([r["epoch"] for r in conv], [100 * r["converted_miou"] for r in conv], "*",
                     color=color, markersize=12)  # fmt: skip
        ax_alpha.plot(epochs, [r["alpha"] for r in main], ":", color=color, alpha=0.6)
        cross = [r for r in main if r.get("cross_ratio")]
        if cross:
            ratios = [sorted(r["cross_ratio"].values()) for r in cross]
            ax_cross.plot([r["epoch"] for r in cross], [statistics.median(v) for v in ratios], "o-",
                          color=color, label=f"{label} (median layer)")  # fmt: skip
            ax_cross.fill_between([r["epoch"] for r in cross], [v[0] for v in ratios],
                                  [v[-1] for v in ratios], color=color, alpha=0.15)  # fmt: skip
    ax_miou.set_xlabel("epoch")
    ax_miou.set_ylabel("validation mIoU % (star: converted to grouped convs)")
    ax_alpha.set_ylabel("alpha (dotted)")
    ax_alpha.set_ylim(-0.02, 1.02)
    ax_miou.legend(loc="lower right", fontsize=8)
    ax_miou.grid(alpha=0.3)
    ax_cross.set_xlabel("epoch")
    ax_cross.set_ylabel("||alpha W_cross|| / ||W_diag|| (band: all layers)")
    ax_cross.set_yscale("log")
    ax_cross.grid(alpha=0.3)
    if ax_cross.lines:
        ax_cross.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(path)


def continuity(rows: list[dict]) -> dict[str, float | None]:
    """The issue's two continuity measures of a gradual run, in mIoU points (fractions x 100):

    - ``conversion_gap``: converted model minus the last gradual epoch (alpha > 0);
    - ``worst_decay_drop``: the largest fall of an epoch of the decay below the best earlier one.
    """
    main = [r for r in rows if r.get("miou") is not None]
    decay = [r for r in main if r["alpha"] > 0 and r.get("cross_ratio")]
    worst, best = 0.0, -math.inf
    for r in decay:
        if best > -math.inf:
            worst = max(worst, best - r["miou"])
        best = max(best, r["miou"])
    conv = next((r for r in main if r.get("converted_miou") is not None), None)
    gap = None if conv is None else 100 * (conv["converted_miou"] - conv["miou"])
    return {"conversion_gap": gap, "worst_decay_drop": 100 * worst if decay else None}
