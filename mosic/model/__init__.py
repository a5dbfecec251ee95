"""Model parts: the timm backbone, feature gathering along tracks, projection head, prototypes, EMA teacher.

:mod:`mosic.model.net` assembles them into the network the training loop runs.
"""

from mosic.model.backbone import (
    build_backbone,
    grid_size,
    keep_mask,
    patch_size,
    patch_tokens,
    random_keep,
    set_trainable_blocks,
)
from mosic.model.ema import ema_update_, make_teacher
from mosic.model.gather import gather_tracks, track_patch_index
from mosic.model.head import ProjectionHead, Prototypes

__all__ = [
    "build_backbone",
    "grid_size",
    "keep_mask",
    "patch_size",
    "patch_tokens",
    "random_keep",
    "set_trainable_blocks",
    "gather_tracks",
    "track_patch_index",
    "ProjectionHead",
    "Prototypes",
    "ema_update_",
    "make_teacher",
]
