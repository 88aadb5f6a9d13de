"""Several processes training one net: the ``torch.distributed`` session and small helpers.

A run started by ``torchrun --nproc_per_node N ...`` has ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in its environment;
:func:`distributed_session` joins the process group from them (NCCL on CUDA, gloo on the
CPU) and leaves it at the end. Without ``WORLD_SIZE`` (or with 1) it does nothing, so the
same code runs as one plain process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["any_process", "broadcast_object", "distributed_session", "sync_buffers", "world"]


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextlib.contextmanager
def distributed_session(device: str = "auto", *, backend: str | None = None,
                        ) -> Iterator[tuple[int, int]]:
    """Join the process group described by the environment (``torchrun``); yields
    ``(rank, world_size)``.

    Parameters
    ----------
    device : str
        The training device setting (``"auto"``, ``"cpu"``, ``"cuda"``...): CUDA, when it
        is chosen and present, gets NCCL and each process the GPU ``LOCAL_RANK``; the
        CPU gets gloo.
    backend : str, optional
        Override the backend.

    A process group that is already initialised is used as it is (and left open).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        yield world()
        return
    if not dist.is_available():  # pragma: no cover - torch builds without distributed
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    cuda = torch.cuda.is_available() and not str(device).startswith(("cpu", "mps"))
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    try:
        yield world()
    finally:
        dist.destroy_process_group()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of process ``src`` on every process (itself outside a process group)."""
    if world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def any_process(flag: bool, device: torch.device | None = None) -> bool:
    """True on every process when ``flag`` is true on any (e.g. a time guard that fired on
    one process must stop all of them at the same step)."""
    if world()[1] == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


@torch.no_grad()
def sync_buffers(net: nn.Module, src: int = 0) -> None:
    """Copy the buffers (batch-norm statistics) of process ``src`` to every process.

    Gradients are averaged, so the parameters stay equal everywhere; each process's
    batch norm updates its running statistics from its own batches, which this undoes.
    """
    if world()[1] == 1:
        return
    for b in net.buffers():
        dist.broadcast(b, src=src)
