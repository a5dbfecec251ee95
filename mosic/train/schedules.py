"""Per-iteration schedules, precomputed as arrays indexed by the optimizer step (as dinov2's CosineScheduler)."""

from __future__ import annotations

import numpy as np

__all__ = ["cosine_schedule"]


def cosine_schedule(base: float, total_steps: int, *, warmup_steps: int = 0, final: float = 0.0) -> np.ndarray:
    """Linear warm-up from 0 to `base` over `warmup_steps`, then cosine decay to `final` at the last step.

    ``value(s) = final + (base − final) · ½ (1 + cos(π (s − w) / (S − w)))`` for s ≥ w, with S = `total_steps`.
    Without warm-up this is torch's ``CosineAnnealingLR(T_max=S, eta_min=final)``, which the original uses.

    Returns:
        float64 [total_steps], the value at each step.
    """
    warmup_steps = min(warmup_steps, total_steps)
    warm = base * np.arange(1, warmup_steps + 1) / max(warmup_steps, 1)
    s = np.arange(total_steps - warmup_steps)
    cos = final + (base - final) * 0.5 * (1 + np.cos(np.pi * s / max(total_steps - warmup_steps, 1)))
    return np.concatenate([warm, cos]).astype(np.float64)
