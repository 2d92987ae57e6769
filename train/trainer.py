"""The gradual-grouping trainer: ``train(TrainConfig) -> TrainResult``.

ERFNet's recipe (Adam 5e-4, weight decay 1e-4, poly lr 0.9, class-weighted cross-entropy with
ignore 255, flip + scale/crop) with the gradual-grouping schedule on top:

- ``gradual``: the model starts dense (Form.GRADUAL, alpha = 1); alpha follows a shape of
  :mod:`.schedules` over the decay epochs (:class:`.recipe.Plan`), and the moment it reaches 0
  every gradual layer becomes a true grouped conv (Adam's moments carried over as their diagonal
  blocks), so the last ``finetune_epochs`` run at the grouped model's speed;
- ``scratch``: the grouped model from the first step;
- ``dense``: the gradual form kept at alpha = 1, the dense reference.

An epoch is ``iters_per_epoch`` iterations (default: one pass over the data), so runs scale to any
budget. Every iteration reseeds torch from (seed, rank, iteration) and the data stream is a function
of the iteration (:mod:`.data`), which is what makes ``resume`` continue bit-exactly from a
checkpoint taken at an epoch end, on Ctrl-C or when ``max_minutes`` runs out.

Output folder: ``config.json``, ``run.json`` (versions, command line, settings), ``metrics.jsonl``
(one line per epoch), ``last.pt``, ``best.pt``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Subset

from gradgroup.deploy.errors import InputError, RunError
from gradgroup.deploy.fileio import check_writable, folder_lock, to_json, write_text_atomic
from gradgroup.deploy.preprocess import Preprocess
from gradgroup.deploy.provenance import write_run_record

from .checkpoint import rng_states, set_rng_states
from .cores import CoreShare, thread_limit
from .data import Augment, LabelledDataset, SegDataset, StreamSampler, class_weights, spread
from .distributed import DistInfo, all_reduce_sum, barrier, broadcast_buffers, setup, teardown
from .evaluate import amp_dtype, autocast, denormals_flushed, evaluate_model, recalibrate_bn
from .grouping import Form, cap_cross_weights, cross_ratios, gradual_layers, set_alpha
from .models import create_model
from .recipe import (
    RESUMABLE_CHANGES,
    DivergenceGuard,
    EncoderNet,
    Plan,
    RunState,
    TrainConfig,
    TrainResult,
    convert_with_optimizer,
    iteration_seed,
    weighted_ce,
)

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainResult", "train"]


def train(
    cfg: TrainConfig,
    train_set: LabelledDataset | None = None,
    val_set: LabelledDataset | None = None,
) -> TrainResult:
    """Train a model; see the module docstring for the schedules and the output folder.

    Args:
        cfg: the run's configuration.
        train_set, val_set: datasets to use instead of opening ``cfg.data`` (API users, tests).

    Raises:
        InputError: bad configuration, data, or a resume that does not match the checkpoint; an
            unwritable ``cfg.out`` or one another training is using.
        RunError: an output could not be written (disk full, file size limit), or the loss
            stayed non-finite for DivergenceGuard.limit steps in a row.
    """
    check_writable(cfg.out, "--out", folder=True)
    info = setup(cfg.device)
    try:
        # One training per folder: a second one into the same --out would mix the two runs.
        with (
            folder_lock(cfg.out, "training") if info.main else nullcontext(),
            denormals_flushed(info.device),
        ):
            return _Run(cfg, info, train_set, val_set).fit()
    finally:
        teardown(info)


def _core_share(cfg: TrainConfig, info: DistInfo) -> CoreShare | None:
    """Fixed ``cfg.threads``, or (one CPU process) threads that follow the machine's load."""
    if info.device.type != "cpu":
        return None
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
        return None
    if info.ddp:
        return None
    share = CoreShare(thread_limit())
    share.sample()
    return share


