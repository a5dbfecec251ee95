"""Tracking through the frames between a clip's sampled frames (``track.substep``), keeping the sampled ones.

A regular clip samples every ``clips.step``-th frame of a video (the original run: 12 frames at step 6). A chained
tracker such as LK must then follow each point across 6 frames of motion in one step, and loses most of them on
real video. Instead the tracker is given the denser clip: from each sampled frame to the next, every
``substep``-th source frame in between. The tracks are then read back at the sampled frames only, so the cache
(frames, tracks, visibility) has the same T frames and schema as before.

For sampled frames ``f_0 <= f_1 <= ... <= f_{T-1}`` and substep k, the dense clip is

    f_0, f_0 + k, f_0 + 2k, ..., (< f_1), f_1, f_1 + k, ..., f_{T-1}

i.e. every gap ``f_{i+1} - f_i`` gets the frames ``f_i + k, f_i + 2k, ... < f_{i+1}``. A gap of at most k (a
short video whose step shrank, or the repeated last frame of a padded clip) gets none, so with k equal to the
clip step the dense clip *is* the sampled clip and tracking is unchanged, bit for bit.

Visibility at a sampled frame is the tracker's visibility at that frame of the dense clip. For LK, which never
re-acquires a lost point, this means "tracked without failure through every frame so far, in-between frames
included": a point lost between two sampled frames stays lost. For a tracker with an occlusion model
(CoTracker3) it is the prediction at that frame: a point hidden between two sampled frames and visible again
at the next one is visible there, as it would be without substeps.
"""

from __future__ import annotations

import numpy as np

from mosic.tracking.base import BatchTracker, Tracker, TrackResult

__all__ = ["substep_frames", "keep_frames", "track_substep", "track_substep_batch"]


def substep_frames(frame_indices: np.ndarray, substep: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The source frames to decode and track for a clip, and where its sampled frames are among them.

    Args:
        frame_indices: int [T] the clip's sampled frames, non-decreasing (as :func:`mosic.data.clips.sample_clip`
            gives them).
        substep: k, the step between tracked frames inside each gap (1 = every source frame); None = the sampled
            frames only.

    Returns:
        ``(frames, keep)``: int64 [T'] source frames in clip order (repeats of the clip kept), and int64 [T] the
        row of ``frames`` that holds each sampled frame, so ``frames[keep] == frame_indices``. With None, or with
        no gap wider than k, ``frames`` equals ``frame_indices`` and ``keep`` is ``arange(T)``.

    Raises:
        ValueError: for k < 1.
    """
    idx = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if substep is None:
        return idx, np.arange(idx.size, dtype=np.int64)
    if substep < 1:
        raise ValueError(f"substep must be >= 1 or None, got {substep}")
    parts, keep, n = [idx[:1]], [0], 1
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        inner = np.arange(a + substep, b, substep, dtype=np.int64)  # empty when b - a <= substep
        parts += [inner, np.array([b], dtype=np.int64)]
        n += inner.size
        keep.append(n)
        n += 1
    return np.concatenate(parts), np.asarray(keep[: idx.size], dtype=np.int64)


def keep_frames(result: TrackResult, keep: np.ndarray) -> TrackResult:
    """The tracks of a dense clip read at its sampled frames ``keep`` (see the module docstring on visibility)."""
    return TrackResult(
        tracks=np.ascontiguousarray(result.tracks[keep]),
        visibility=np.ascontiguousarray(result.visibility[keep]),
        confidence=None if result.confidence is None else np.ascontiguousarray(result.confidence[keep]),
    )


def track_substep(tracker: Tracker, dense: np.ndarray, queries: np.ndarray, keep: np.ndarray) -> TrackResult:
    """Track ``queries`` through a dense clip and return the tracks at its sampled frames.

    Args:
        tracker: any :class:`mosic.tracking.base.Tracker`.
        dense: uint8 [T', H, W, 3] the frames of :func:`substep_frames` (``frames``), decoded.
        queries: float32 [N, 2] ``(x, y)`` on the first frame (a sampled frame).
        keep: int [T] rows of ``dense`` that are the clip's sampled frames (``keep``).

    Returns:
        The :class:`TrackResult` of the T sampled frames.
    """
    return _sampled(tracker.track(dense, queries), keep)


def track_substep_batch(
    tracker: BatchTracker, dense: list[np.ndarray], queries: np.ndarray, keep: list[np.ndarray]
) -> list[TrackResult]:
    """:func:`track_substep` for several clips, tracked in one :meth:`BatchTracker.track_batch` call.

    Args:
        tracker: a tracker that tracks clips in batches.
        dense: uint8 [T'_b, H, W, 3] each clip's dense frames; lengths may differ (short videos get fewer
            in-between frames), and the tracker batches clips of equal length together.
        queries: float32 [N, 2] ``(x, y)`` on the first frame of every clip.
        keep: int [T] for each clip, the rows of its dense frames that are its sampled frames.

    Returns:
        The :class:`TrackResult` of each clip's T sampled frames, in order.
    """
    results = tracker.track_batch(dense, queries)
    return [_sampled(result, k) for result, k in zip(results, keep, strict=True)]


def _sampled(result: TrackResult, keep: np.ndarray) -> TrackResult:
    if keep.size == result.num_frames and np.array_equal(keep, np.arange(keep.size)):
        return result  # nothing was inserted: the tracker saw the sampled clip itself
    return keep_frames(result, keep)
