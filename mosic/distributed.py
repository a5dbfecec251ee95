"""Process-group helpers: the only module of the package that knows about ranks.

Everything else in ``mosic`` is written for one process and calls the helpers below, which fall back to the
single-process answer (rank 0, world size 1, reductions are no-ops) when no process group exists. That way every
algorithm, Sinkhorn–Knopp included, runs under plain pytest, and the same code runs unchanged under ``torchrun``.
Modelled on dinov2 ``distributed/__init__.py`` and timm ``utils/distributed.py``.

A process group is created only by :func:`init_from_env`, from the environment variables ``torchrun`` sets:

=============== =========================================================
``RANK``        global rank of this process, 0 … WORLD_SIZE−1
``WORLD_SIZE``  number of processes
``LOCAL_RANK``  rank on this machine; picks the GPU (``cuda:LOCAL_RANK``)
``MASTER_ADDR`` host of rank 0 (rendezvous)
``MASTER_PORT`` port of rank 0 (rendezvous)
=============== =========================================================

The backend is NCCL when CUDA is available and gloo otherwise (gloo is what the CPU tests and CPU training use).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

import torch
import torch.distributed as dist

__all__ = [
    "init_from_env",
    "is_enabled",
    "rank",
    "world_size",
    "local_rank",
    "is_main_process",
    "device",
    "all_reduce_",
    "broadcast_tensors_",
    "gather_object",
    "barrier",
    "destroy",
]

logger = logging.getLogger(__name__)

ReduceName = Literal["sum", "avg", "max", "min", "prod"]

_REQUIRED_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_OPS = {
    "sum": dist.ReduceOp.SUM,
    "max": dist.ReduceOp.MAX,
    "min": dist.ReduceOp.MIN,
    "prod": dist.ReduceOp.PRODUCT,
}


def init_from_env(backend: str | None = None) -> None:
    """Join the process group described by the ``torchrun`` environment variables, if there is one.

    Without ``RANK`` and ``WORLD_SIZE`` in the environment this is a no-op: the program runs as a single
    process and every other helper returns its single-process answer. Calling it again once the group exists
    is also a no-op, so library entry points may call it unconditionally.

    Args:
        backend: ``"nccl"``, ``"gloo"`` or None for the default (NCCL when CUDA is available, else gloo).

    Raises:
        RuntimeError: when only some of ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` are set,
            which means a broken launcher rather than a single-process run.
    """
    if is_enabled():
        return
    present = [k for k in _REQUIRED_ENV if k in os.environ]
    if "RANK" not in os.environ and "WORLD_SIZE" not in os.environ:
        return
    if len(present) != len(_REQUIRED_ENV):
        missing = [k for k in _REQUIRED_ENV if k not in os.environ]
        raise RuntimeError(
            f"incomplete distributed environment: {', '.join(present)} set but {', '.join(missing)} missing; "
            "launch with torchrun, or unset RANK/WORLD_SIZE to run as one process"
        )
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    global_rank = int(os.environ["RANK"])
    size = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if backend is None:
        backend = "nccl" if cuda else "gloo"
    if cuda:
        # Before init: NCCL (and gather_object, which stages objects on the current device) use this GPU.
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend, init_method="env://", rank=global_rank, world_size=size)
    logger.info(
        "process group: rank %d/%d (local rank %d), backend %s, rendezvous %s:%s",
        global_rank,
        size,
        local,
        backend,
        os.environ["MASTER_ADDR"],
        os.environ["MASTER_PORT"],
    )


def is_enabled() -> bool:
    """True when a process group exists (``torch.distributed`` is available and initialised)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Global rank of this process (0 without a process group)."""
    return dist.get_rank() if is_enabled() else 0


def world_size() -> int:
    """Number of processes in the group (1 without a process group)."""
    return dist.get_world_size() if is_enabled() else 1


def local_rank() -> int:
    """Rank of this process on its machine, from ``LOCAL_RANK`` (0 without a process group)."""
    return int(os.environ.get("LOCAL_RANK", "0")) if is_enabled() else 0


def is_main_process() -> bool:
    """True on global rank 0, the process that writes checkpoints, logs and metrics."""
    return rank() == 0


def device() -> torch.device:
    """The device this process computes on: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def all_reduce_(t: torch.Tensor, op: ReduceName = "sum") -> torch.Tensor:
    """Reduce ``t`` element-wise over all processes, in place; a no-op without a process group.

    Args:
        t: any shape; every process must pass the same shape and dtype, on its own :func:`device`.
        op: ``sum``, ``avg`` (sum divided by the world size, since gloo has no AVG), ``max``, ``min`` or ``prod``.

    Returns:
        ``t`` itself (reduced), for chaining.
    """
    if op != "avg" and op not in _OPS:
        raise ValueError(f"unknown reduction {op!r}; use one of sum, avg, max, min, prod")
    if not is_enabled():
        return t
    if op == "avg":
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(world_size())
    else:
        dist.all_reduce(t, op=_OPS[op])
    return t


def broadcast_tensors_(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite every tensor in `tensors` with rank `src`'s values, in place; a no-op without a process group.

    Training uses it to give every rank the same starting student (and so the same EMA teacher) whatever each
    process's initialisation drew. Every process must pass the same list of shapes and dtypes, on its own
    :func:`device`.
    """
    if not is_enabled():
        return
    for t in tensors:
        dist.broadcast(t, src=src)


def gather_object(obj: Any, dst: int = 0) -> list[Any] | None:
    """Every process's `obj` (pickled between this job's own processes), in rank order, on rank `dst`; None on the
    other ranks. Without a process group: ``[obj]``. Every process must call it.
    """
    if not is_enabled():
        return [obj]
    box: list[Any] | None = [None] * world_size() if rank() == dst else None
    dist.gather_object(obj, box, dst=dst)
    return box


def barrier() -> None:
    """Wait until every process reaches this point; a no-op without a process group."""
    if not is_enabled():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[local_rank()])
    else:
        dist.barrier()


def destroy() -> None:
    """Leave and destroy the process group; a no-op without one."""
    if is_enabled():
        dist.destroy_process_group()
