"""Clip sampling and shard assignment.

A clip is a list of T frame indices into one video. Sampling follows the original MoSiC
`generate_indices` (see `reference/mosic_spec.md` §1.2), with each video drawing from its own random
stream seeded by ``(seed, hash(video_id))``: the clips of a video never change when other videos are
added to or removed from the corpus. Shards are ``crc32(video_id) mod num_shards`` for the same reason, and a
clip's id (:func:`clip_id`) is a hash of its video id and its number within the video, not a row number.

Modes, for a video of F frames and clips of T frames:

- ``regular`` (original run: T = 12, step r = 6): if F < T·r the step shrinks to ⌊F/T⌋, and to 1 with
  the start at 0 when F < T; otherwise start ~ U{0, …, F − T·step}. Indices start + i·step, clamped to
  F − 1, so a short video repeats its last frame.
- ``uniform``: T sorted random indices, drawn with replacement only when F < T.
- ``dense``: T consecutive frames from a random start, padded with the last frame.
- ``full``: every frame of the video (clip length F, not T).

With ``short_videos = "skip"`` a video that cannot give one clip at the configured spacing (regular:
F < (T − 1)·step + 1; uniform and dense: F < T) is left out instead of padded.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence

import numpy as np

from mosic.config import ClipsConfig

__all__ = ["shard_of", "clip_id", "check_clip_ids", "video_rng", "is_short", "sample_clip", "sample_clips"]


def shard_of(video_id: str, num_shards: int) -> int:
    """The tracking shard of a video: ``crc32(video_id) mod num_shards`` (stable under corpus changes)."""
    return zlib.crc32(video_id.encode("utf-8")) % num_shards


def clip_id(video_id: str, clip: int) -> int:
    """The id of clip number `clip` of a video: stable under corpus changes, used by the store and the logs.

    ``sha256(video_id + "\\0" + str(clip))``, first 8 bytes read little-endian, shifted right by one bit: a
    non-negative 63-bit int that fits int64. The clip number (its position among the video's
    ``clips.clips_per_video`` draws) and the video id, together with the clip settings that the whole index
    shares, determine the clip's frames, so the id depends on nothing else; a collision among the ids of one
    index is checked for (:func:`check_clip_ids`), never assumed away.
    """
    digest = hashlib.sha256(f"{video_id}\0{int(clip)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def check_clip_ids(ids: Sequence[int], video_ids: Sequence[str], clips: Sequence[int]) -> None:
    """Raise when two clips share an id.

    Args:
        ids: :func:`clip_id` of each clip.
        video_ids: the video of each clip.
        clips: the number of each clip within its video.

    Raises:
        ValueError: naming the first two clips with the same id (odds about ``C^2 / 2^64`` for C clips).
    """
    seen: dict[int, tuple[str, int]] = {}
    for i, video_id, clip in zip(ids, video_ids, clips, strict=True):
        if int(i) in seen:
            other_video, other_clip = seen[int(i)]
            raise ValueError(
                f"clip id {int(i)} is shared by clip {other_clip} of {other_video!r} and clip {clip} of "
                f"{video_id!r} (a hash collision: rename one of the videos)"
            )
        seen[int(i)] = (video_id, int(clip))


def video_rng(seed: int, video_id: str) -> np.random.Generator:
    """A random stream that depends only on the seed and the video id."""
    digest = hashlib.sha256(video_id.encode("utf-8")).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def is_short(num_frames: int, cfg: ClipsConfig) -> bool:
    """Whether a video of `num_frames` frames cannot give one clip at the configured spacing."""
    if cfg.mode == "full":
        return num_frames < 1
    if cfg.mode == "regular":
        return num_frames < (cfg.num_frames - 1) * cfg.step + 1
    return num_frames < cfg.num_frames


def sample_clip(num_frames: int, cfg: ClipsConfig, rng: np.random.Generator) -> np.ndarray:
    """Frame indices of one clip.

    Args:
        num_frames: F, frames in the video (>= 1).
        cfg: clip settings (mode, T = ``cfg.num_frames``, step).
        rng: the video's random stream.

    Returns:
        int64 [T] frame indices in [0, F) (int64 [F] in ``full`` mode), non-decreasing.
    """
    f, t = num_frames, cfg.num_frames
    if f < 1:
        raise ValueError("a video needs at least one frame")
    if cfg.mode == "full":
        return np.arange(f, dtype=np.int64)
    if cfg.mode == "uniform":
        return np.sort(rng.choice(f, size=t, replace=f < t)).astype(np.int64)
    if cfg.mode == "dense":
        base = int(rng.integers(0, max(f - t, 0), endpoint=True))
        return np.minimum(base + np.arange(t), f - 1).astype(np.int64)
    # regular
    step = cfg.step if f >= t * cfg.step else f // t
    if step == 0:
        base, step = 0, 1
    else:
        base = int(rng.integers(0, f - t * step, endpoint=True))
    return np.minimum(base + step * np.arange(t), f - 1).astype(np.int64)


def sample_clips(video_id: str, num_frames: int, cfg: ClipsConfig) -> list[np.ndarray]:
    """All clips of one video (``cfg.clips_per_video`` of them; none when it is short and short videos are skipped)."""
    if cfg.short_videos == "skip" and is_short(num_frames, cfg):
        return []
    rng = video_rng(cfg.seed, video_id)
    return [sample_clip(num_frames, cfg, rng) for _ in range(cfg.clips_per_video)]
