"""One tracking job: the clips of one shard -> decoded at the cache resolution -> tracked -> one Zarr shard.

The job reads its shard's clip list (``clips/shard_NNNNN.parquet``, written by the index rule: the shard's
clips with their videos' index rows, see :mod:`mosic.data.index`), decodes each clip at the cache resolution
``track.height x track.width`` (aspect ratio not kept, as in the original code), tracks a ``grid x grid`` query
grid laid on the clip's first frame (a tracker that reads the clip's source, such as the synthetic data's
``ground_truth``, also gets the video id and frame indices), and appends the clip to a
:class:`mosic.store.ShardWriter` under its stable id (:func:`mosic.data.clips.clip_id`). With a substep
(``track.substep``, resolved by :func:`mosic.config.track_substep`) the frames between the sampled ones are
decoded with them, in the same pass, and the tracker follows the points through them
(:mod:`mosic.tracking.substep`); only the sampled frames and their tracks are stored. A tracker that tracks
clips in batches (:class:`mosic.tracking.base.BatchTracker`, CoTracker3 with ``track.cotracker.batch_size``) gets
its clips ``batch_size`` at a time, gathered across videos in shard order; the store holds the same clips in the
same order whatever the batch size. The writer fills a
temporary store and renames it onto the final path only when the shard is complete, so a killed job never
leaves a partial shard under the final name.

Bad clips — a frame that cannot be decoded, a constant frame (one solid colour: black, grey, red, ...; every
channel flat to within codec noise), frames of different native sizes — are skipped with the reason logged and
recorded in the shard's ``skipped`` attribute (``track.on_bad_clip = "skip"``), or stop the job with an error
naming the file (``"fail"``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from tqdm import tqdm

from mosic.config import TrackConfig
from mosic.data.readers import VideoInfo, VideoReadError, open_video
from mosic.geometry import grid_queries
from mosic.store import ClipRecord, ShardWriter
from mosic.tracking.base import BatchTracker, SourceTracker, Tracker, TrackResult, make_tracker
from mosic.tracking.substep import substep_frames, track_substep, track_substep_batch

logger = logging.getLogger(__name__)

__all__ = ["BadClipError", "tracker_from_config", "check_frames", "track_shard"]


_FLAT_PTP = 2
"""A frame whose pixels differ by at most this much in each of R, G and B is constant: one solid colour
(codec rounding on a scaled-up 1x1 video stays within it) has no texture to track."""


class BadClipError(RuntimeError):
    """A clip cannot be cached (raised with ``track.on_bad_clip = "fail"``); the message names file and frame."""


def tracker_from_config(cfg: TrackConfig, *, scenes_dir: str | Path | None = None) -> Tracker:
    """Build the configured tracker with its settings.

    Args:
        cfg: tracking settings.
        scenes_dir: the synthetic dataset's ``Scenes/`` folder; needed by ``tracker = ground_truth`` only.

    Raises:
        ValueError: for ``ground_truth`` without ``scenes_dir``.
    """
    if cfg.tracker == "lk":
        return make_tracker("lk", **dataclasses.asdict(cfg.lk), threads=cfg.threads)
    if cfg.tracker == "ground_truth":
        if scenes_dir is None:
            raise ValueError("track.tracker 'ground_truth' needs the synthetic dataset's Scenes/ folder (scenes_dir)")
        return make_tracker("ground_truth", scenes_dir=scenes_dir)
    return make_tracker(
        "cotracker3",
        checkpoint=cfg.cotracker.checkpoint or None,
        visibility_threshold=cfg.cotracker.visibility_threshold,
        autocast=cfg.cotracker.autocast,
        batch_size=cfg.cotracker.batch_size,
    )


def check_frames(frames: np.ndarray, frame_indices: np.ndarray, native_sizes: list[tuple[int, int]]) -> str:
    """Why a decoded clip must not be cached, or ``""`` when it is fine.

    Args:
        frames: uint8 [T, H, W, 3] decoded clip.
        frame_indices: int [T] source frame indices (for the message).
        native_sizes: ``(height, width)`` of each source frame before resizing.
    """
    if len(set(native_sizes)) > 1:
        ref = max(set(native_sizes), key=native_sizes.count)
        t = next(i for i, s in enumerate(native_sizes) if s != ref)
        h, w = native_sizes[t]
        return f"frame {int(frame_indices[t])} is {w}x{h}, the other frames of the clip are {ref[1]}x{ref[0]}"
    pixels = frames.reshape(frames.shape[0], -1, frames.shape[-1])  # [T, H*W, 3]
    spread = (pixels.max(axis=1).astype(np.int16) - pixels.min(axis=1)).max(axis=1)  # [T] worst channel
    constant = spread <= _FLAT_PTP
    if constant.any():
        t = int(np.argmax(constant))
        frame = int(frame_indices[t])
        rgb = tuple(int(v) for v in pixels[t].mean(axis=0).round())
        if spread[t] == 0 and len(set(rgb)) == 1:
            return f"frame {frame} is constant (every pixel = {rgb[0]}); nothing to track"
        value = f"= RGB {rgb}" if spread[t] == 0 else f"within {int(spread[t])} of RGB {rgb}"
        return f"frame {frame} is constant, one solid colour (every pixel {value}); nothing to track"
    return ""


def _video_info(row: Any) -> VideoInfo:
    return VideoInfo(
        video_id=row.video_id,
        kind=row.kind,
        path=row.path,
        num_frames=int(row.num_frames),
        height=int(row.height),
        width=int(row.width),
        fps=float(row.fps) if row.fps is not None else math.nan,
        status=row.status,
        reason=row.reason,
        rotation=int(getattr(row, "rotation", 0)),  # informational: readers turn frames from the source itself
    )


@dataclass(frozen=True, kw_only=True, eq=False)
class _DecodedClip:
    """A decoded clip waiting to be tracked: what the store keeps, and the frames the tracker follows."""

    video_id: str
    clip_id: int
    frame_indices: np.ndarray  # int [T] the sampled source frames
    frames: np.ndarray  # uint8 [T, H, W, 3] the sampled frames (stored)
    dense: np.ndarray  # uint8 [T', H, W, 3] the frames the tracker follows (substep_frames; the sampled ones without)
    keep: np.ndarray  # int [T] rows of dense that are the sampled frames


def _track_clips(tracker: Tracker, clips: list[_DecodedClip], queries: np.ndarray) -> list[TrackResult]:
    """The tracks of each clip at its sampled frames: one batch call for a batch tracker, else clip by clip."""
    if isinstance(tracker, SourceTracker):  # reads the clip's source, e.g. ground truth
        return [
            tracker.track_source(c.frames, queries, video_id=c.video_id, frame_indices=c.frame_indices) for c in clips
        ]
    if isinstance(tracker, BatchTracker):
        return track_substep_batch(tracker, [c.dense for c in clips], queries, [c.keep for c in clips])
    return [track_substep(tracker, c.dense, queries, c.keep) for c in clips]


def track_shard(
    *,
    shard: int,
    clips_path: str | Path,
    num_frames: int,
    track: TrackConfig,
    out_path: str | Path,
    provenance: dict[str, Any],
    tracker: Tracker | None = None,
    scenes_dir: str | Path | None = None,
    substep: int | None = None,
) -> dict[str, int]:
    """Track every clip of one shard and write the shard store.

    Args:
        shard: the shard number (checked against the one `clips_path` records).
        clips_path: the shard's clip list (clip id, video id, clip number, frame indices and the video's index
            row), as :func:`mosic.data.index.run_index` writes it.
        num_frames: T, frames per clip (every clip of the shard must have it).
        track: tracking settings (cache resolution, grid, tracker, bad-clip policy).
        out_path: the final shard path (``.../shard_00000.zarr``); written atomically.
        provenance: the record stored in the shard's attributes (config, version, git sha).
        tracker: a tracker to use instead of the configured one (tests inject fakes here).
        scenes_dir: the synthetic dataset's ``Scenes/`` folder, for ``track.tracker = ground_truth``.
        substep: track through every ``substep``-th source frame between the sampled frames of each clip
            (:func:`mosic.config.track_substep` resolves ``track.substep``); None tracks the sampled frames
            directly. Not used by trackers that read the clip's source (ground truth is exact at any step).

    Returns:
        ``{"clips": written, "skipped": skipped}``.

    Raises:
        ValueError: `clips_path` belongs to another shard, or has clips of another length than `num_frames`.
        BadClipError: a bad clip with ``track.on_bad_clip = "fail"``.
        mosic.tracking.ground_truth.MissingSceneError: ``ground_truth`` tracker, a video without a scene
            description (never skipped as a bad clip: the data is not synthetic).
    """
    recorded = json.loads((pq.read_schema(clips_path).metadata or {})[b"mosic"])["shard"]
    if recorded != shard:
        raise ValueError(f"{clips_path} lists the clips of shard {recorded}, not of shard {shard}")
    clips = pd.read_parquet(clips_path)
    lengths = {len(f) for f in clips["frames"]} - {num_frames}
    if lengths:
        raise ValueError(
            f"{clips_path}: shard {shard} has clips of {sorted(lengths)} frames; the cache needs {num_frames}"
        )
    tracker = tracker or tracker_from_config(track, scenes_dir=scenes_dir)
    queries = grid_queries(track.height, track.width, track.grid)  # float32 [N, 2] (x, y)
    if isinstance(tracker, SourceTracker):
        substep = None
    attrs = {**provenance, "tracker": {"name": tracker.name, "settings": tracker.settings, "substep": substep}}
    size = (track.height, track.width)
    logger.info(
        "shard %d: %d clips of %d frames from %d videos -> %s (tracker %s, %dx%d, %d points, substep %s)",
        shard,
        len(clips),
        num_frames,
        clips["video_id"].nunique(),
        out_path,
        tracker.name,
        track.width,
        track.height,
        len(queries),
        substep or "none",
    )
    # A batch tracker gets this many clips per call; the others one at a time (same output, in the same order).
    batch_size = (
        tracker.batch_size if isinstance(tracker, BatchTracker) and not isinstance(tracker, SourceTracker) else 1
    )
    pending: list[_DecodedClip] = []
    written = skipped = 0
    start = time.perf_counter()
    with ShardWriter(
        out_path,
        num_frames=num_frames,
        height=track.height,
        width=track.width,
        num_points=len(queries),
        attrs=attrs,
    ) as writer:

        def flush() -> None:  # track the pending clips and append them, in shard order
            nonlocal written
            for clip, result in zip(pending, _track_clips(tracker, pending, queries), strict=True):
                writer.add(
                    ClipRecord(
                        video_id=clip.video_id,
                        clip_id=clip.clip_id,
                        frame_indices=clip.frame_indices,
                        frames=clip.frames,
                        tracks=result.tracks,
                        visibility=result.visibility,
                    )
                )
            written += len(pending)
            pending.clear()

        for video_id, group in tqdm(clips.groupby("video_id", sort=True), desc=f"shard {shard}", unit="video"):
            info = _video_info(next(group.itertuples()))  # the video's index row, repeated on each clip
            try:
                reader = open_video(info)
            except VideoReadError as exc:
                reasons = {int(row.clip_id): (int(row.clip), str(exc)) for row in group.itertuples()}
            else:
                reasons = {}
                with reader:
                    for row in group.itertuples():
                        frame_indices = np.asarray(row.frames, dtype=np.int32)
                        dense_indices, keep = substep_frames(frame_indices, substep)  # [T'], [T]
                        try:
                            dense = reader.read(dense_indices, size=size)  # uint8 [T', H, W, 3], one pass
                            frames = dense[keep]  # [T, H, W, 3] the sampled frames, the ones stored
                            reason = check_frames(frames, frame_indices, reader.frame_sizes(frame_indices))
                        except VideoReadError as exc:
                            reason = str(exc)
                        if reason:
                            reasons[int(row.clip_id)] = (int(row.clip), reason)
                            continue
                        pending.append(
                            _DecodedClip(
                                video_id=video_id,
                                clip_id=int(row.clip_id),
                                frame_indices=frame_indices,
                                frames=frames,
                                dense=dense,
                                keep=keep,
                            )
                        )
                        if len(pending) == batch_size:
                            flush()
            for clip_id, (clip, reason) in reasons.items():
                message = f"{video_id} clip {clip} ({info.path}): {reason}"
                if track.on_bad_clip == "fail":
                    raise BadClipError(message)
                logger.warning("skipped %s", message)
                writer.skip(video_id, clip_id, reason)
                skipped += 1
        flush()  # the last clips: fewer than batch_size when the shard's clip count is not a multiple
    elapsed = time.perf_counter() - start
    logger.info(
        "shard %d: wrote %d clips, skipped %d, in %.1f s (%.1f ms per clip)",
        shard,
        written,
        skipped,
        elapsed,
        1000 * elapsed / max(written, 1),
    )
    return {"clips": written, "skipped": skipped}
