"""Sinkhorn–Knopp balanced assignment of samples to prototypes (SwAV / dinov2 style), with a log-domain variant.

The teacher's scores of every tracked point against the K prototypes become soft assignments Q whose prototype
marginal is (approximately) uniform over the global batch, so no prototype can swallow every point. The function
is pure: it reads only its arguments, and the only cross-process step is summing through
:func:`mosic.distributed.all_reduce_`, which is a no-op in a single process, so it runs under plain pytest.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor

from mosic import distributed

__all__ = ["sinkhorn_knopp"]

logger = logging.getLogger(__name__)


@torch.no_grad()
def sinkhorn_knopp(
    scores: Tensor,
    *,
    epsilon: float = 0.05,
    iters: int = 10,
    log_domain: bool = False,
    valid: Tensor | None = None,
    check: bool = True,
) -> Tensor:
    r"""Balanced soft assignment of M samples to K prototypes by entropic optimal transport.

    **Problem.** With S the scores (similarities, higher = closer) of this process's rows, stacked over all
    processes into the global batch of M_g valid rows, find the transport plan

    .. math::

        P^\star = \arg\max_{P \in U(a, b)} \langle P, S\rangle + \varepsilon H(P), \qquad
        H(P) = -\textstyle\sum_{m,k} P_{mk} (\log P_{mk} - 1),

    over plans with uniform marginals :math:`a = \mathbf{1}_{M_g}/M_g` (every sample carries the same mass) and
    :math:`b = \mathbf{1}_K/K` (equipartition over prototypes). This is the entropic OT problem of Cuturi (2013)
    with cost :math:`C = -S` and regularisation ε. Its solution has the form
    :math:`P^\star = \mathrm{diag}(\alpha)\, \exp(S/\varepsilon)\, \mathrm{diag}(\beta)`, and Sinkhorn–Knopp
    finds the scalings by alternately matching the two marginals.

    **Iterations** (the order of operations of SwAV ``distributed_sinkhorn`` and dinov2
    ``DINOLoss.sinkhorn_knopp_teacher``, reference spec §4.2), working on :math:`Q = \exp(S/\varepsilon)^\top`,
    K × M_local:

    1. :math:`Q \leftarrow Q / \sum_{k,m} Q_{km}` with the total summed over all processes;
    2. repeat ``iters`` times:

       * rows (prototypes): :math:`Q_{k\cdot} \leftarrow Q_{k\cdot} \cdot \frac{1/K}{u_k}`, where
         :math:`u_k = \sum_m Q_{km}` is summed over **all processes** (this is what balances the global batch);
       * columns (samples): :math:`Q_{\cdot m} \leftarrow Q_{\cdot m} \cdot \frac{1/M_g}{\sum_k Q_{km}}`,
         with local column sums (a column lives on one process);

    3. return :math:`(Q / \sum_k Q_{km})^\top`: every valid row is a probability distribution over prototypes.
       Because the last step matches the sample marginal, the prototype marginal is only approximately uniform;
       the deviation shrinks as ``iters`` grows (10 is the original's value and enough in practice; POT's
       ``sinkhorn_knopp`` iterates to a tolerance instead, and converges to the same plan, times M_g).

    **Differences from the original, none of which changes the result in exact arithmetic:**

    * The plain path subtracts the global maximum of S/ε (over valid rows, max-reduced over processes) before
      ``exp``. The factor :math:`e^{-\max}` cancels in step 1, but without it ``exp`` overflows for
      max(S)/ε > 88 in float32 (|S| ≤ 1 at ε = 0.011) and in half precision already at 11.
    * ``M_g`` is the sum over processes of each process's number of valid rows (all-reduced), so processes may
      hold different numbers of rows or of valid rows. The original used ``M_local · world_size``, which assumes
      every process holds the same number of rows.
    * The row sums are recomputed at the top of each iteration instead of at the bottom of the previous one,
      which saves the original's last, unused all-reduce.

    **ε** is the entropic regularisation, in units of the scores: it acts as a softmax temperature. Large ε gives
    smooth assignments close to uniform; ε → 0 approaches the hard, exactly balanced optimal assignment but
    needs more iterations to converge, and ``exp(S/ε)`` then spans more than float32's range (≈ e^±87):
    columns underflow to zero and the plain path fails. Use ``log_domain=True`` there.

    **Log domain** (``log_domain=True``) runs the same iterations on :math:`\log Q`: the scalings become
    subtractions of log-sums computed with ``logsumexp``; cross-process log-sums are formed from the
    max-reduced maximum and the sum-reduced :math:`\sum \exp(x - \max)`. It is stable for any ε (e.g. 0.001)
    and agrees with the plain path where both are finite, at the price of one ``exp``/``log`` per entry per
    iteration and one extra all-reduce per iteration.

    Everything is computed in float32 whatever the input dtype, without gradient.

    Args:
        scores: ``[M, K]`` similarity scores of this process's M samples against K prototypes (any float dtype,
            e.g. cosine similarities in [−1, 1]). M may differ between processes and may be 0.
        epsilon: ε > 0, entropic regularisation (original: 0.05).
        iters: number of Sinkhorn iterations (row + column scaling), ≥ 0 (original: 10).
        log_domain: run the iterations in log space (stable for small ε).
        valid: optional bool ``[M]``; rows that take part (e.g. visible points). Invalid rows get all-zero
            output and count in neither marginal: the result on the valid rows equals running on ``scores[valid]``.
        check: raise when the result is not finite. Both the check and the count of valid rows wait for the
            device; with ``check=False`` nothing does, and the caller must test the result (training does, on the
            device, and skips such a step).

    Returns:
        ``[M, K]`` float32 on the device of ``scores``: Q with every valid row summing to 1 and
        :math:`\sum_{\text{valid } m,\,\text{all processes}} Q_{mk} \approx M_g / K`; invalid rows are zero.
        If no process has a valid row, every output is zero.

    Raises:
        ValueError: on bad shapes or arguments.
        FloatingPointError: with `check`, when the result is not finite (non-finite scores, or underflow of the
            plain path at small ε). All processes raise together (the check is all-reduced), so none is left waiting.

    References:
        * M. Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013.
        * M. Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments" (SwAV),
          NeurIPS 2020 (``distributed_sinkhorn``).
        * POT, ``ot.bregman.sinkhorn_knopp`` / ``sinkhorn_log`` (the same problem with ``M = -scores``,
          ``reg = epsilon``): https://pythonot.github.io/
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be [M, K], got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be floating point, got {scores.dtype}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if iters < 0:
        raise ValueError(f"iters must be >= 0, got {iters}")
    m, k = scores.shape
    if k == 0:
        raise ValueError("scores has no prototype column (K = 0)")
    if valid is None:
        valid = torch.ones(m, dtype=torch.bool, device=scores.device)
    else:
        if valid.shape != (m,) or valid.dtype != torch.bool:
            raise ValueError(f"valid must be a bool tensor of shape [{m}], got {valid.dtype} {tuple(valid.shape)}")
        valid = valid.to(scores.device)

    m_global_t = valid.sum().to(torch.float32)
    distributed.all_reduce_(m_global_t)
    if check:
        m_global = int(m_global_t.item())
        if m_global == 0:  # the same on every process, so all return here together
            return torch.zeros(m, k, dtype=torch.float32, device=scores.device)
    else:
        m_global = m_global_t.clamp_min(1.0)  # a tensor: nothing waits for the device

    # S/ε with invalid rows at −inf, so that exp gives 0 there and they drop out of every sum and maximum.
    logits = (scores.float() / epsilon).masked_fill(~valid[:, None], -math.inf).t()  # [K, M]
    if log_domain:
        q = _sinkhorn_log(logits, valid, k, m_global, iters)
    else:
        q = _sinkhorn_plain(logits, valid, k, m_global, iters)

    if not check:
        return torch.where(m_global_t > 0, q, 0.0)  # no valid row anywhere: all zero, as with the check
    bad = (~torch.isfinite(q)).any().float()
    distributed.all_reduce_(bad, op="max")
    if bad.item() > 0:
        nonfinite_in = (~torch.isfinite(scores[valid])).any().item()
        cause = (
            "the scores of valid rows contain NaN or inf"
            if nonfinite_in
            else f"exp(scores / epsilon) under- or overflowed in float32 (epsilon={epsilon}); "
            + ("use a larger epsilon" if log_domain else "use log_domain=True or a larger epsilon")
        )
        raise FloatingPointError(f"sinkhorn_knopp produced non-finite assignments: {cause}")
    return q


