"""Objectives: Sinkhorn–Knopp balanced teacher assignments and the MoSiC loss."""

from mosic.losses.mosic_loss import assignment_ce, mosic_loss
from mosic.losses.sinkhorn import sinkhorn_knopp

__all__ = ["assignment_ce", "mosic_loss", "sinkhorn_knopp"]
