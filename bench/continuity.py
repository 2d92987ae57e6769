"""Is gradual grouping continuous at alpha -> 0?  The same gradual run with and without the fixes.

Trains one architecture with gradual grouping several times from the same start (the same seed,
or ``--init CKPT``), changing only how the decay is handled:

1. ``plain``: the method as first written (no cross-group cap, BatchNorm statistics as trained);
2. ``bn-recalib``: BatchNorm statistics re-estimated before every validation;
3. ``cap + bn-recalib``: cross-group RMS held at the diagonal RMS as well;
4. ``share + cap + bn-recalib``: the default: each layer's alpha chosen so that its diagonal
   blocks' share follows the schedule (``--layer-alpha share``).

Prints per-epoch validation mIoU, alpha and the median ``||alpha W_cross|| / ||W_diag||`` side by
side, the two continuity measures (converted minus last gradual epoch; worst fall of a decay epoch
below the best earlier one, both in mIoU points), and writes ``continuity.md``/``.json``/``.png``.
Not part of CI. Run from the repository root::

    python bench/continuity.py --out runs/continuity
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
from pathlib import Path

from gradgroup.deploy.preprocess import parse_size
from gradgroup.deploy.table import format_markdown
from gradgroup.train.curves import continuity, plot_curves
from gradgroup.train.trainer import TrainConfig, train

VARIANTS = {  # label -> (layer alpha, cross_cap, bn_recalib images)
    "plain": ("uniform", False, 0),
    "bn-recalib": ("uniform", False, 64),
    "cap + bn-recalib": ("uniform", True, 64),
    "share + cap + bn-recalib": ("share", True, 64),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/continuity", help="folder for the runs and the table")
    p.add_argument("--arch", default="dg4-light")
    p.add_argument("--size", default="64x128", help="training size HxW")
    p.add_argument("--epochs", type=int, default=6, help="epochs per run, fine-tuning included")
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--iters-per-epoch", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=6)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--alpha-shape", default="linear")
    p.add_argument("--init", default=None, help="start every run from this checkpoint's weights")
    p.add_argument("--train-length", type=int, default=1000)
    p.add_argument("--val-length", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", nargs="*", choices=list(VARIANTS), help="run only these variants")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p.parse_args(argv)


def run_variant(args: argparse.Namespace, label: str) -> list[dict]:
    layer_alpha, cap, recalib = VARIANTS[label]
    out = Path(args.out) / label.replace(" + ", "+")
    metrics = out / "metrics.jsonl"
    if metrics.is_file() and len(metrics.read_text().splitlines()) >= args.epochs:
        return [json.loads(line) for line in metrics.read_text().splitlines()]  # finished
    extra = {"init": args.init} if args.init else {}
    cfg = TrainConfig(
        arch=args.arch, size=parse_size(args.size), epochs=args.epochs,
        finetune_epochs=args.finetune_epochs, iters_per_epoch=args.iters_per_epoch,
        batch_size=args.batch_size, lr=args.lr, alpha_shape=args.alpha_shape, workers=0,
        layer_alpha=layer_alpha, cross_cap=cap, bn_recalib=recalib, train_length=args.train_length,
        val_length=args.val_length, seed=args.seed, out=str(out),
        resume=(out / "last.pt").is_file(), progress=args.progress, **extra,
    )  # fmt: skip
    train(cfg)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def table(runs: dict[str, list[dict]]) -> str:
    labels = list(runs)
    epochs = sorted({r["epoch"] for rows in runs.values() for r in rows})
    header = ["epoch", "alpha"] + [f"{lb} mIoU %" for lb in labels]
    header += [f"{lb} cross ratio" for lb in labels]
    body = []
    for e in epochs:
        rows = {lb: next((r for r in runs[lb] if r["epoch"] == e), None) for lb in labels}
        first = next(r for r in rows.values() if r)
        cells = [str(e), f"{first['alpha']:.3g}"]
        for lb in labels:
            r = rows[lb]
            text = _pct(r and r["miou"])
            if r and r.get("converted_miou") is not None:
                text += f" → {_pct(r['converted_miou'])} converted"
            cells.append(text)
        for lb in labels:
            r = rows[lb]
            ratios = (r or {}).get("cross_ratio")
            cells.append(f"{statistics.median(ratios.values()):.3f}" if ratios else "—")
        body.append(cells)
    summary = [["measure"] + labels]
    measures = {lb: continuity(rows) for lb, rows in runs.items()}
    names = {
        "conversion_gap": "converted − last gradual epoch (points)",
        "worst_decay_drop": "worst decay epoch below best earlier (points)",
    }
    for key, name in names.items():
        summary.append([name] + [_points(measures[lb][key]) for lb in labels])
    return format_markdown(header, body) + "\n\n" + format_markdown(summary[0], summary[1:])


def _points(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    labels = args.only or list(VARIANTS)
    runs = {label: run_variant(args, label) for label in labels}
    out = Path(args.out)
    h, w = parse_size(args.size)
    note = (
        f"\n\n{args.arch}, procedural scenes at {h}x{w}, {args.epochs} epochs x "
        f"{args.iters_per_epoch} iterations x batch {args.batch_size}, alpha {args.alpha_shape} "
        f"1 -> 0 over {args.epochs - args.finetune_epochs} epochs, seed {args.seed}"
        f"{', from ' + args.init if args.init else ', from scratch'}. Cross ratio: median over "
        "layers of ||alpha W_cross|| / ||W_diag||.\n"
    )
    text = table(runs) + note
    (out / "continuity.md").write_text(text)
    (out / "continuity.json").write_text(json.dumps(runs, indent=2) + "\n")
    plot_curves(runs, out / "continuity.png", f"{args.arch}: gradual grouping at alpha -> 0")
    print(text)
    print(f"continuity done: {out / 'continuity.md'}, {out / 'continuity.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
