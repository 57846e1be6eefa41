"""Several processes, GPUs or nodes through ``torch.distributed``.

Nothing here starts processes: ``torchrun`` does (one process per GPU,
``--nnodes`` for several machines). Under torchrun the runner finds the
environment it sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``...), joins the process group (``nccl`` on CUDA, ``gloo``
on the CPU) unless the program already did, and:

- every rank lists the same items and reads the same set of done ids
  (between two barriers, so that no rank writes before all have read);
- rank r explains ``remaining[r::world_size]``: the split of
  ``DistributedSampler(shuffle=False)`` without its padding, which would
  explain some items twice; no item is missed or doubled;
- each rank writes its own shards (the rank is in their names);
- after a barrier rank 0 finalises the index; every rank returns the same
  summary after a last barrier.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = ["Context", "join", "share"]

T = TypeVar("T")


@dataclass
class Context:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    created_group: bool = False   # this runner joined the group and leaves it at the end

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, value: Any) -> list:
        """Every rank's ``value``, by rank."""
        if not self.active:
            return [value]
        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def close(self) -> None:
        if self.created_group and dist.is_initialized():
            dist.destroy_process_group()
            self.created_group = False


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    try:
        return int(text) if text is not None else default
    except ValueError:
        raise ValueError(f"the environment variable {name}={text!r} must be an integer") from None


def join(device: torch.device | None = None) -> Context:
    """The distributed context: the process group if one is initialised,
    else the one torchrun's environment describes (joined here, with
    ``nccl`` for a CUDA ``device`` and ``gloo`` otherwise), else a single
    process."""
    if dist.is_available() and dist.is_initialized():
        return Context(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=_env_int("LOCAL_RANK", 0),
                       local_world_size=_env_int("LOCAL_WORLD_SIZE", 1))
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Context()
    if not dist.is_available():
        raise RuntimeError(f"WORLD_SIZE={world} asks for several processes, but this torch "
                           "build has no torch.distributed")
    backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return Context(rank=dist.get_rank(), world_size=dist.get_world_size(),
                   local_rank=_env_int("LOCAL_RANK", 0),
                   local_world_size=_env_int("LOCAL_WORLD_SIZE", 1), created_group=True)


def share(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Rank ``rank``'s items: every ``world_size``-th from ``rank`` on."""
    return list(items[rank::world_size])
