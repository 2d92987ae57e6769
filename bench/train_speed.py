"""Training throughput on CPU: images/s of one training step, per setting, quiet and under load.

Each setting runs in its own process (OpenMP reads its environment when torch loads) and times
the trainer's step on cached procedural scenes: data (augmentation, batching), forward, backward,
optimizer (+ the cross-group cap while alpha decays), in the gradual form mid-decay or (``--form
grouped``) as true grouped convs. Settings:

1. ``before``: the first trainer's CPU path (NCHW, fp32, OpenMP's default 300,000-spin wait);
2. ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (the previous default); ``channels_last`` adds the
   trainer's memory format, ``bf16`` bf16 autocast (what ``--amp`` means on CPUs with AMX);
3. ``spin1e3``/``spin1e4``: a short spin (``GOMP_SPINCOUNT``), channels_last;
4. ``share``: passive, channels_last and the trainer's CoreShare (threads follow the load, at most
   ``--threads``); ``share+spin1e4``: the trainer's defaults (``GOMP_SPINCOUNT=10000``).

"under load" runs the same with a busy-looping process on one core, as when a user's other job
shares the machine. Ratios are against ``before`` on a quiet machine, measured in this run. Not
part of CI. Run from the repository root on an otherwise quiet machine::

    python bench/train_speed.py --arch dg4-light --size 128x256 --batch-size 8 --threads 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from typing import NamedTuple


class Setting(NamedTuple):
    env: dict[str, str]  # OpenMP environment ({}: OpenMP's default wait)
    channels_last: bool = True
    bf16: bool = False
    follow_load: bool = False  # the trainer's CoreShare


PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
SPIN1E4 = {"GOMP_SPINCOUNT": "10000"}
SETTINGS = {
    "before": Setting({}, channels_last=False),
    "passive": Setting(PASSIVE, channels_last=False),
    "channels_last": Setting(PASSIVE),
    "bf16": Setting(PASSIVE, bf16=True),
    "spin1e3": Setting({"GOMP_SPINCOUNT": "1000"}),
    "spin1e4": Setting(SPIN1E4),
    "share": Setting(PASSIVE, follow_load=True),
    "share+spin1e4": Setting(SPIN1E4, follow_load=True),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="dg4-light")
    p.add_argument("--size", default="128x256")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--form",
        choices=("gradual", "grouped"),
        default="gradual",
        help="gradual: mid-decay dense form; grouped: true grouped convs (alpha = 0)",
    )
    p.add_argument("--steps", type=int, default=6, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--settings", nargs="*", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--timeout", type=float, default=180, help="seconds per setting at most")
    p.add_argument("--no-load", dest="load", action="store_false", help="skip the loaded runs")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def child(args: argparse.Namespace) -> dict:
    """One setting in this process: mean seconds per phase over the timed steps."""
    import torch  # first: OpenMP reads its wait policy now, before gradgroup could set it

    from gradgroup.deploy.datasets import open_dataset
    from gradgroup.deploy.preprocess import Preprocess, parse_size
    from gradgroup.train.data import Augment, SegDataset
    from gradgroup.train.grouping import cap_cross_weights, set_alpha
    from gradgroup.train.models import create_model
    from gradgroup.train.recipe import weighted_ce

    setting = SETTINGS[args.child]
    channels_last, bf16 = setting.channels_last, setting.bf16
    torch.set_num_threads(args.threads)
    share = None
    if setting.follow_load:  # the trainer's CoreShare, --threads its limit
        from gradgroup.train.cores import CoreShare

        share = CoreShare(args.threads, interval=1.0)
        share.sample()
    size = parse_size(args.size)
    data = SegDataset(open_dataset("synthetic", "train", size=size, length=32),
                      Preprocess(*size), Augment())  # fmt: skip
    data.cache()
    for i in range(len(data)):
        data.base(i)  # rendered once, as the trainer's first pass does
    model = create_model(args.arch, 19, args.form).train()
    if args.form == "gradual":
        set_alpha(model, 0.5, "share")  # mid-decay: the dense gradual form, capped
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), 5e-4, weight_decay=1e-4)
    weights = torch.ones(19)
    phases = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for step in range(args.steps + 2):
        if share is not None:
            share.update()
        t0 = time.perf_counter()
        batch = [data[(i % len(data), step * args.batch_size + i)] for i in range(args.batch_size)]
        images = torch.stack([b[0] for b in batch]).contiguous(memory_format=fmt)
        labels = torch.stack([b[1] for b in batch])
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        loss = weighted_ce(logits, labels, weights)
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        cap_cross_weights(model)
        t4 = time.perf_counter()
        if step >= 2:
            for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[name] += dt / args.steps
    return phases


def _busy(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def measure(args: argparse.Namespace, setting: str, load: bool) -> dict:
    drop = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")
    env = {k: v for k, v in os.environ.items() if k not in drop} | SETTINGS[setting].env
    cmd = [sys.executable, __file__, "--child", setting, "--arch", args.arch, "--size", args.size,
           "--batch-size", str(args.batch_size), "--threads", str(args.threads),
           "--steps", str(args.steps), "--form", args.form]  # fmt: skip
    busy = None
    if load:
        busy = multiprocessing.Process(target=_busy, args=(time.time() + 3600,), daemon=True)
        busy.start()
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True,
                             timeout=args.timeout).stdout  # fmt: skip
    except subprocess.TimeoutExpired:  # (spinning threads under load): a bound, not a number
        steps = args.steps + 2
        phases = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
        return {"setting": setting, "load": load, **phases, "step": args.timeout / steps,
                "img_per_s": args.batch_size * steps / args.timeout, "timed_out": True}  # fmt: skip
    finally:
        if busy is not None:
            busy.terminate()
    phases = json.loads(out.strip().splitlines()[-1])
    step = sum(phases.values())
    return {"setting": setting, "load": load, **phases, "step": step,
            "img_per_s": args.batch_size / step}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    from gradgroup.deploy.bench import cpu_model
    from gradgroup.deploy.table import format_markdown

    loads = (False, True) if args.load else (False,)
    rows = [measure(args, s, load) for s in args.settings for load in loads]
    base = next(r for r in rows if r["setting"] == rows[0]["setting"] and not r["load"])
    quiet = {r["setting"]: r for r in rows if not r["load"]}
    header = ["setting", "machine", "data ms", "forward ms", "backward ms", "optimizer ms",
              "img/s", "vs before (quiet)", "slowdown under load"]  # fmt: skip
    body = [[r["setting"], "1 core busy" if r["load"] else "quiet",
             *(f"{1000 * r[k]:.0f}" for k in ("data", "forward", "backward", "optimizer")),
             ("< " if r.get("timed_out") else "") + f"{r['img_per_s']:.2f}",
             f"{r['img_per_s'] / base['img_per_s']:.2f}x",
             (("> " if r.get("timed_out") else "")
              + f"{quiet[r['setting']]['img_per_s'] / r['img_per_s']:.1f}x") if r["load"] else ""]
            for r in rows]  # fmt: skip
    print(format_markdown(header, body))
    form = "gradual (alpha 0.5, share, capped)" if args.form == "gradual" else "grouped"
    print(f"\n{args.arch} {form} at {args.size}, batch "
          f"{args.batch_size}, {args.threads} torch threads, {cpu_model()}; "
          "mean of the timed steps.")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
