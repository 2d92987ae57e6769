"""Learning curves of the shipped weights: validation mIoU against iterations, across sessions.

Each shipped file was trained in several continued runs (``--init`` from the previous file); the
manifest holds the iterations and mIoU the previous file was shipped with. Pass the new run
folders: each curve starts at its ``--init`` file's manifest point and continues with the run's
``metrics.jsonl`` epochs, offset by those iterations.

    python bench/weights_curves.py runs/weights/d-light2 runs/weights/erfnet2 \\
        --out bench/weights_curves.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def curve(run: Path, manifest: dict) -> tuple[str, list[int], list[float]]:
    """(arch, iterations, mIoU %) of a run continued from a shipped file."""
    config = json.loads((run / "config.json").read_text())
    arch = config["arch"]
    start = next((f for f in manifest["files"] if f["arch"] == arch), None)
    offset = start["iterations"] if start else 0
    its = [offset] if start else []
    miou = [100 * start["miou"]] if start else []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("miou") is not None:
            its.append(offset + row["iteration"])
            miou.append(100 * row["miou"])
    return arch, its, miou


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--manifest", type=Path, default=Path("weights/manifest.json"))
    parser.add_argument("--out", type=Path, default=Path("bench/weights_curves.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    manifest = json.loads(args.manifest.read_text())
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in args.runs:
        arch, its, miou = curve(run, manifest)
        ax.plot(its, miou, marker="o", ms=3, label=arch)
        print(f"{arch}: " + ", ".join(f"{i}:{m:.1f}" for i, m in zip(its, miou, strict=True)))
    ax.set_xlabel("training iterations (batch 8, 128x256)")
    ax.set_ylabel("validation mIoU % (200 held-out scenes)")
    ax.set_title("Shipped dense starts: validation mIoU while training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
