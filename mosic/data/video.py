"""What every video source shares: the probe record (:class:`VideoInfo`), the error, and the reader interface.

A video is either a folder of frame images (``jpeg_folder``: YouTube-VOS, DAVIS, the synthetic demo) or
one video file decoded with PyAV (``video_file``). Both are read through :class:`VideoReader`, which
returns frames as ``uint8 [T, H, W, 3]`` RGB for any list of frame indices.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import numpy as np

__all__ = ["VideoReadError", "VideoInfo", "VideoReader", "skipped"]


class VideoReadError(RuntimeError):
    """A video cannot be read. The message always names the file and the problem."""


@dataclass(frozen=True, kw_only=True)
class VideoInfo:
    """What probing found out about one video; one row of ``index.parquet``.

    Attributes:
        video_id: unique id within the dataset (the folder name, or the file path relative to the root
            without its extension).
        kind: ``jpeg_folder`` (a folder of frame images) or ``video_file`` (decoded with PyAV).
        path: the folder or file, as given to :func:`mosic.data.readers.probe`.
        num_frames: frames that can be read (for a truncated file: the decodable ones); 0 when skipped.
        height: frame height in pixels, as displayed (of the first frame; every frame is read at this size).
        width: frame width in pixels, as displayed.
        fps: frames per second of a video file; nan for frame folders and when the container has no rate.
        status: ``ok`` (readable) or ``skipped`` (not readable; see ``reason``).
        reason: why the video was skipped, naming the file; on an ``ok`` row an optional note on
            something that was worked around (mixed frame sizes, truncation, mirroring); empty when clean.
        rotation: degrees clockwise (0, 90, 180 or 270) the frames are turned from how they are stored to how
            a viewer shows them: a video file's display matrix, the EXIF orientation of a folder's first
            frame. Readers apply it; it is recorded so the decision is never silent.
    """

    video_id: str
    kind: Literal["jpeg_folder", "video_file"]
    path: str
    num_frames: int
    height: int
    width: int
    fps: float
    status: Literal["ok", "skipped"]
    reason: str
    rotation: int = 0


def skipped(video_id: str, kind: Literal["jpeg_folder", "video_file"], path: Path | str, reason: str) -> VideoInfo:
    """A :class:`VideoInfo` for a video that cannot be read."""
    return VideoInfo(
        video_id=video_id,
        kind=kind,
        path=str(path),
        num_frames=0,
        height=0,
        width=0,
        fps=math.nan,
        status="skipped",
        reason=reason,
    )


class VideoReader(abc.ABC):
    """Random access to the frames of one video; a context manager that closes its files on exit.

    Attributes:
        path: the folder or file read.
        num_frames: number of readable frames; valid indices are ``0 .. num_frames - 1``.
        height: native frame height; frames are returned at this size unless ``read`` is given a size.
        width: native frame width.
        fps: frames per second (nan when unknown).
    """

    path: Path
    num_frames: int
    height: int
    width: int
    fps: float

    def read(self, indices: Sequence[int] | np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """Decode the given frames.

        Each distinct frame is decoded once, in increasing order, whatever the order and repetitions of
        `indices`.

        Args:
            indices: frame indices in ``[0, num_frames)``, in any order, repeats allowed.
            size: ``(height, width)`` to resize to; None returns the native ``(height, width)``.

        Returns:
            ``uint8 [len(indices), H, W, 3]`` RGB, row i holding frame ``indices[i]``.

        Raises:
            IndexError: when an index is out of range.
            VideoReadError: when a frame cannot be decoded (naming the file and the frame).
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_frames):
            bad = int(idx[(idx < 0) | (idx >= self.num_frames)][0])
            raise IndexError(f"{self.path}: frame index {bad} out of range [0, {self.num_frames})")
        out_size = size if size is not None else (self.height, self.width)
        if out_size[0] < 1 or out_size[1] < 1:
            raise ValueError(f"size must be positive (height, width), got {size}")
        unique = np.unique(idx)  # sorted: decoders go forward
        frames = self._decode(unique.tolist(), out_size)  # [len(unique), H, W, 3]
        return frames[np.searchsorted(unique, idx)]

    def frame_sizes(self, indices: Sequence[int] | np.ndarray) -> list[tuple[int, int]]:
        """Native ``(height, width)`` of each given frame (a video stream has one size for all frames)."""
        return [(self.height, self.width)] * len(indices)

    @abc.abstractmethod
    def _decode(self, indices: list[int], size: tuple[int, int]) -> np.ndarray:
        """Decode sorted, distinct, in-range `indices` to ``uint8 [len(indices), size[0], size[1], 3]``."""

    def close(self) -> None:  # noqa: B027 - readers without open files need not override it
        """Release open files and threads; the reader cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({str(self.path)!r}, num_frames={self.num_frames}, "
            f"height={self.height}, width={self.width}, fps={self.fps})"
        )
