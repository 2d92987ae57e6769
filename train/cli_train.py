"""``gradgroup train``: flags map 1:1 onto :class:`~gradgroup.train.trainer.TrainConfig`.

With ``--resume`` the run's own settings (``OUT/config.json``) are reused; only flags given with a
non-default value override them, and the trainer refuses changes that would break the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from gradgroup.deploy.errors import InputError
from gradgroup.deploy.fileio import to_json
from gradgroup.deploy.preprocess import parse_size

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  gradgroup train --arch dg4-light --out runs/dg4                  # gradual grouping, synthetic
  gradgroup train --arch dg4 --schedule scratch --out runs/dg4-scratch
  gradgroup train --arch erfnet --data cityscapes:~/cityscapes --size 512x1024 --out runs/erf
  gradgroup train --out runs/dg4 --resume                          # continue after Ctrl-C
  torchrun --nproc_per_node 4 -m gradgroup train --arch dg4 --out runs/ddp   # multi-GPU
"""


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("", "none", "auto") else int(text)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    a = parser.add_argument
    a("--arch", default="dg4-light", help="architecture (see gradgroup models)")
    a("--data", default="synthetic", help="synthetic | cityscapes:DIR | folder:DIR")
    a("--size", default="256x512", help="training (= model input) size HxW")
    a("--epochs", type=int, default=10, help="epochs, fine-tuning included")
    a("--iters-per-epoch", type=_optional_int, default=None,
      help="iterations per epoch (None: one pass over the training set)")  # fmt: skip
    a("--batch-size", type=int, default=6, help="images per step and process")
    a("--lr", type=float, default=5e-4, help="Adam learning rate, poly decay 0.9")
    a("--workers", type=int, default=2, help="data loader processes")
    a("--schedule", choices=("gradual", "scratch", "dense"), default="gradual",
      help="gradual: alpha 1 -> 0 then grouped; scratch: grouped from the start; "
      "dense: alpha kept at 1")  # fmt: skip
    a("--alpha-shape", default="linear", help="linear | cosine | exponential | step")
    a("--alpha-start", type=float, default=1.0, help="alpha at the start of the decay")
    a("--alpha-end", type=float, default=0.0, help="alpha after the decay (0: true grouped)")
    a("--alpha-span", type=float, default=1.0,
      help="decay: fraction (<=1) of the pre-fine-tune epochs, or iterations (>1)")  # fmt: skip
    a("--finetune-epochs", type=int, default=1, help="last epochs at alpha 0 as a grouped model")
    a("--layer-alpha", choices=("share", "uniform"), default="share",
      help="share: each layer's alpha makes its diagonal blocks' share follow the schedule "
      "(depthwise targets decay early); uniform: every layer gets the scheduled alpha")  # fmt: skip
    a("--cross-cap", action=argparse.BooleanOptionalAction, default=True,
      help="hold each layer's cross-group weight RMS at most at its diagonal RMS while alpha "
      "decays, so the network stops depending on them gradually")  # fmt: skip
    a(
        "--bn-recalib",
        type=int,
        default=64,
        help="re-estimate BatchNorm statistics on N training images before validating (0: off)",
    )
    a("--init", default=None, metavar="CKPT",
      help="start from this checkpoint's weights (e.g. a dense run for gradual grouping); "
      "tensors that do not fit are named")  # fmt: skip
    a("--encoder-epochs", type=int, default=0, help="ERFNet's encoder-only first stage")
    a("--device", choices=("auto", "cpu", "cuda"), default="auto", help="training device")
    a("--amp", action=argparse.BooleanOptionalAction, default=True,
      help="mixed precision: bf16/fp16 on CUDA, bf16 on CPUs with AMX, else fp32")  # fmt: skip
    a("--out", default="runs/train", help="output folder (last.pt, best.pt, metrics.jsonl)")
    a("--resume", action="store_true", help="continue the run in --out from last.pt")
    a("--seed", type=int, default=0, help="seed of weights, data order and augmentation")
    a("--max-minutes", type=float, default=None, help="stop cleanly (checkpointed) after this")
    a("--train-length", type=_optional_int, default=None,
      help="synthetic train scenes (2000 if unset) / cap on files")  # fmt: skip
    a(
        "--val-length",
        type=_optional_int,
        default=None,
        help="synthetic val scenes (200 if unset)",
    )
    a("--val-limit", type=_optional_int, default=None, help="validate on at most N images")
    a("--augment", action=argparse.BooleanOptionalAction, default=True, help="flip, scale, crop")
    a("--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar")
    a("--json", action="store_true", help="print the result as JSON")


FIELDS = (
    "arch", "data", "size", "epochs", "iters_per_epoch", "batch_size", "lr", "workers",
    "schedule", "alpha_shape", "alpha_start", "alpha_end", "alpha_span", "finetune_epochs",
    "layer_alpha", "cross_cap", "bn_recalib", "init", "encoder_epochs", "device", "amp", "out",
    "resume", "seed", "max_minutes", "train_length", "val_length", "val_limit", "augment",
    "progress",
)  # fmt: skip


def config_from_args(args: argparse.Namespace):
    """The TrainConfig the flags describe (merged with the run's saved config on --resume)."""
    from .recipe import ADDED_LATER
    from .trainer import TrainConfig

    values = {k: getattr(args, k) for k in FIELDS}
    values["size"] = parse_size(args.size)
    if args.resume:
        saved = Path(args.out) / "config.json"
        if not saved.is_file():
            raise InputError(f"--resume: {saved} does not exist; is --out the folder of a run?")
        try:
            old = json.loads(saved.read_text())
        except ValueError as exc:
            raise InputError(f"--resume: {saved} is not valid JSON ({exc})") from None
        if not isinstance(old, dict):
            raise InputError(f"--resume: {saved} is not a run's config (no settings in it)")
        old = {**ADDED_LATER, **old}  # a run saved before a setting existed goes on as it began
        defaults = argparse.ArgumentParser()
        configure(defaults)
        default = vars(defaults.parse_args([]))
        default["size"] = parse_size(default["size"])
        for key in FIELDS:
            if key in old and key not in ("out", "resume") and values[key] == default[key]:
                values[key] = old[key]
    return TrainConfig.from_dict(values)


def run(args: argparse.Namespace) -> int:
    from .trainer import train

    cfg = config_from_args(args)
    result = train(cfg)
    if int(os.environ.get("RANK", 0)):  # under torchrun, rank 0 reports
        return 130 if result.status == "interrupted" else 0
    if args.json:
        print(to_json(result.to_dict(), indent=2))
        return 130 if result.status == "interrupted" else 0
    best = f", best mIoU {result.best_miou:.4f}" if result.best_miou is not None else ""
    state = {"done": "done", "budget": "stopped at the time budget", "interrupted": "interrupted"}
    print(
        f"train {state[result.status]}: {result.arch} ({result.schedule}) {result.epochs} epochs, "
        f"{result.iterations} it, alpha {result.alpha:.3g}{best} in {result.seconds:.1f} s, "
        f"saved {result.best or result.last}"
    )
    if result.status == "budget":  # (an interrupt already logged how to resume)
        print(f"continue with: gradgroup train --out {result.out} --resume")
    return 130 if result.status == "interrupted" else 0
