"""What the evaluation protocols read: image segmentation sets and video segmentation sets.

Masks are uint8 class ids at the image's resolution; ``ignore_index`` marks unlabelled pixels (255 for VOC,
COCO and the synthetic set; 0 for ADE20K, whose class 0 is "other"). Images are RGB uint8 [H, W, 3].
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["SegmentationSet", "VideoSegmentationSet"]


@runtime_checkable
class SegmentationSet(Protocol):
    """An image segmentation split.

    Attributes:
        name: e.g. ``voc/val``.
        num_classes: G, including background where the dataset has one.
        ignore_index: the label of unlabelled pixels, or None.
        class_names: G names.
    """

    name: str
    num_classes: int
    ignore_index: int | None
    class_names: list[str]

    def __len__(self) -> int: ...

    def image(self, i: int) -> np.ndarray:
        """uint8 [H, W, 3] RGB."""
        ...

    def mask(self, i: int) -> np.ndarray:
        """uint8 [H, W] class ids (``ignore_index`` where unlabelled)."""
        ...


@runtime_checkable
class VideoSegmentationSet(Protocol):
    """Annotated videos: per frame, an image and a label map (DAVIS: instance ids; YouTube-VOS: categories).

    Attributes:
        name: e.g. ``davis/val``.
        video_ids: the videos, sorted.
    """

    name: str
    video_ids: list[str]

    def num_frames(self, video_id: str) -> int:
        """Annotated frames of the video."""
        ...

    def read(self, video_id: str, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Frames uint8 [T, H, W, 3] and labels uint8 [T, H, W] (0 = background) of annotated frames `indices`."""
        ...
