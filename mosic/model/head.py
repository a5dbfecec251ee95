"""Projection head and prototypes (``reference/mosic_spec.md`` §3.4–3.5).

The head maps a backbone feature to a unit vector ``ĥ``; the score of ``ĥ`` against prototype ``c_k`` is the
dot product ``⟨ĥ, c_k⟩``, a cosine similarity in [−1, 1] while the prototypes have unit norm. The training loop
re-normalises the prototypes (student and teacher) at the start of every step, as the original does; between
an optimizer step and the next re-normalisation they drift slightly off the unit sphere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ProjectionHead", "Prototypes"]


class ProjectionHead(nn.Module):
    """MLP ``in → hidden → hidden → bottleneck → out`` with GELU between layers, no norm, then L2 normalisation.

    The original: Linear(D, 1024) → GELU → Linear(1024, 1024) → GELU → Linear(1024, 512) → GELU →
    Linear(512, 256), PyTorch's default initialisation, no dropout.

    Args:
        in_dim: D, the backbone width.
        hidden: width of the two hidden layers (original 1024).
        bottleneck: width of the third layer (original 512).
        out_dim: dimension of the projected features and prototypes (original 256).
    """

    def __init__(self, in_dim: int, hidden: int, bottleneck: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, bottleneck),
            nn.GELU(),
            nn.Linear(bottleneck, out_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        """float [..., in_dim] features → float [..., out_dim] unit-norm projections."""
        return F.normalize(self.mlp(x), dim=-1)


class Prototypes(nn.Module):
    """K learnable prototype vectors, initialised as the original: standard normal rows, L2-normalised.

    Args:
        num: K, the number of prototypes (clusters).
        dim: their dimension (the projection head's ``out_dim``).
    """

    def __init__(self, num: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(F.normalize(torch.randn(num, dim), dim=-1))  # [K, dim]

    @torch.no_grad()
    def normalize_(self) -> None:
        """Re-normalise every prototype to unit L2 norm in place (call once per step, before the forward)."""
        self.weight.copy_(F.normalize(self.weight, dim=-1))

    def forward(self, z: Tensor) -> Tensor:
        """Scores ``z @ Cᵀ``: float [..., dim] → float [..., K]."""
        return z @ self.weight.t()

    def extra_repr(self) -> str:
        return f"num={self.weight.shape[0]}, dim={self.weight.shape[1]}"
