"""The training recipe as data and pure pieces: the run's configuration, its plan in iterations
(lr and alpha per iteration), the loss, and the optimizer surgery that moves Adam's state onto true
grouped convs when alpha reaches 0.

Kept apart from the loop in :mod:`.trainer` (which re-exports ``TrainConfig``/``TrainResult``) so
each piece can be tested on its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gradgroup.deploy.errors import InputError

from .grouping import LAYER_ALPHA, convert_to_grouped, gradual_layers
from .schedules import blend, check_schedule

log = logging.getLogger(__name__)


SCHEDULE_CHOICES = ("gradual", "scratch", "dense")
# Fields a resumed run may change without breaking exactness of what was already trained.
# Settings added after runs were first saved, with the value such a run trained with: a run
# resumed from a config.json or last.pt that lacks them goes on as it started.
ADDED_LATER = {
    "layer_alpha": "uniform",
    "cross_cap": False,
    "bn_recalib": 0,
    "init": None,
    "start_lr_scale": 1.0,
}

RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "max_minutes",
        "fit_minutes",
        "workers",
        "threads",
        "device",
        "progress",
        "out",
        "resume",
        "val_limit",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (``gradgroup train`` flags map 1:1 onto it)."""

    arch: str = "dg4-light"
    data: str = "synthetic"  # synthetic | cityscapes:DIR | folder:DIR
    size: tuple[int, int] = (256, 512)  # training (= model input) size, (H, W)
    epochs: int = 10  # main-stage epochs, fine-tuning included
    iters_per_epoch: int | None = None  # None: one pass over the training set
    batch_size: int = 6  # per process
    lr: float = 5e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    poly_power: float = 0.9
    workers: int = 2
    schedule: str = "gradual"
    alpha_shape: str = "linear"
    alpha_start: float = 1.0
    alpha_end: float = 0.0
    alpha_span: float = 1.0  # <= 1: fraction of the decay epochs' iterations; > 1: iterations
    finetune_epochs: int = 1  # last epochs at alpha = 0, as a true grouped model
    layer_alpha: str = "share"  # share: each layer's diagonal share follows the schedule
    cross_cap: bool = True  # hold cross-group RMS <= diagonal RMS while alpha decays
    bn_recalib: int = 64  # training images BatchNorm statistics are re-estimated on (0: off)
    encoder_epochs: int = 0  # ERFNet's encoder-first stage (labels at 1/8), before `epochs`
    init: str | None = None  # start from this checkpoint's weights (the paper: a trained dense net)
    # With init and the gradual schedule: lr multiplier of every parameter outside the layers
    # being grouped (their structure is final, so they are fine-tuned, not re-learned).
    start_lr_scale: float = 1.0
    device: str = "auto"
    threads: int | None = None  # CPU intra-op threads; None: the cores other processes leave free
    amp: bool = True  # bf16/fp16 autocast on CUDA, bf16 on CPUs with AMX; fp32 elsewhere
    out: str = "runs/train"
    resume: bool = False
    seed: int = 0
    max_minutes: float | None = None  # stop cleanly (checkpointed) after this long
    # Re-size the epochs still to come after each one (from its measured cost) so the whole run
    # takes about this long; every epoch still runs, so the schedules finish.
    fit_minutes: float | None = None
    train_length: int | None = None  # synthetic scenes / cap on files (None: dataset default)
    val_length: int | None = None
    val_limit: int | None = None  # evaluate on at most this many validation images
    class_weight_samples: int = 200  # label maps the class weights are counted over
    augment: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        h, w = self.size
        if h <= 0 or w <= 0 or h % 8 or w % 8:
            raise InputError(
                f"training size {h}x{w} must be positive multiples of 8 (ERFNet downsamples 8x)"
            )
        if self.schedule not in SCHEDULE_CHOICES:
            raise InputError(
                f"schedule {self.schedule!r} must be one of {', '.join(SCHEDULE_CHOICES)}"
            )
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name}={getattr(self, name)} must be at least 1")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads={self.threads} must be at least 1")
        for name in ("finetune_epochs", "encoder_epochs", "workers", "bn_recalib"):
            if getattr(self, name) < 0:
                raise InputError(f"{name}={getattr(self, name)} must not be negative")
        if self.iters_per_epoch is not None and self.iters_per_epoch < 1:
            raise InputError(f"iters_per_epoch={self.iters_per_epoch} must be at least 1")
        if self.schedule == "gradual" and self.finetune_epochs >= self.epochs:
            raise InputError(
                f"finetune_epochs={self.finetune_epochs} leaves none of {self.epochs} epochs for "
                "alpha to decay; raise --epochs or lower --finetune-epochs"
            )
        if self.layer_alpha not in LAYER_ALPHA:
            raise InputError(
                f"layer_alpha={self.layer_alpha!r} must be one of {', '.join(LAYER_ALPHA)}"
            )
        if self.alpha_span <= 0:
            raise InputError(f"alpha_span={self.alpha_span} must be positive")
        if self.lr <= 0:
            raise InputError(f"lr={self.lr} must be positive")
        if not 0 < self.start_lr_scale <= 1:
            raise InputError(f"start_lr_scale={self.start_lr_scale} must be in (0, 1]")
        for name in ("max_minutes", "fit_minutes"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise InputError(f"{name}={getattr(self, name)} must be positive")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A saved config; a setting it predates takes the value the run used (ADDED_LATER)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in {**ADDED_LATER, **data}.items() if k in names}
        for key in ("size", "betas"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)


