"""Learning curves of runs continued from shipped weights: validation mIoU against iterations.

Each shipped file was trained in several continued runs (``--init`` from the previous file); the
manifest holds the iterations and mIoU each file was shipped with. Pass run folders: each curve
starts at its ``--init`` file's manifest point (offset by that file's iterations) and continues
with the run's ``metrics.jsonl`` epochs; a gradual run's conversion epoch is plotted at its
converted (grouped) score. Labels default to the run's architecture and schedule.

    python bench/weights_curves.py runs/weights/d-light2 runs/weights/erfnet2 \
        --out bench/weights_curves.png
    python bench/weights_curves.py runs/dg4-long runs/atonce-long --labels gradual "at once" \
        --title "dg4-light from weights/d-light.pt" --out bench/grouping_long.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def curve(run: Path, manifest: dict) -> tuple[str, list[int], list[float]]:
    """(label, iterations, mIoU %) of a run, from its --init file's manifest point on."""
    config = json.loads((run / "config.json").read_text())
    init = Path(config.get("init") or "").name
    start = next((f for f in manifest["files"] if init and f["name"] == init), None)
    offset = start["iterations"] if start else 0
    its = [offset] if start else []
    miou = [100 * start["miou"]] if start else []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("miou") is not None:
            its.append(offset + row["iteration"])
            miou.append(100 * row.get("converted_miou", row["miou"]))
    label = config["arch"] + ("" if config["schedule"] == "dense" else f" {config['schedule']}")
    return label, its, miou


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--manifest", type=Path, default=Path("weights/manifest.json"))
    parser.add_argument("--out", type=Path, default=Path("bench/weights_curves.png"))
    parser.add_argument("--labels", nargs="+", help="one label per run (default: arch, schedule)")
    parser.add_argument("--title", default="Shipped weights: validation mIoU while training")
    args = parser.parse_args()
    if args.labels and len(args.labels) != len(args.runs):
        parser.error(f"--labels: {len(args.labels)} labels for {len(args.runs)} runs")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    manifest = json.loads(args.manifest.read_text())
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, run in enumerate(args.runs):
        label, its, miou = curve(run, manifest)
        label = args.labels[i] if args.labels else label
        ax.plot(its, miou, marker="o", ms=3, label=label)
        print(f"{label}: " + ", ".join(f"{i}:{m:.1f}" for i, m in zip(its, miou, strict=True)))
    ax.set_xlabel("training iterations (batch 8, 128x256)")
    ax.set_ylabel("validation mIoU % (200 held-out scenes)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
