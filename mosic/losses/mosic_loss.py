"""The MoSiC objective: the student's frame-0 prediction of each point must match the teacher's cluster of the
same point at every frame where it is visible ("things that move together belong together").

Notation (as in ``reference/mosic_spec.md`` §4): B clips, T frames, N tracked points, K prototypes, τ the
temperature. ``z[b, n]`` are the student's frame-0 scores of point n against the prototypes (cosine
similarities, K of them); ``y[b, t, n]`` is the teacher's Sinkhorn assignment of the same point at frame t
(an index for hard targets, a distribution Q for soft ones); ``w[b, t, n]`` is the weight of the term,
1 where the point is visible at t (and, with student masking, its frame-0 patch was kept), else 0.

    L_main = Σ_{b,t,n} w[b,t,n] · CE(z[b,n] / τ, y[b,t,n]) / Z

    L_sym  = Σ_{b,t,n} w[b,t,n] · CE(z_t[b,n] / τ, y[b,0,n]) / Z      (optional: every student frame t
                                                                          predicts the frame-0 target)

with Z = B·T·N ("all", the original code: the scale then depends on the visible fraction) or Z = Σ w
("visible", our default: the mean over the terms that exist). CE against a soft target Q is
−Σ_k Q_k log softmax(z/τ)_k.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["assignment_ce", "mosic_loss"]


def assignment_ce(logits: Tensor, targets: Tensor) -> Tensor:
    """Per-entry cross-entropy of logits [..., K] against hard targets [...] (long) or soft targets [..., K]."""
    if targets.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits.flatten(0, -2), targets.flatten().long(), reduction="none").view(targets.shape)
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1)


def _reduce(terms: Tensor, weight: Tensor, norm: Literal["all", "visible"], denominator: Tensor | None) -> Tensor:
    total = (terms * weight).sum()
    if denominator is not None:
        return total / denominator
    if norm == "all":
        return total / weight.numel()
    return total / weight.sum().clamp_min(1.0)


def mosic_loss(
    student0: Tensor,
    targets: Tensor,
    weight: Tensor,
    *,
    temperature: float,
    norm: Literal["all", "visible"] = "visible",
    student_all: Tensor | None = None,
    denominator: Tensor | None = None,
) -> dict[str, Tensor]:
    """The MoSiC loss terms.

    Args:
        student0: float [B, N, K] student frame-0 scores (cosine similarity to each prototype).
        targets: teacher assignments at every frame: long [B, T, N] (hard) or float [B, T, N, K] (soft).
        weight: float [B, T, N], 1 where the term counts (point visible at t, frame-0 patch not masked).
        temperature: τ dividing the scores.
        norm: ``"visible"`` divides by Σ weight, ``"all"`` by B·T·N (the original).
        student_all: float [B, T, N, K] student scores at every frame, to add the symmetric term.
        denominator: Z given by the caller instead of the one `norm` computes from `weight` (a multi-process run
            passes its share of the global batch's Z, so that the mean over ranks is the global batch's loss).

    Returns:
        ``{"loss": total, "loss_main": L_main}`` plus ``"loss_sym"`` when `student_all` is given.
    """
    b, t, n = weight.shape
    logits = (student0 / temperature).unsqueeze(1).expand(b, t, n, student0.shape[-1])  # [B, T, N, K]
    main = _reduce(assignment_ce(logits, targets), weight, norm, denominator)
    out = {"loss_main": main}
    total = main
    if student_all is not None:
        target0 = targets[:, :1].expand_as(targets)  # every frame predicts the frame-0 target
        sym = _reduce(assignment_ce(student_all / temperature, target0), weight, norm, denominator)
        out["loss_sym"] = sym
        total = total + sym
    out["loss"] = total
    return out
