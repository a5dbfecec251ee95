"""Training presets: our corrected behaviour (``default``) and the original code's (``faithful``).

| behaviour | default | faithful (original code) |
|---|---|---|
| feature gather at a track point | (x, y) → [row = y, col = x] | transposed: x used as the row (bug, spec §2.4) |
| horizontal flip | p = 0.5, x mirrored | none (the original's flip is a silent no-op) |
| normalisation std | ImageNet (0.229, 0.224, 0.225) | (0.228, 0.224, 0.225) (typo in the original) |
| loss normalisation | mean over visible terms | sum over visible terms / (B·T·N) |
| Sinkhorn rows | visible points only | every point, visible or not |
| trainable blocks | last n by index | selected by name substring (original) |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mosic.data.augment import IMAGENET_MEAN, IMAGENET_STD, ORIGINAL_STD

__all__ = ["Preset", "PRESETS"]


@dataclass(frozen=True, kw_only=True)
class Preset:
    """The behaviours a preset fixes (see the module table)."""

    order: Literal["xy", "transposed"]
    flip: bool
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    loss_norm: Literal["visible", "all"]
    sinkhorn_visible_only: bool
    block_select: Literal["index", "name"]


PRESETS = {
    "default": Preset(
        order="xy",
        flip=True,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        loss_norm="visible",
        sinkhorn_visible_only=True,
        block_select="index",
    ),
    "faithful": Preset(
        order="transposed",
        flip=False,
        mean=IMAGENET_MEAN,
        std=ORIGINAL_STD,
        loss_norm="all",
        sinkhorn_visible_only=False,
        block_select="name",
    ),
}