def _sinkhorn_plain(logits: Tensor, valid: Tensor, k: int, m_global: int | Tensor, iters: int) -> Tensor:
    """Plain-domain iterations on ``logits`` = S/ε, ``[K, M]`` (−inf on invalid columns); returns ``[M, K]``."""
    m = logits.shape[1]
    # Global max shift: cancels in the normalisation below, keeps exp() ≤ 1.
    shift = logits.amax() if m > 0 else torch.tensor(-math.inf, device=logits.device)
    distributed.all_reduce_(shift, op="max")
    q = torch.exp(logits - shift)  # [K, M]; 0 on invalid columns

    total = q.sum()
    distributed.all_reduce_(total)
    q /= total

    r = 1.0 / k
    c = 1.0 / m_global
    for _ in range(iters):
        u = q.sum(dim=1)  # [K] prototype mass, summed over the global batch
        distributed.all_reduce_(u)
        q *= (r / u).unsqueeze(1)
        # Invalid columns are all zero: scale them by 0 instead of 0/0.
        q *= torch.where(valid, c / q.sum(dim=0), 0.0).unsqueeze(0)

    col = q.sum(dim=0, keepdim=True)
    return torch.where(valid.unsqueeze(0), q / col, 0.0).t()


def _sinkhorn_log(logits: Tensor, valid: Tensor, k: int, m_global: int | Tensor, iters: int) -> Tensor:
    """Log-domain iterations on ``logits`` = S/ε, ``[K, M]`` (−inf on invalid columns); returns ``[M, K]``."""
    log_q = logits - _global_logsumexp(logits.reshape(1, -1), dim=1)
    log_r = -math.log(k)
    log_c = -math.log(m_global) if isinstance(m_global, int) else -torch.log(m_global)
    for _ in range(iters):
        log_u = _global_logsumexp(log_q, dim=1)  # [K]
        log_q = log_q + (log_r - log_u).unsqueeze(1)
        # Invalid columns stay at −inf: add 0 there instead of (−inf) − (−inf).
        log_col = torch.logsumexp(log_q, dim=0)  # [M]
        log_q = log_q + torch.where(valid, log_c - log_col, 0.0).unsqueeze(0)

    log_col = torch.logsumexp(log_q, dim=0, keepdim=True)
    return torch.exp(log_q - torch.where(valid.unsqueeze(0), log_col, 0.0)).t()


def _global_logsumexp(x: Tensor, dim: int) -> Tensor:
    """``log Σ exp(x)`` along ``dim`` (of a 2-D tensor) and across processes; −inf where every entry is −inf.

    Computed as ``max + log Σ exp(x − max)`` with the max max-reduced and the sum sum-reduced, so no process
    needs the others' entries. The dimension may be empty on some processes.
    """
    if x.shape[dim] > 0:
        mx = x.amax(dim=dim)
    else:
        mx = torch.full((x.shape[1 - dim],), -math.inf, dtype=x.dtype, device=x.device)
    distributed.all_reduce_(mx, op="max")
    mx = torch.where(torch.isfinite(mx), mx, 0.0)  # all −inf: exp(−inf − 0) = 0, log 0 = −inf below
    s = torch.exp(x - mx.unsqueeze(dim)).sum(dim=dim)
    distributed.all_reduce_(s)
    return torch.log(s) + mx
