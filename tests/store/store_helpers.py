"""Tiny synthetic clips and shards for the track-store tests (T = 3 frames, N = 6 points, 8 x 10 frames).

A plain module (not conftest.py) so tests can import it: tests/data has a conftest.py of its own.
"""

from pathlib import Path

import numpy as np

from mosic.store import ClipRecord, ShardWriter

T, N, H, W = 3, 6, 8, 10

PROVENANCE = {
    "mosic_version": "0.1.0",
    "git_sha": "0123456789abcdef0123456789abcdef01234567",
    "config": {"grid": 3, "model": "fake"},
    "config_hash": "deadbeef",
    "created": "2026-01-01T00:00:00+00:00",
    "python": "3.11",
    "tracker": {"name": "fake_tracker", "settings": {"grid": 3}},
}


def make_clip(rng: np.random.Generator, clip_id: int, video_id: str = "vid_a", confidence: bool = False) -> ClipRecord:
    """A random clip that satisfies the data contract; some invisible points lie outside the frame."""
    tracks = rng.uniform([-0.5, -0.5], [W - 0.5, H - 0.5], size=(T, N, 2)).astype(np.float32)
    vis = rng.random((T, N)) > 0.3
    vis[0, 0], vis[1, 0] = True, False
    tracks[1, 0] = (-7.25, H + 3.0)  # not visible, outside the frame
    return ClipRecord(
        video_id=video_id,
        clip_id=clip_id,
        frame_indices=(np.arange(T) * 3 + clip_id).astype(np.int32),
        frames=rng.integers(0, 256, size=(T, H, W, 3), dtype=np.uint8),
        tracks=tracks,
        visibility=vis,
        confidence=rng.random((T, N)).astype(np.float32) if confidence else None,
    )


def write_shard(path: Path, clips: list[ClipRecord], *, skipped=(), **kwargs) -> Path:
    """Write `clips` (and the skipped (video, clip, reason) triples) to a shard at `path` with tiny chunks."""
    kwargs = {"chunk_clips": 2, "frames_shard_clips": 2, "attrs": PROVENANCE, **kwargs}
    with ShardWriter(path, num_frames=T, height=H, width=W, num_points=N, **kwargs) as writer:
        for clip in clips:
            writer.add(clip)
        for video_id, clip_id, reason in skipped:
            writer.skip(video_id, clip_id, reason)
    return path
