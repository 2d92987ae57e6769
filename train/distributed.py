"""Multi-process training through ``torchrun``: DistributedDataParallel set-up in one place.

nanoGPT's recipe: a process is part of a distributed run when torchrun set ``RANK``; it then joins
the process group (NCCL on GPUs, gloo on CPUs) and trains on its own slice of every batch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gradgroup.deploy.errors import InputError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank, world size and the device it trains on."""

    ddp: bool
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Whether this process logs, evaluates the summary and writes checkpoints."""
        return self.rank == 0


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an InputError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise InputError(f"device {name!r} must be auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu")
    return torch.device(name)


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; otherwise a single process."""
    ddp = int(os.environ.get("RANK", -1)) != -1
    base = pick_device(device)
    if not ddp:
        return DistInfo(False, 0, 1, base)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if rank:  # one voice: the other ranks only warn
        logging.getLogger("gradgroup").setLevel(logging.WARNING)
    local = int(os.environ.get("LOCAL_RANK", rank))
    if base.type == "cuda":
        torch.cuda.set_device(local)
        base = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if base.type == "cuda" else "gloo")
    return DistInfo(True, rank, world, base)


def teardown(info: DistInfo) -> None:
    """Leave the process group (once, at the end of training)."""
    if info.ddp and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place (no-op for a single process)."""
    if info.ddp:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BN statistics) to every rank so all ranks hold the same model."""
    if info.ddp:
        for buf in module.buffers():
            dist.broadcast(buf, 0)


def barrier(info: DistInfo) -> None:
    if info.ddp:
        dist.barrier()
