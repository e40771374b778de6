"""Data-parallel training across processes (torch.distributed), launched by torchrun.

``torchrun --standalone --nproc_per_node=N -m experiments sequential ...`` starts N processes; each reads
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from its environment. ``Context.from_env`` joins the process
group (gloo on CPU, nccl on CUDA) when the world has more than one process, and is a no-op context otherwise,
so the same code runs with and without torchrun.

How a global batch is shared (``shard``): every rank draws the same epoch order (seeded by seed and epoch,
``experiments.training.epoch_order``), takes the same global batch of ``batch_size`` samples and keeps the
samples ``rank, rank + W, rank + 2W, ...`` of it. Each rank's loss is its shard's mean, scaled by
``W * n_rank / n_batch`` so that DistributedDataParallel's average of the gradients is the gradient of the
global batch's mean: a run on W processes computes what one process computes with the same global batch
(up to the order of floating-point sums). Rank 0 alone writes files.
"""
from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn


def _leave() -> None:
    """Leave the process group at exit (after the command's last collective), once every rank is there: a rank
    that tears gloo down while another still talks to it can abort the other's exit ("connection closed by
    peer"). The barrier gives up after 60 s (a rank that died does not hold the others' exit longer)."""
    if dist.is_initialized():
        try:
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        except Exception:  # nccl has no monitored barrier; a timed-out one: leave anyway
            pass
        dist.destroy_process_group()


@dataclass(frozen=True)
class Context:
    """This process's place in the world: ``rank`` of ``world_size`` (1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device: str = "cpu") -> "Context":
        """Join the process group torchrun describes in the environment (once per process)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            dist.init_process_group(backend=backend)
            atexit.register(_leave)  # an orderly teardown: gloo's threads otherwise may abort the exit
        if device.startswith("cuda"):
            torch.cuda.set_device(local)
        return cls(rank, world, local)

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Whether this process writes files (rank 0)."""
        return self.rank == 0

    def device(self, device: str) -> str:
        """The device of this rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.active else device

    def wrap(self, model: nn.Module) -> nn.Module:
        """DistributedDataParallel around ``model`` in a world of several processes, else ``model``."""
        if not self.active:
            return model
        device_ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def shard(self, indices: Tensor) -> Tensor:
        """This rank's part of a global batch's sample indices (every W-th, starting at the rank)."""
        return indices[self.rank::self.world_size] if self.active else indices

    def loss_scale(self, local: int, total: int) -> float:
        """Factor on the shard's mean loss so that averaging gradients over ranks gives the global mean's."""
        return self.world_size * local / total if self.active else 1.0

    def sum(self, values: list[float], device: Optional[torch.device] = None) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (float64 all-reduce); the values themselves alone."""
        if not self.active:
            return values
        buffer = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(buffer)
        return buffer.tolist()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


_CURRENT: dict[str, Context] = {}


def current(device: str = "cpu") -> Context:
    """This process's ``Context``, made from the environment on first use (the process group is joined once)."""
    if "context" not in _CURRENT:
        _CURRENT["context"] = Context.from_env(device)
    return _CURRENT["context"]


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel (the model itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
