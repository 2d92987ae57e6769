"""``gradgroup train``: flags map 1:1 onto :class:`~gradgroup.train.trainer.TrainConfig`.

With ``--resume`` the run's own settings (``OUT/config.json``) are reused; only flags given with a
non-default value override them, and the trainer refuses changes that would break the run.
``--config FILE`` takes TrainConfig's field names, also those without a flag (``weight_decay``,
``betas``, ``poly_power``, ``class_weight_samples``); ``OUT/run.json`` records each run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from pathlib import Path

from gradgroup.deploy.cli_config import add_config_flags
from gradgroup.deploy.errors import InputError
from gradgroup.deploy.fileio import to_json
from gradgroup.deploy.preprocess import parse_size

log = logging.getLogger(__name__)

EXAMPLES = """examples:
  gradgroup train --arch dg4-light --out runs/dg4                  # gradual grouping, synthetic
  gradgroup train --arch dg4 --schedule scratch --out runs/dg4-scratch
  gradgroup train --arch erfnet --data cityscapes:~/cityscapes --size 512x1024 --out runs/erf
  gradgroup train --out runs/dg4 --resume                          # continue after Ctrl-C
  gradgroup train --arch dg4-light --init weights/d-light.pt --fit-minutes 30 --out runs/dg4-30
  gradgroup train --config runs/dg4/run.json --out runs/dg4-again  # repeat a run's settings
  gradgroup train --config recipe.yaml --lr 1e-3 --print-config    # file + flags, resolved
  torchrun --nproc_per_node 4 -m gradgroup train --arch dg4 --out runs/ddp   # multi-GPU
