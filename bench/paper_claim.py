"""The paper's claim, measured: does gradual grouping beat training the grouped model from scratch?

Trains three models on the procedural street scenes under the same iteration budget and writes a
markdown table (mIoU, parameters, MACs, wall time):

1. ``d`` — the depthwise-separable dense reference (D*: dense pointwise convs);
2. ``dg4`` grouped from scratch (``--schedule scratch``);
3. ``dg4`` with gradual grouping (dense start, alpha 1 -> 0, fine-tuned as a true grouped model).

Not part of CI. The defaults finish in well under an hour on 2 CPU cores; scale with
``--epochs`` / ``--iters-per-epoch`` (or a GPU). Run from the repository root::

    python bench/paper_claim.py --out runs/paper_claim
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from gradgroup.deploy.preprocess import parse_size
from gradgroup.deploy.table import format_markdown
from gradgroup.train.checkpoint import load_checkpoint, model_from_checkpoint
from gradgroup.train.flops import count_model
from gradgroup.train.trainer import TrainConfig, train

RUNS = (  # (label, arch, schedule)
    ("d (dense reference)", "d", "scratch"),
    ("dg4 from scratch", "dg4", "scratch"),
    ("dg4 gradual grouping", "dg4", "gradual"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/paper_claim", help="folder for the runs and the table")
    p.add_argument("--size", default="128x256", help="training size HxW")
    p.add_argument("--epochs", type=int, default=8, help="epochs per run (same for all)")
    p.add_argument("--iters-per-epoch", type=int, default=50, help="iterations per epoch")
    p.add_argument("--finetune-epochs", type=int, default=2, help="gradual: epochs at alpha 0")
    p.add_argument("--batch-size", type=int, default=6)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam lr (short runs learn faster)")
    p.add_argument("--train-length", type=int, default=400, help="synthetic training scenes")
    p.add_argument("--val-length", type=int, default=100, help="synthetic validation scenes")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=None, help="cap per run (safety)")
    p.add_argument("--only", nargs="*", type=int, help="run only these rows (0-based)")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p.parse_args(argv)


def run_one(args: argparse.Namespace, label: str, arch: str, schedule: str) -> dict:
    out = Path(args.out) / f"{arch}-{schedule}"
    cfg = TrainConfig(
        arch=arch, data="synthetic", size=parse_size(args.size), epochs=args.epochs,
        iters_per_epoch=args.iters_per_epoch, batch_size=args.batch_size, workers=args.workers,
        lr=args.lr, schedule=schedule,
        finetune_epochs=args.finetune_epochs if schedule == "gradual" else 0,
        device=args.device, out=str(out), resume=(out / "last.pt").is_file(), seed=args.seed,
        max_minutes=args.max_minutes, train_length=args.train_length,
        val_length=args.val_length, progress=args.progress,
    )  # fmt: skip
    result = train(cfg)
    ckpt = load_checkpoint(result.last)
    count = count_model(model_from_checkpoint(ckpt), cfg.size)
    seconds = sum(row["seconds"] for row in ckpt["metrics"])  # across resumes
    return {
        "label": label, "arch": arch, "schedule": schedule, "miou": result.miou,
        "best_miou": result.best_miou, "params": count.params, "macs": count.macs,
        "seconds": seconds, "alpha": result.alpha, "iterations": result.iterations,
        "status": result.status, "out": str(out),
    }  # fmt: skip


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def table(rows: list[dict], args: argparse.Namespace) -> str:
    header = ["model", "final mIoU %", "best mIoU %", "params", "GMACs", "train time", "final α"]
    body = [
        [r["label"], f"{100 * (r['miou'] or 0):.2f}", f"{100 * (r['best_miou'] or 0):.2f}",
         f"{r['params']:,}", f"{r['macs'] / 1e9:.3f}", _duration(r["seconds"]),
         f"{r['alpha']:.2g}"]
        for r in rows
    ]  # fmt: skip
    h, w = parse_size(args.size)
    note = (
        f"Procedural street scenes, {args.train_length} training / {args.val_length} validation "
        f"scenes at {h}x{w}; each run {args.epochs} epochs x {args.iters_per_epoch} iterations x "
        f"batch {args.batch_size}, seed {args.seed}; MACs at {h}x{w}. Gradual grouping: alpha "
        f"1 -> 0 linearly over the first {args.epochs - args.finetune_epochs} epochs, then "
        f"{args.finetune_epochs} fine-tuning epochs as a true grouped model."
    )
    return format_markdown(header, body) + "\n\n" + note + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    rows = [run_one(args, *run) for i, run in enumerate(RUNS) if not args.only or i in args.only]
    text = table(rows, args)
    out = Path(args.out)
    (out / "paper_claim.md").write_text(text)
    (out / "paper_claim.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(text)
    print(f"paper_claim done: table in {out / 'paper_claim.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