def _open(cfg: TrainConfig, split: str, given: LabelledDataset | None) -> LabelledDataset:
    if given is not None:
        return given
    from gradgroup.deploy.datasets import open_dataset

    synthetic = cfg.data == "synthetic"
    length = cfg.train_length if split == "train" else cfg.val_length
    return open_dataset(cfg.data, split, size=cfg.size if synthetic else None, length=length)


class _Run:
    """One training run's state; ``fit`` is the loop, read top to bottom."""

    def __init__(self, cfg, info: DistInfo, train_set, val_set) -> None:
        self.start = time.perf_counter()  # the time budget covers data loading too
        self.cfg, self.info, self.out = cfg, info, Path(cfg.out)
        last = self.out / "last.pt"
        if cfg.resume and not last.is_file():
            raise InputError(f"--resume: {last} does not exist; start a new run without --resume")
        if not cfg.resume and last.is_file():
            raise InputError(
                f"{self.out} already holds a run (last.pt); pass --resume or pick another --out"
            )
        if cfg.init and not cfg.resume and not Path(cfg.init).is_file():
            raise InputError(f"--init {cfg.init} does not exist")
        self.spec = Preprocess(*cfg.size)
        # The checkpoint records the data spec (export and calib default to it); datasets passed
        # in by API have none.
        self.data_spec = cfg.data if train_set is None and val_set is None else None
        source = _open(cfg, "train", train_set)
        self.classes = source.classes
        self.num_classes = source.classes.num_classes
        augment = Augment() if cfg.augment else None
        self.train_data = SegDataset(source, self.spec, augment, seed=cfg.seed)
        val_source = _open(cfg, "val", val_set)
        self.val_data = SegDataset(val_source, self.spec, limit=cfg.val_limit)
        self.train_data.cache()  # every rank its own: shards move between ranks from pass to pass
        self.val_data.cache()
        ipe = cfg.iters_per_epoch or max(1, len(self.train_data) // (cfg.batch_size * info.world))
        self.plan = Plan.build(cfg, ipe)
        self.cores = _core_share(cfg, info)
        self.fast_layers: list[str] = []  # layers trained at the full lr (see param_groups)
        self.guard = DivergenceGuard()
        self.bar = None  # the progress bar of run(); fit_budget updates its total

    # -- model, optimizer, checkpoint -------------------------------------------------------
    def build(self, ckpt: dict | None) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        form = Form.GROUPED if cfg.schedule == "scratch" else Form.GRADUAL
        self.model = create_model(cfg.arch, self.num_classes, form)
        if ckpt is None and cfg.init:
            from .checkpoint import init_from

            report = init_from(self.model, cfg.init)
            (log.warning if report.mismatched or report.missing else log.info)(report.summary())
        if cfg.schedule == "gradual" and not gradual_layers(self.model):
            log.warning("%s has no grouped layers: the gradual schedule trains it dense", cfg.arch)
        self.head = nn.Conv2d(128, self.num_classes, 1) if self.plan.encoder_iters else None
        if ckpt is not None:
            from .checkpoint import model_from_checkpoint

            self.model = model_from_checkpoint(ckpt)
            if self.head is not None:
                self.head.load_state_dict(ckpt["encoder_head"])
        dev = self.info.device
        self.model.to(dev)
        if self.head is not None:
            self.head.to(dev)
        # channels_last on every device: oneDNN's CPU convs are faster in it too (measured 1.2x
        # for a d-light step; with bf16 on AMX it is what makes bf16 pay).
        self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(
            self.param_groups(ckpt), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        # through self.plan: a run fitting a time budget replaces the plan between epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: self.plan.lr_factor(it)
        )
        fp16 = dev.type == "cuda" and cfg.amp and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        self.state = RunState()
        if ckpt is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            self.scaler.load_state_dict(ckpt["scaler"])
            self.state = RunState.from_dict(ckpt["run"])
            if "epoch_iters" in ckpt:  # as re-sized to fit the time budget so far
                self.plan = self.plan.resized(0, ckpt["epoch_iters"])
            self.weights = ckpt["class_weights"].to(dev)
            set_rng_states(ckpt["rng"])
        else:
            weights, used = class_weights(
                self.train_data, self.num_classes, cfg.class_weight_samples, progress=cfg.progress
            )
            self.weights = weights.to(dev)
            log.info("class weights from %d label maps: %s", used,
                     " ".join(f"{w:.2f}" for w in weights.tolist()))  # fmt: skip
        self.wall_before = self.state.wall
        self.wrap()

    def param_groups(self, ckpt: dict | None) -> list[dict]:
        """One group at ``lr``; from a trained start (``start_lr_scale`` < 1) the layers being
        grouped stay at ``lr`` (first group) and everything else gets ``lr * start_lr_scale``.

        The layers are named in the checkpoint, so a run resumed after conversion (when no layer
        is gradual any more) rebuilds the same groups.
        """
        cfg = self.cfg
        if ckpt is not None:
            self.fast_layers = list(ckpt.get("fast_layers", []))
        elif cfg.init and cfg.schedule == "gradual" and cfg.start_lr_scale < 1:
            self.fast_layers = [name for name, _ in gradual_layers(self.model)]
        head = list(self.head.parameters()) if self.head else []
        if not self.fast_layers:
            return [{"params": list(self.model.parameters()) + head}]
        layers = set(self.fast_layers)
        named = list(self.model.named_parameters())
        fast = [p for n, p in named if n.rsplit(".", 1)[0] in layers]
        slow = [p for n, p in named if n.rsplit(".", 1)[0] not in layers] + head
        return [{"params": fast}, {"params": slow, "lr": cfg.lr * cfg.start_lr_scale}]

    def wrap(self) -> None:
        """(Re)build the module the loop calls: encoder + head in stage 1, DDP-wrapped if needed."""
        encoder_stage = self.state.iteration < self.plan.encoder_iters
        net = EncoderNet(self.model, self.head) if encoder_stage else self.model
        if self.info.ddp:
            cuda = self.info.device.type == "cuda"
            net = DDP(net, device_ids=[self.info.device.index] if cuda else None)
        self.net = net

    def convert(self) -> None:
        """alpha reached 0: swap in true grouped convs, carry Adam's state, re-wrap for DDP."""
        n = convert_with_optimizer(self.model, self.optimizer)
        log.info("alpha reached 0 at iteration %d: %d layers are now grouped convs",
                 self.state.iteration, n)  # fmt: skip
        self.wrap()

    def checkpoint(self, name: str = "last.pt") -> Path:
        from .checkpoint import model_state, save_checkpoint

        state = model_state(self.model, self.cfg.arch, self.classes, self.spec, self.data_spec)
        self.state.wall = self.elapsed()
        state.update(
            epoch=self.plan.epoch_of(self.state.iteration),
            epoch_iters=list(self.plan.epoch_iters),
            iteration=self.state.iteration,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            rng=rng_states(),
            config=self.cfg.to_dict(),
            metrics=list(self.state.history),
            run=self.state.to_dict(),
            class_weights=self.weights.cpu(),
            fast_layers=self.fast_layers,
        )
        if self.head is not None:
            state["encoder_head"] = self.head.state_dict()
        return save_checkpoint(self.out / name, state)

    def load(self) -> dict | None:
        if not self.cfg.resume:
            return None
        from .checkpoint import load_checkpoint

        ckpt = load_checkpoint(self.out / "last.pt", map_location="cpu")
        old = TrainConfig.from_dict(ckpt["config"])
        now = self.cfg.to_dict()
        changed = [
            k for k, v in old.to_dict().items() if k not in RESUMABLE_CHANGES and now[k] != v
        ]
        if changed:
            diffs = ", ".join(
                f"{k}={getattr(old, k)!r} (now {getattr(self.cfg, k)!r})" for k in changed
            )
            raise InputError(f"cannot resume {self.out}: the run was started with {diffs}")
        if old.epochs != self.cfg.epochs:
            log.warning("resuming with epochs=%d (was %d): lr and alpha schedules are re-planned",
                        self.cfg.epochs, old.epochs)  # fmt: skip
        return ckpt

    # -- the loop -----------------------------------------------------------------------------
    def loader(self, start: int, count: int) -> DataLoader:
        cfg, info = self.cfg, self.info
        n = len(self.train_data)
        sampler = StreamSampler(n, cfg.batch_size, cfg.seed, start, count, info.rank, info.world)
        return DataLoader(
            self.train_data,
            cfg.batch_size,
            sampler=sampler,
            num_workers=cfg.workers,
            pin_memory=info.device.type == "cuda",
            generator=torch.Generator().manual_seed(cfg.seed + start),  # keeps global RNG untouched
        )

    def val_loader(self) -> DataLoader:
        n, rank, world = len(self.val_data), self.info.rank, self.info.world
        shard = Subset(self.val_data, list(range(rank, n, world)))  # each image once, no padding
        return DataLoader(shard, self.cfg.batch_size)  # in this process: read once, then cached

    def fit(self) -> TrainResult:
        cfg, info = self.cfg, self.info
        ckpt = self.load()
        self.build(ckpt)
        if info.main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_config()
            _rewrite_metrics(self.out / "metrics.jsonl", self.state.history)
        deadline = self.start + cfg.max_minutes * 60 if cfg.max_minutes else None
        status = "done"
        from tqdm.contrib.logging import logging_redirect_tqdm

        with _stop_on_signals() as stop, logging_redirect_tqdm():  # log lines above the bar
            self.stop = stop
            status = self.run(stop, deadline)
        if info.main:
            _write_curves(self.out, self.state.history, f"{cfg.arch} ({cfg.schedule})")
        if status == "interrupted" and info.main:
            log.warning(
                "interrupted at iteration %d; last.pt is saved. Continue with: "
                "gradgroup train --out %s --resume",
                self.state.iteration,
                self.out,
            )
        barrier(info)
        return self._result(status, self.elapsed())

    def run(self, stop: threading.Event, deadline: float | None) -> str:
        """Iterate epoch by epoch until done, out of time or interrupted; returns the status."""
        from tqdm import tqdm

        cfg, info, st = self.cfg, self.info, self.state
        bar = tqdm(total=self.plan.total_iters, initial=st.iteration, unit="it",
                   dynamic_ncols=True, disable=not (info.main and cfg.progress))  # fmt: skip
        self.bar = bar
        status = None
        if st.pending_epoch_end is not None and not self.end_epoch(*st.pending_epoch_end):
            status = "interrupted"  # stopped again during the validation it owed
        while st.iteration < self.plan.total_iters and status is None:
            plan = self.plan  # re-sized between epochs when fitting a time budget
            epoch = plan.epoch_of(st.iteration)
            end = plan.epoch_start(epoch + 1)
            if (st.iteration < plan.encoder_iters) != isinstance(_unwrap(self.net), EncoderNet):
                self.wrap()  # the encoder stage is over
            bar.set_description(f"epoch {epoch + 1}/{plan.epochs}")
            self.model.train()
            t0 = time.perf_counter()
            try:
                for images, labels in self.loader(st.iteration, end - st.iteration):
                    if self.cores is not None:
                        self.cores.update()
                    loss = self.step(images, labels)
                    rate = (
                        cfg.batch_size * info.world * bar.format_dict["rate"]
                        if bar.format_dict.get("rate")
                        else 0.0
                    )
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{st.lr:.2e}", alpha=f"{st.alpha:.3f}",
                                    img_s=f"{rate:.1f}", refresh=False)  # fmt: skip
                    late = deadline is not None and time.perf_counter() > deadline
                    status = self._agree(
                        "interrupted" if stop.is_set() else "budget" if late else None
                    )
                    if status:
                        break
            except Exception:
                # Ctrl-C also reaches the DataLoader workers; anything else is a bug.
                if not stop.is_set():
                    raise
                status = "interrupted"
            st.seconds += time.perf_counter() - t0
            if st.iteration == end or status == "budget":
                if not self.end_epoch(epoch, partial=st.iteration != end):
                    status = "interrupted"
            elif info.main:
                self.checkpoint()
        bar.close()
        return status or "done"

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimizer step at ``state.iteration``; returns the batch loss."""
        cfg, info, plan, st = self.cfg, self.info, self.plan, self.state
        it = st.iteration
        torch.manual_seed(iteration_seed(cfg.seed, info.rank, it))  # dropout: a function of it
        st.alpha = plan.alpha(it)
        if cfg.schedule == "gradual" and gradual_layers(self.model):
            set_alpha(self.model, st.alpha, cfg.layer_alpha)
            if st.alpha == 0.0 and it >= plan.encoder_iters:
                self.convert()
        dev = info.device
        images = images.to(dev, non_blocking=True).contiguous(memory_format=torch.channels_last)
        labels = labels.to(dev, non_blocking=True)
        # fp16's GradScaler skips overflowing steps itself; bf16 and fp32 need the guard, which
        # undoes a skipped step's BatchNorm updates from this snapshot.
        guarded = not self.scaler.is_enabled()
        bn_stats = self.guard.snapshot(self.model) if guarded else []
        with autocast(dev, cfg.amp):
            logits = self.net(images)
        if it < plan.encoder_iters:  # encoder stage: labels at the encoder's 1/8 resolution
            labels = F.interpolate(labels[:, None].float(), size=logits.shape[-2:], mode="nearest")
            labels = labels[:, 0].long()
        loss = weighted_ce(logits, labels, self.weights)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        stepped = not guarded or self.guard.finite(self.trained_params())
        if stepped:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.guard.restore(bn_stats)
            log.warning("iteration %d: loss or gradients not finite, step skipped (%d so far)",
                        it, self.guard.skipped)  # fmt: skip
            if self.guard.diverged:
                raise RunError(
                    f"training diverged: gradients not finite for {self.guard.limit} steps in a "
                    f"row at iteration {it}"
                    + (" (bf16 autocast: retry with --no-amp)" if cfg.amp else "")
                )
        if cfg.cross_cap and 0.0 < st.alpha < 1.0:
            cap_cross_weights(self.model)
        st.lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        value = float(loss.detach())
        st.iteration += 1
        if stepped:
            st.loss_sum += value
            st.loss_n += 1
        return value

    def elapsed(self) -> float:
        """Wall seconds of the run so far, earlier processes (before a resume) included."""
        return self.wall_before + time.perf_counter() - self.start

    def fit_budget(self, epoch: int, step_seconds: float, end_seconds: float) -> None:
        """With ``fit_minutes``: re-size the epochs after ``epoch`` so the run ends on time,
        from what the epoch just done cost (seconds per iteration, data included, and its epoch
        end). The schedules are functions of epochs done, so lr and alpha stay continuous; the
        run keeps every epoch (at least one iteration each), so alpha still reaches its end."""
        cfg, plan = self.cfg, self.plan
        left = plan.epochs - epoch - 1
        if cfg.fit_minutes is None or left <= 0:
            return
        remaining = cfg.fit_minutes * 60 - self.elapsed()
        ipe = max(1, int((remaining / left - end_seconds) / max(step_seconds, 1e-9)))
        if self.info.ddp:  # every rank the same plan: the most cautious one
            value = torch.tensor([ipe], device=self.info.device)
            torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
            ipe = int(value)
        if ipe == plan.epoch_iters[epoch + 1]:
            return
        log.info(
            "fitting %.1f min: %d epoch%s left at %d iterations (was %d; %.2f s/iteration, "
            "%.1f s per epoch end measured)", cfg.fit_minutes, left, "s" if left > 1 else "", ipe,
            plan.epoch_iters[epoch + 1], step_seconds, end_seconds,
        )  # fmt: skip
        self.plan = plan.resized(epoch + 1, ipe)
        if self.bar is not None:
            self.bar.total = self.plan.total_iters
            self.bar.refresh()

    def trained_params(self) -> list[nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _agree(self, status: str | None) -> str | None:
        """Every rank stops at the same iteration (any rank's Ctrl-C or deadline counts)."""
        if not self.info.ddp:
            return status
        code = torch.tensor(
            [{None: 0, "budget": 1, "interrupted": 2}[status]], device=self.info.device
        )
        torch.distributed.all_reduce(code, op=torch.distributed.ReduceOp.MAX)
        return {0: None, 1: "budget", 2: "interrupted"}[int(code)]

    def end_epoch(self, epoch: int, partial: bool) -> bool:
        """Validate, log a metrics line, write last.pt (and best.pt on a deployable improvement).

        A stop request during validation ends it within a batch: last.pt then records the
        validation as owed (``pending_epoch_end``) and a resumed run does it first. Returns
        whether the epoch end was completed.
        """
        try:
            self._end_epoch(epoch, partial)
        except _Stopped:
            self.state.pending_epoch_end = [epoch, partial]
            if self.info.main:
                self.checkpoint()
            return False
        self.state.pending_epoch_end = None
        return True

    def _end_epoch(self, epoch: int, partial: bool) -> None:
        t0 = time.perf_counter()
        cfg, info, plan, st = self.cfg, self.info, self.plan, self.state
        broadcast_buffers(self.model, info)  # BN statistics differ per rank; rank 0's are kept
        totals = all_reduce_sum(
            torch.tensor([st.loss_sum, float(st.loss_n)], dtype=torch.float64), info
        )
        main_stage = st.iteration > plan.encoder_iters
        ratios = cross_ratios(self.model) if gradual_layers(self.model) else None
        metrics = self.validate() if main_stage else None
        converted = None
        if main_stage and self._converts_next():  # score the grouped model before fine-tuning
            set_alpha(self.model, 0.0)
            self.convert()
            converted = self.validate()
        done = st.iteration - plan.epoch_start(epoch)
        loop_seconds = st.seconds
        row = {
            "epoch": epoch + 1, "iteration": st.iteration,
            "stage": "main" if main_stage else "encoder",
            "alpha": st.alpha, "loss": float(totals[0] / max(totals[1], 1.0)), "lr": st.lr,
            "miou": metrics.miou if metrics else None,
            "pixel_accuracy": metrics.pixel_accuracy if metrics else None,
            "iou": metrics.to_dict(self.classes.names)["iou"] if metrics else None,
            "cross_ratio": ratios,
            "seconds": round(st.seconds, 3),
            "img_per_s": round(done * cfg.batch_size * info.world / max(st.seconds, 1e-9), 2),
        }  # fmt: skip
        if converted is not None:
            row["converted_miou"] = converted.miou
            metrics, st.alpha = converted, 0.0
        if partial:
            row["partial"] = True
        st.history.append(row)
        st.loss_sum, st.loss_n, st.seconds = 0.0, 0, 0.0
        st.pending_epoch_end = None
        # A gradual model is only deployable once alpha has reached its end: best.pt must be one.
        deployable = cfg.schedule != "gradual" or st.alpha <= cfg.alpha_end
        improved = (
            deployable
            and metrics is not None
            and (st.best_miou is None or metrics.miou > st.best_miou)
        )
        if improved:
            st.best_miou = metrics.miou
        if not partial:
            self.fit_budget(epoch, loop_seconds / max(done, 1), time.perf_counter() - t0)
        if not info.main:
            return
        _rewrite_metrics(self.out / "metrics.jsonl", st.history)
        self.checkpoint()
        if improved:
            self.checkpoint("best.pt")
        miou = f"mIoU {row['miou']:.4f}" if metrics else "encoder stage"
        if converted is not None:
            miou += f", converted to grouped convs: mIoU {converted.miou:.4f}"
        log.info(
            "epoch %d/%d: loss %.4f alpha %.3f %s (%.1f s, %.1f img/s)", epoch + 1, plan.epochs,
            row["loss"], row["alpha"], miou, row["seconds"], row["img_per_s"],
        )  # fmt: skip

    def validate(self):
        """Validation metrics, BatchNorm statistics re-estimated first (``bn_recalib``).

        Both in fp32 whatever ``amp`` trains in: the score is that of the model as exported.
        """
        if self.cfg.bn_recalib:
            recalibrate_bn(self.model, self._recalib_batches(), self.info.device, self._stopping)
        return evaluate_model(
            self.model, self.val_loader(), self.num_classes, self.info.device, self.info,
            stop=self._stopping,
        )  # fmt: skip

    def _stopping(self) -> None:
        """Raise _Stopped when a stop was asked for (single process: ranks must agree in DDP,
        where validation runs to its end)."""
        if not self.info.ddp and getattr(self, "stop", None) is not None and self.stop.is_set():
            raise _Stopped

    def _recalib_batches(self) -> list[torch.Tensor]:
        """``bn_recalib`` training images without augmentation, spread over the set, batched."""
        images = [self.train_data[i][0] for i in spread(len(self.train_data), self.cfg.bn_recalib)]
        size = self.cfg.batch_size
        return [torch.stack(images[i : i + size]) for i in range(0, len(images), size)]

    def _converts_next(self) -> bool:
        """alpha is 0 from the next iteration on: the decay ends with this epoch (also when no
        fine-tuning follows)."""
        st, plan = self.state, self.plan
        return (
            self.cfg.schedule == "gradual"
            and bool(gradual_layers(self.model))
            and plan.alpha(st.iteration) == 0.0
        )

    def precision(self) -> str:
        """What the forward and backward passes compute in (``amp`` resolved on this device)."""
        dtype = amp_dtype(self.info.device, self.cfg.amp)
        return "float32" if dtype is None else str(dtype).removeprefix("torch.")

    def _write_config(self) -> None:
        precision = self.precision()
        log.info("training in %s on %s", precision, self.info.device)
        data = {**self.cfg.to_dict(), "precision": precision,
                "plan": asdict(self.plan), "world_size": self.info.world,
                "classes": self.classes.to_dict(), "preprocess": asdict(self.spec)}  # fmt: skip
        write_text_atomic(self.out / "config.json", to_json(data, indent=2, default=str) + "\n")
        write_run_record(self.out, self.cfg.to_dict())  # versions, command line, settings

    def _result(self, status: str, seconds: float) -> TrainResult:
        hist = self.state.history
        best = self.out / "best.pt"
        return TrainResult(
            out=str(self.out), last=str(self.out / "last.pt"),
            best=str(best) if best.is_file() else None, arch=self.cfg.arch,
            schedule=self.cfg.schedule, epochs=self.plan.epoch_of(self.state.iteration),
            iterations=self.state.iteration, alpha=self.state.alpha,
            converted=Form(self.model.form) is Form.GRADUAL and not gradual_layers(self.model)
            and self.cfg.schedule == "gradual",
            miou=hist[-1]["miou"] if hist else None, best_miou=self.state.best_miou,
            seconds=seconds, status=status,
        )  # fmt: skip


def _write_curves(out: Path, history: list[dict], title: str) -> None:
    """OUT/curves.png, when matplotlib is installed (it is with the train extra)."""
    from gradgroup.deploy.errors import MissingDependencyError

    from .curves import plot_curves

    try:
        plot_curves({title: history}, out / "curves.png", title)
    except MissingDependencyError:
        log.debug("matplotlib is absent: no curves.png")


def _rewrite_metrics(path: Path, history: list[dict]) -> None:
    """Atomically: metrics.jsonl as of the checkpoint (a crashed epoch's lines are dropped)."""
    write_text_atomic(path, "".join(to_json(row) + "\n" for row in history))


class _Stopped(Exception):
    """A stop request reached a validation loop."""


@contextmanager
def _stop_on_signals():
    """The first SIGINT (Ctrl-C) or SIGTERM asks the loop to stop at the next iteration or
    validation batch, checkpointed; a second one aborts."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, DDP) else net
