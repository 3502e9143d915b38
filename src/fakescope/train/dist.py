"""Distributed data parallel (DDP) plumbing on top of ``torch.distributed`` and ``torchrun``.

The launcher (``torchrun``) starts one process per GPU (or CPU worker) and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; the CLI reads them and calls :func:`init_distributed`, which
initialises the default process group from that environment (``nccl`` on CUDA, ``gloo`` on CPU). The training
loop then asks :func:`current_dist` for its rank and world size; it never reads the environment itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Rank and world size of this process (``0`` and ``1`` when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints, logs and metrics (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def current_dist() -> DistInfo:
    """Rank and world size of the initialised default process group (or a single process)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size())
    return DistInfo()


def init_distributed(backend: str | None = None, local_rank: int = 0) -> DistInfo:
    """Initialise the default process group from the launcher's environment (``env://``).

    Args:
        backend: ``nccl`` or ``gloo``; default ``nccl`` when CUDA is available, else ``gloo``.
        local_rank: this process's GPU index on its node (``LOCAL_RANK``); selects the CUDA device.
    """
    if dist.is_initialized():
        return current_dist()
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend or ("nccl" if cuda else "gloo"), init_method="env://")
    return current_dist()


def shutdown_distributed() -> None:
    """Destroy the default process group if one is initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``value`` over all processes (identity when not distributed)."""
    if not info.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / info.world_size


def all_gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` when not distributed)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op when not distributed)."""
    if info.distributed:
        dist.barrier()