@dataclass(frozen=True)
class TrainResult:
    """What a run produced."""

    out: str
    last: str
    best: str | None
    arch: str
    schedule: str
    epochs: int  # completed epochs, encoder stage included
    iterations: int
    alpha: float
    converted: bool  # grouped layers are true grouped convs
    miou: float | None  # last validation
    best_miou: float | None
    seconds: float
    status: str  # done | budget | interrupted

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    """A run in iterations: epoch lengths, stages, and lr and alpha as functions of the iteration.

    lr and alpha are functions of progress counted in epochs (epoch index + fraction of it done),
    so re-sizing the epochs still to come (:meth:`resized`, a run fitting a time budget) keeps
    both continuous; with equal epochs this is the same as counting iterations.
    """

    epoch_iters: tuple[int, ...]  # iterations of each epoch, encoder stage first
    encoder_epochs: int  # encoder-first stage
    decay_epochs: int  # main-stage epochs before fine-tuning (gradual only)
    alpha_span: float  # epochs alpha takes from start to end
    schedule: str
    alpha_shape: str
    alpha_start: float
    alpha_end: float
    poly_power: float

    @classmethod
    def build(cls, cfg: TrainConfig, ipe: int) -> Plan:
        """The plan of ``cfg`` with ``ipe`` iterations per epoch."""
        decay = cfg.epochs - cfg.finetune_epochs if cfg.schedule == "gradual" else 0
        span = cfg.alpha_span * decay if cfg.alpha_span <= 1 else cfg.alpha_span / ipe
        span = max(span, 1 / ipe)  # at least one iteration
        if cfg.schedule == "gradual" and span > decay:
            log.warning(
                "alpha span %d exceeds the %d decay iterations: fine-tuning starts dense",
                round(span * ipe),
                decay * ipe,
            )
        if cfg.schedule == "gradual" and cfg.alpha_end > 0:
            log.warning(
                "alpha ends at %g > 0: the layers stay dense-with-mask and never become grouped",
                cfg.alpha_end,
            )
        check_schedule(cfg.alpha_shape, cfg.alpha_start, cfg.alpha_end)
        return cls(
            (ipe,) * (cfg.encoder_epochs + cfg.epochs), cfg.encoder_epochs, decay, span,
            cfg.schedule, cfg.alpha_shape, cfg.alpha_start, cfg.alpha_end, cfg.poly_power,
        )  # fmt: skip

    def resized(self, first: int, iters: int | list[int]) -> Plan:
        """The plan with epochs ``first``.. re-sized to ``iters`` iterations each (or to the
        given lengths); earlier epochs keep theirs."""
        rest = self.epochs - first
        lengths = [iters] * rest if isinstance(iters, int) else list(iters)[:rest]
        lengths += [self.epoch_iters[-1]] * (rest - len(lengths))
        return dataclasses.replace(self, epoch_iters=(*self.epoch_iters[:first], *lengths))

    @property
    def epochs(self) -> int:  # all epochs, encoder stage included
        return len(self.epoch_iters)

    @property
    def total_iters(self) -> int:
        return self.epoch_start(self.epochs)

    @property
    def encoder_iters(self) -> int:
        return self.epoch_start(self.encoder_epochs)

    @property
    def decay_iters(self) -> int:  # main-stage iterations before fine-tuning
        return self.epoch_start(self.encoder_epochs + self.decay_epochs) - self.encoder_iters

    def epoch_start(self, epoch: int) -> int:
        """The iteration epoch ``epoch`` (0-based) starts at (``epochs``: the end of the run)."""
        return sum(self.epoch_iters[:epoch])

    def epoch_of(self, it: int) -> int:
        """The epoch iteration ``it`` belongs to (``epochs`` once the run is over)."""
        ends = itertools.accumulate(self.epoch_iters)
        return next((e for e, end in enumerate(ends) if it < end), self.epochs)

    def progress(self, it: int) -> float:
        """Epochs done before iteration ``it``, fractions included."""
        e = self.epoch_of(it)
        if e == self.epochs:
            return float(e)
        return e + (it - self.epoch_start(e)) / self.epoch_iters[e]

    def lr_factor(self, it: int) -> float:
        """Poly decay (1 - t)^power, restarted for the main stage as ERFNet does."""
        p, enc = self.progress(it), self.encoder_epochs
        t = p / enc if p < enc else (p - enc) / max(1, self.epochs - enc)
        return (1.0 - min(t, 1.0)) ** self.poly_power

    def alpha(self, it: int) -> float:
        """alpha for iteration ``it``: held at start in the encoder stage, then the schedule."""
        if self.schedule != "gradual":
            return 1.0 if self.schedule == "dense" else 0.0
        p = self.progress(it) - self.encoder_epochs
        if p < 0:
            return self.alpha_start
        return blend(self.alpha_shape, p / self.alpha_span, self.alpha_start, self.alpha_end)


