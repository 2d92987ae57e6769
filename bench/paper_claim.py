"""The paper's claim, measured: does gradual grouping beat training the grouped model directly?

Every variant gets the same iteration budget on the procedural street scenes; the light models
start from the same shipped dense weights (``weights/d-light-dense.pt``), as in the paper's recipe:

1. ``dense`` — d-light continued as a dense model (the reference the grouped model should keep);
2. ``gradual`` — dg4-light, alpha 1 -> 0 over the first half, then fine-tuned as a grouped model;
3. ``at-once`` — dg4-light grouped in two iterations (the cross-group paths dropped at once),
   then fine-tuned: gradual grouping without the gradual part;
4. ``scratch`` — dg4-light trained as a grouped model from random weights;
5. ``erfnet`` — ERFNet continued from ``weights/erfnet.pt`` (only with ``--with-erfnet``).

Each variant runs for every ``--seeds`` value (seed of data order, augmentation and, for
``scratch``, the weights). Writes ``paper_claim.md`` (mean ± std over seeds of the final and best
mIoU, and the gap to the dense reference), ``paper_claim.json`` and ``paper_claim.png`` (validation
mIoU against CPU minutes, mean over seeds with the min-max band). Finished runs are reused and
interrupted ones resume, so the same command continues. Not part of CI::

    OMP_NUM_THREADS=1 python bench/paper_claim.py --out runs/paper_claim --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gradgroup.deploy.preprocess import parse_size
from gradgroup.deploy.table import format_markdown
from gradgroup.train.trainer import TrainConfig, train


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    arch: str
    schedule: str
    init: str | None
    alpha_span: float = 1.0
    finetune: str = "half"  # half | all-but-one | none


DENSE = "weights/d-light-dense.pt"
VARIANTS = (
    Variant("dense", "d-light dense (reference)", "d-light", "dense", DENSE, finetune="none"),
    Variant("gradual", "dg4-light gradual grouping", "dg4-light", "gradual", DENSE),
    Variant("at-once", "dg4-light grouped at once", "dg4-light", "gradual", DENSE,
            alpha_span=2, finetune="all-but-one"),
    Variant("scratch", "dg4-light grouped from scratch", "dg4-light", "scratch", None,
            finetune="none"),
    Variant("erfnet", "ERFNet dense", "erfnet", "dense", "weights/erfnet.pt", finetune="none"),
)  # fmt: skip


@dataclass
class Run:
    """One finished (or budget-stopped) run: its curve and final numbers, fractions."""

    variant: str
    seed: int
    minutes: list[float] = field(default_factory=list)  # cumulative training minutes per epoch
    miou: list[float] = field(default_factory=list)  # validation mIoU per epoch
    alpha: list[float] = field(default_factory=list)
    final: float = 0.0
    best: float = 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/paper_claim", help="folder for the runs and the table")
    p.add_argument("--size", default="128x256", help="training size HxW")
    p.add_argument("--epochs", type=int, default=6, help="epochs per run (same for all)")
    p.add_argument("--iters-per-epoch", type=int, default=40, help="iterations per epoch")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam lr, poly decay")
    p.add_argument("--train-length", type=int, default=4000, help="synthetic training scenes")
    p.add_argument("--val-length", type=int, default=100, help="synthetic validation scenes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", choices=[v.key for v in VARIANTS],
                   default=["dense", "gradual", "at-once", "scratch"])  # fmt: skip
    p.add_argument("--with-erfnet", action="store_true", help="add ERFNet (seed 0 only)")
    p.add_argument("--max-minutes", type=float, default=None, help="cap per run (safety)")
    p.add_argument("--report-only", action="store_true", help="tabulate the runs in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p.parse_args(argv)


def _finetune_epochs(variant: Variant, epochs: int) -> int:
    return {"half": epochs // 2, "all-but-one": epochs - 1, "none": 0}[variant.finetune]


def config(args: argparse.Namespace, variant: Variant, seed: int) -> TrainConfig:
    out = Path(args.out) / f"{variant.key}-s{seed}"
    return TrainConfig(
        arch=variant.arch, data="synthetic", size=parse_size(args.size), epochs=args.epochs,
        iters_per_epoch=args.iters_per_epoch, batch_size=args.batch_size, workers=0,
        lr=args.lr, schedule=variant.schedule, init=variant.init,
        alpha_span=variant.alpha_span, finetune_epochs=_finetune_epochs(variant, args.epochs),
        out=str(out), resume=(out / "last.pt").is_file(), seed=seed,
        max_minutes=args.max_minutes, train_length=args.train_length,
        val_length=args.val_length, progress=args.progress,
    )  # fmt: skip


def read_run(folder: Path, variant: str, seed: int) -> Run | None:
    """The curve of a run folder from its metrics.jsonl; None when it has no validated epoch."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return None
    run, elapsed = Run(variant, seed), 0.0
    for line in path.read_text().splitlines():
        row = json.loads(line)
        elapsed += row["seconds"] / 60
        if row.get("miou") is None:
            continue
        run.minutes.append(elapsed)
        run.miou.append(row.get("converted_miou", row["miou"]))
        run.alpha.append(0.0 if "converted_miou" in row else row["alpha"])
    if not run.miou:
        return None
    run.final = run.miou[-1]
    grouped = [m for m, a in zip(run.miou, run.alpha, strict=True) if a == 0.0]
    run.best = max(grouped or run.miou)  # a grouped variant's best is a grouped model
    return run


