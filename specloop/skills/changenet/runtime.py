"""Where a run executes: device choice, torchrun/DDP process group, rank-0-only side effects."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from specloop.errors import SpecloopError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def pick_device(wanted: str) -> torch.device:
    """`auto` takes CUDA when present; `cuda` without a GPU is an input error."""
    if wanted == "cuda" and not torch.cuda.is_available():
        raise SpecloopError(
            "train.device is 'cuda' but PyTorch sees no CUDA GPU on this machine; use train.device=cpu "
            "or auto.",
            rule="device",
        )
    if wanted == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def runtime(wanted_device: str) -> Iterator[Runtime]:
    """Join the torchrun process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    device = pick_device(wanted_device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    created = False
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        created = True
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    try:
        yield Runtime(device, rank, world)
    finally:
        if created:
            dist.destroy_process_group()


def gather_objects(rt: Runtime, obj: object) -> list[object]:
    if not rt.distributed:
        return [obj]
    out: list[object] = [None] * rt.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(rt: Runtime, obj: object) -> object:
    if not rt.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(rt: Runtime) -> None:
    if rt.distributed:
        dist.barrier()