@dataclass
class RunState:
    """Loop counters that a checkpoint must restore besides weights and optimizer."""

    iteration: int = 0
    alpha: float = 1.0
    best_miou: float | None = None
    history: list = dataclasses.field(default_factory=list)
    loss_sum: float = 0.0  # of the current epoch, so a mid-epoch resume reports the whole epoch
    loss_n: int = 0
    seconds: float = 0.0
    wall: float = 0.0  # wall seconds of the run up to the last checkpoint (setup, validation too)
    lr: float = 0.0
    pending_epoch_end: list | None = None  # [epoch, partial] whose validation was interrupted

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunState:
        return cls(**data)


class EncoderNet(nn.Module):
    """ERFNet's first stage: encoder + 1x1 classifier at 1/8 resolution (shares the weights)."""

    def __init__(self, model: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.initial_block, self.encoder, self.head = model.initial_block, model.encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.initial_block(x)))


def _diagonal_blocks(t: torch.Tensor, groups: int) -> torch.Tensor:
    """(out, in, kh, kw) dense tensor -> (out, in/groups, kh, kw), the groups' diagonal blocks."""
    o, i = t.shape[0] // groups, t.shape[1] // groups
    blocks = t.reshape(groups, o, groups, i, *t.shape[2:]).diagonal(dim1=0, dim2=2)
    return blocks.movedim(-1, 0).reshape(groups * o, i, *t.shape[2:]).clone()


def convert_with_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """``convert_to_grouped`` keeping the optimizer in step with the new parameters.

    Each converted weight takes the place of the dense one in its param group (same position,
    so a checkpoint's optimizer state loads into a model rebuilt converted), and every per-element
    state tensor (Adam's moments) keeps its diagonal blocks: on the diagonal the grouped conv's
    gradient equals the dense one's, so the next steps are what the dense layer at alpha = 0 would
    have taken. Returns the number of converted layers.
    """
    old = {name: (m.weight, m.bias, m.groups) for name, m in gradual_layers(model)}
    n = convert_to_grouped(model)
    for name, (weight, bias, groups) in old.items():
        new = model.get_submodule(name)
        _swap_param(optimizer, weight, new.weight, lambda t, g=groups: _diagonal_blocks(t, g))
        if bias is not None:
            _swap_param(optimizer, bias, new.bias, lambda t: t.clone())
    return n


def _swap_param(optimizer, old: nn.Parameter, new: nn.Parameter, transform) -> None:
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if state:
        optimizer.state[new] = {
            k: transform(v) if torch.is_tensor(v) and v.shape == old.shape and v.dim() else v
            for k, v in state.items()
        }


class DivergenceGuard:
    """Skips an optimizer step whose gradients are not finite and undoes what its forward pass
    did to the BatchNorm statistics, so one overflowing batch (bf16 autocast) cannot turn every
    weight into NaN; after ``limit`` such steps in a row the run has diverged and stops.

    Gradients are checked after DDP's all-reduce, so every rank skips the same steps.
    """

    def __init__(self, limit: int = 10) -> None:
        self.limit = limit
        self.in_a_row = 0
        self.skipped = 0

    @staticmethod
    def snapshot(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The running statistics a forward pass in train mode is about to change."""
        return [
            (buf, buf.clone())
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
            for buf in (m.running_mean, m.running_var, m.num_batches_tracked)
        ]

    def finite(self, params: list[nn.Parameter]) -> bool:
        """Whether every gradient is finite; counts the steps that are not."""
        grads = [p.grad for p in params if p.grad is not None]
        ok = bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()) if grads else True
        self.in_a_row = 0 if ok else self.in_a_row + 1
        self.skipped += not ok
        return ok

    @staticmethod
    def restore(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        for buf, copy in saved:
            buf.copy_(copy)

    @property
    def diverged(self) -> bool:
        return self.in_a_row >= self.limit


def iteration_seed(seed: int, rank: int, iteration: int) -> int:
    """Seed of one process's torch RNG at one iteration, so dropout replays on resume."""
    return ((seed * 1_000_003 + rank) * 1_000_000_007 + iteration) % (2**63 - 1)


def weighted_ce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy, ignore 255; an all-ignore batch gives 0, never NaN."""
    loss = F.cross_entropy(
        logits.float(), labels, weight=weights, ignore_index=255, reduction="sum"
    )
    valid = labels != 255
    denom = weights[labels[valid]].sum()
    return loss / denom.clamp_min(1e-12) if valid.any() else loss * 0.0