def _mean_std(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def table(runs: list[Run], args: argparse.Namespace) -> str:
    by_variant = {v.key: [r for r in runs if r.variant == v.key] for v in VARIANTS}
    dense = by_variant.get("dense") or []
    dense_mean = statistics.fmean(r.final for r in dense) if dense else None
    header = ["variant", "seeds", "final mIoU %", "best grouped/dense mIoU %", "vs dense",
              "train min"]  # fmt: skip
    body = []
    for v in VARIANTS:
        rows = by_variant[v.key]
        if not rows:
            continue
        final = [r.final for r in rows]
        gap = "" if dense_mean is None else f"{100 * (statistics.fmean(final) - dense_mean):+.1f}"
        body.append([v.label, len(rows), _mean_std(final), _mean_std([r.best for r in rows]),
                     gap, f"{statistics.fmean(r.minutes[-1] for r in rows):.1f}"])  # fmt: skip
    h, w = parse_size(args.size)
    note = (
        f"Procedural street scenes at {h}x{w}, {args.train_length} training scenes, "
        f"{args.val_length} validation scenes; every run {args.epochs} epochs x "
        f"{args.iters_per_epoch} iterations x batch {args.batch_size}, Adam lr {args.lr:g} with "
        "poly decay, one CPU thread; mean ± sample std over the seeds. 'train min': "
        "training time of one run, validation excluded."
    )
    return format_markdown(header, body) + "\n\n" + note + "\n"


def plot(runs: list[Run], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for v in VARIANTS:
        rows = [r for r in runs if r.variant == v.key]
        if not rows:
            continue
        n = min(len(r.miou) for r in rows)
        x = [statistics.fmean(r.minutes[i] for r in rows) for i in range(n)]
        ys = [[100 * r.miou[i] for r in rows] for i in range(n)]
        line = ax.plot(x, [statistics.fmean(y) for y in ys], marker="o", ms=3, label=v.label)
        ax.fill_between(x, [min(y) for y in ys], [max(y) for y in ys], alpha=0.15,
                        color=line[0].get_color())  # fmt: skip
    ax.set_xlabel("training minutes (one CPU thread)")
    ax.set_ylabel("validation mIoU %")
    ax.set_title("Same start, same budget: mean over seeds (band: min-max)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    variants = [v for v in VARIANTS if v.key in args.variants]
    plan = [(v, s) for s in args.seeds for v in variants]  # seed-major: a partial run is balanced
    erfnet = next(v for v in VARIANTS if v.key == "erfnet")
    if args.with_erfnet and erfnet not in variants:
        plan.append((erfnet, args.seeds[0]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for variant, seed in plan:
        if not args.report_only:
            cfg = config(args, variant, seed)
            logging.info("== %s, seed %d -> %s", variant.label, seed, cfg.out)
            train(cfg)
        run = read_run(out / f"{variant.key}-s{seed}", variant.key, seed)
        if run is not None:
            runs.append(run)
    text = table(runs, args)
    (out / "paper_claim.md").write_text(text)
    (out / "paper_claim.json").write_text(json.dumps([r.__dict__ for r in runs], indent=2) + "\n")
    plot(runs, out / "paper_claim.png")
    print(text)
    print(f"paper_claim: table, curves and runs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
