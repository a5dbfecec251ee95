"""The EMA teacher (``reference/mosic_spec.md`` §5).

The teacher starts as an exact copy of the student (backbone, head and prototypes) and after every optimizer
step moves towards it:

    θ_t ← m · θ_t + (1 − m) · θ_s        (original: m = 0.99, constant, every step)

Only the parameters the student trains are averaged: the others are equal in both from :func:`make_teacher`
on, and skipping them keeps them bit-exact (``m·x + (1 − m)·x`` is not always ``x`` in floating point) and
saves the work — with two trainable blocks out of twelve, most of the backbone. Buffers are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["make_teacher", "ema_update_"]


def _unwrap(module: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (parameter names then match the teacher's)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def make_teacher(student: nn.Module) -> nn.Module:
    """A frozen deep copy of the student: every parameter ``requires_grad=False``, eval mode."""
    teacher = copy.deepcopy(_unwrap(student))
    teacher.requires_grad_(False)
    return teacher.eval()


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, momentum: float, skip: torch.Tensor | None = None) -> None:
    """Move the teacher's parameters towards the student's: θ_t ← m·θ_t + (1 − m)·θ_s, in place.

    Parameters are matched by name; those the student does not train (``requires_grad=False``) are left
    alone. Buffers (floating or not) are copied from the student. Uses ``torch._foreach_*`` ops, one kernel
    launch per op for all tensors on the same device and dtype.

    Args:
        teacher: the EMA copy (from :func:`make_teacher`).
        student: the trained model (a DDP wrapper is unwrapped).
        momentum: m in [0, 1]; 0 copies the student, 1 keeps the teacher.
        skip: optional bool 0-d tensor on the device; where True the teacher is kept as it is (momentum 1), decided
            on the device so the caller never waits for it (a skipped training step).

    Raises:
        ValueError: momentum outside [0, 1], or the two models' parameter or buffer names differ.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum must be in [0, 1], got {momentum}")
    student = _unwrap(student)
    t_params = dict(teacher.named_parameters())
    s_params = dict(student.named_parameters())
    if t_params.keys() != s_params.keys():
        diff = sorted(t_params.keys() ^ s_params.keys())
        raise ValueError(f"teacher and student parameters differ: {diff[:5]}")
    names = [name for name, p in s_params.items() if p.requires_grad]
    dst = [t_params[name].data for name in names]
    src = [s_params[name].data for name in names]
    if dst and momentum < 1.0 and skip is not None:
        keep = torch.where(skip.to(dst[0].device), 1.0, momentum).to(dst[0].dtype)  # 0-d, on the device
        torch._foreach_mul_(dst, keep)
        torch._foreach_add_(dst, torch._foreach_mul(src, 1.0 - keep))
    elif dst and momentum < 1.0:
        if momentum == 0.0:
            torch._foreach_copy_(dst, src)
        else:
            torch._foreach_mul_(dst, momentum)
            torch._foreach_add_(dst, src, alpha=1.0 - momentum)

    t_bufs = dict(teacher.named_buffers())
    s_bufs = dict(student.named_buffers())
    if t_bufs.keys() != s_bufs.keys():
        raise ValueError(f"teacher and student buffers differ: {sorted(t_bufs.keys() ^ s_bufs.keys())[:5]}")
    for name, buf in t_bufs.items():
        buf.copy_(s_bufs[name])