"""


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("", "none", "auto") else int(text)


def configure(parser: argparse.ArgumentParser) -> None:
    """The flags, with defaults and choices taken from :class:`~.recipe.TrainConfig`."""
    from .grouping import LAYER_ALPHA
    from .recipe import SCHEDULE_CHOICES, TrainConfig
    from .schedules import SCHEDULES

    d = TrainConfig()
    parser.epilog = EXAMPLES
    a = parser.add_argument
    a("--arch", default=d.arch, help="architecture (see gradgroup models)")
    a("--data", default=d.data, help="synthetic | cityscapes:DIR | folder:DIR")
    a("--size", default="x".join(map(str, d.size)), metavar="HxW",
      help="training (= model input) size HxW")  # fmt: skip
    a("--epochs", type=int, default=d.epochs, help="epochs, fine-tuning included")
    a("--iters-per-epoch", type=_optional_int, default=d.iters_per_epoch,
      help="iterations per epoch (default: one pass over the training set)")  # fmt: skip
    a("--batch-size", type=int, default=d.batch_size, help="images per step and process")
    a("--lr", type=float, default=d.lr, help="Adam learning rate, poly decay 0.9")
    a("--workers", type=int, default=d.workers, help="data loader processes")
    a("--threads", type=_optional_int, default=d.threads,
      help="CPU intra-op threads (default: the cores other processes leave free, re-checked "
      "every few seconds)")  # fmt: skip
    a("--schedule", choices=SCHEDULE_CHOICES, default=d.schedule,
      help="gradual: alpha 1 -> 0 then grouped; scratch: grouped from the start; "
      "dense: alpha kept at 1")  # fmt: skip
    a("--alpha-shape", default=d.alpha_shape, help=" | ".join(SCHEDULES))
    a("--alpha-start", type=float, default=d.alpha_start, help="alpha at the start of the decay")
    a("--alpha-end", type=float, default=d.alpha_end,
      help="alpha after the decay (0: true grouped)")  # fmt: skip
    a("--alpha-span", type=float, default=d.alpha_span,
      help="decay: fraction (<=1) of the pre-fine-tune epochs, or iterations (>1)")  # fmt: skip
    a("--finetune-epochs", type=int, default=d.finetune_epochs,
      help="last epochs at alpha 0 as a grouped model")  # fmt: skip
    a("--layer-alpha", choices=LAYER_ALPHA, default=d.layer_alpha,
      help="share: each layer's alpha makes its diagonal blocks' share follow the schedule "
      "(depthwise targets decay early); uniform: every layer gets the scheduled alpha")  # fmt: skip
    a("--cross-cap", action=argparse.BooleanOptionalAction, default=d.cross_cap,
      help="hold each layer's cross-group weight RMS at most at its diagonal RMS while alpha "
      "decays, so the network stops depending on them gradually")  # fmt: skip
    a("--bn-recalib", type=int, default=d.bn_recalib,
      help="re-estimate BatchNorm statistics on N training images before validating "
      "(0: off)")  # fmt: skip
    a("--init", default=d.init, metavar="CKPT",
      help="start from this checkpoint's weights (e.g. a dense run for gradual grouping); "
      "tensors that do not fit are named (default: none, random weights)")  # fmt: skip
    a("--start-lr-scale", type=float, default=d.start_lr_scale,
      help="with --init and the gradual schedule: lr multiplier of everything outside the "
      "layers being grouped (1: one lr for all)")  # fmt: skip
    a("--encoder-epochs", type=int, default=d.encoder_epochs,
      help="ERFNet's encoder-only first stage")  # fmt: skip
    a("--device", choices=("auto", "cpu", "cuda"), default=d.device, help="training device")
    a("--amp", action=argparse.BooleanOptionalAction, default=d.amp,
      help="mixed precision: bf16/fp16 on CUDA, bf16 on CPUs with AMX, else fp32")  # fmt: skip
    a("--out", default=d.out, help="output folder (last.pt, best.pt, metrics.jsonl)")
    a("--resume", action="store_true",
      help="continue the run in --out from last.pt with its saved settings")  # fmt: skip
    a("--seed", type=int, default=d.seed, help="seed of weights, data order and augmentation")
    a("--max-minutes", type=float, default=d.max_minutes,
      help="stop cleanly (checkpointed) after this (default: no time limit)")  # fmt: skip
    a("--fit-minutes", type=float, default=d.fit_minutes,
      help="fit the whole run into about this many minutes: after each epoch the epochs still "
      "to come are re-sized from its measured cost (lr and alpha stay continuous, every epoch "
      "runs); default: --iters-per-epoch as given")  # fmt: skip
    a("--train-length", type=_optional_int, default=d.train_length,
      help="synthetic train scenes (default 2000) / cap on files")  # fmt: skip
    a("--val-length", type=_optional_int, default=d.val_length,
      help="synthetic val scenes (default 200)")  # fmt: skip
    a("--val-limit", type=_optional_int, default=d.val_limit,
      help="validate on at most N images (default: all)")  # fmt: skip
    a("--augment", action=argparse.BooleanOptionalAction, default=d.augment,
      help="flip, scale, crop")  # fmt: skip
    a("--progress", action=argparse.BooleanOptionalAction, default=d.progress,
      help="progress bar (-q hides it too)")  # fmt: skip
    a("--json", action="store_true", help="print the result as JSON")
    add_config_flags(parser, "gradgroup.train.recipe:TrainConfig")


def config_from_args(args: argparse.Namespace):
    """The TrainConfig the flags describe (merged with the run's saved config on --resume)."""
    from .recipe import ADDED_LATER
    from .trainer import TrainConfig

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    # Every field the flags (or a --config file) set; those without a flag keep their default.
    values = {k: getattr(args, k) for k in names if hasattr(args, k)}
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
        default = TrainConfig()  # the flags' defaults (tests/test_cli_defaults.py)
        for key in names:
            unset = values.get(key, getattr(default, key)) == getattr(default, key)
            if key in old and key not in ("out", "resume") and unset:
                values[key] = old[key]
    return TrainConfig.from_dict(values)


def resolved_config(args: argparse.Namespace) -> dict:
    """``--print-config``: the TrainConfig the run would use (the saved one merged on --resume)."""
    return config_from_args(args).to_dict()


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
