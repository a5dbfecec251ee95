"""Write one track-store shard: buffered whole-chunk writes into a temporary store, renamed when complete.

A :class:`ShardWriter` fills ``<parent>/.<name>.tmp-<pid>`` (:func:`mosic.fsutil.atomic_directory`) and renames
it onto ``<parent>/<name>`` only when the ``with`` block ends cleanly, so a reader never sees half a shard: an
exception removes the temporary store and leaves an existing shard untouched, and a killed process leaves only
the hidden temporary directory, which the next writer of the same shard removes. Clips are buffered in memory
and written a whole chunk (small arrays) or a whole shard file (frames) at a time, each exactly once: writing
part of a Zarr chunk or shard would rewrite it (``shared/reference/workflow.md`` section 3.1).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import zarr

from mosic.fsutil import atomic_directory
from mosic.store.schema import (
    CLIP_FRAMES,
    CLIP_ID,
    CLIP_VIDEO,
    CONFIDENCE,
    COORDINATES,
    DEFAULT_CHUNK_CLIPS,
    DEFAULT_FRAMES_SHARD_CLIPS,
    FRAMES,
    MAX_FRAME_SIZE,
    REQUIRED_PROVENANCE,
    SCHEMA_VERSION,
    STORE_FORMAT,
    TRACKS,
    VISIBILITY,
    VISIBLE_TOLERANCE,
    WRITER_ATTRS,
    ArraySpec,
    ClipRecord,
    array_specs,
    checksum,
    encode_confidence,
    encode_tracks,
    encoding_attrs,
    frames_compressors,
    small_array_compressors,
)

__all__ = ["ShardWriter"]

logger = logging.getLogger(__name__)


def _remove_stale_temporaries(final: Path) -> None:
    """Remove ``.<name>.tmp-<pid>`` siblings of `final` left by writers that no longer run on this host."""
    for tmp in final.parent.glob(f".{final.name}.tmp-*"):
        pid_text = tmp.name.rsplit("-", 1)[-1]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            logger.warning("removing %s, left by process %d that no longer runs", tmp, pid)
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass  # a live process of another user


class ShardWriter:
    """Writes the clips of one tracking job into one Zarr v3 shard; use it as a context manager.

    Example::

        with ShardWriter(path, num_frames=12, height=224, width=224, num_points=1024,
                         attrs={**provenance(cfg), "tracker": {"name": "cotracker3", "settings": {...}}}) as w:
            for clip in clips:
                try:
                    w.add(track(clip))       # a ClipRecord
                except VideoReadError as err:
                    w.skip(clip.video_id, clip.clip_id, str(err))

    Args:
        path: final path of the shard (a directory, e.g. ``cache/tracks/shard_0003.zarr``).
        num_frames: T, frames per clip.
        height: H of the cached frames in pixels (at most 2048).
        width: W of the cached frames in pixels (at most 2048).
        num_points: N, tracked points per clip.
        attrs: JSON-serialisable provenance stored in the shard's attributes; must hold ``mosic_version``,
            ``git_sha``, ``config`` (the full config section), ``config_hash`` (all from
            :func:`mosic.provenance.provenance`) and ``tracker`` (a dict with at least ``name``, plus its settings).
        has_confidence: whether every clip carries a confidence array (stored as uint8).
        chunk_clips: clips per chunk of the small arrays (tracks, visibility, confidence, clip index).
        frames_shard_clips: clips per frames shard file; the writer holds this many clips of frames in memory.

    Raises:
        ValueError: on bad shapes or attrs (here) and on clips that break the data contract (:meth:`add`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        num_frames: int,
        height: int,
        width: int,
        num_points: int,
        attrs: dict[str, Any],
        has_confidence: bool = False,
        chunk_clips: int = DEFAULT_CHUNK_CLIPS,
        frames_shard_clips: int = DEFAULT_FRAMES_SHARD_CLIPS,
    ) -> None:
        for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if num_points < 0 or chunk_clips < 1 or frames_shard_clips < 1:
            raise ValueError("num_points must be >= 0, chunk_clips and frames_shard_clips >= 1")
        if max(height, width) > MAX_FRAME_SIZE:
            raise ValueError(f"frames of {height}x{width} exceed {MAX_FRAME_SIZE} px, the int16 track encoding's range")
        missing = [key for key in REQUIRED_PROVENANCE if key not in attrs]
        if missing:
            raise ValueError(f"attrs lack the provenance keys {missing} (mosic.provenance.provenance gives most)")
        if not isinstance(attrs["tracker"], dict) or "name" not in attrs["tracker"]:
            raise ValueError("attrs['tracker'] must be a dict with at least a 'name' (and the tracker settings)")
        clash = sorted(set(attrs) & set(WRITER_ATTRS))
        if clash:
            raise ValueError(f"attrs may not set {clash}: the writer sets these")
        try:
            json.dumps(attrs)
        except (TypeError, ValueError) as err:
            raise ValueError(f"attrs must be JSON-serialisable: {err}") from err

        self.path = Path(path)
        self.num_frames, self.height, self.width, self.num_points = num_frames, height, width, num_points
        self.has_confidence = has_confidence
        self.chunk_clips, self.frames_shard_clips = chunk_clips, frames_shard_clips
        self._user_attrs = dict(attrs)
        self._specs = array_specs(
            num_frames=num_frames, height=height, width=width, num_points=num_points, has_confidence=has_confidence
        )
        self._stack: contextlib.ExitStack | None = None
        self._arrays: dict[str, zarr.Array] = {}
        self._group: zarr.Group | None = None
        # Encoded clips not yet written, per array; written[name] = clips already in the store.
        self._pending: dict[str, list[np.ndarray]] = {name: [] for name in self._specs}
        self._written: dict[str, int] = dict.fromkeys(self._specs, 0)
        self._crc: dict[str, int] = dict.fromkeys(self._specs, 0)
        self._videos: dict[str, int] = {}
        self._clip_ids: set[int] = set()
        self._skipped: list[dict[str, Any]] = []
        self._num_clips = 0

    # -- context management -------------------------------------------------------------------------------

    def __enter__(self) -> ShardWriter:
        _remove_stale_temporaries(self.path.absolute())
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_directory(self.path))
        try:
            self._group = zarr.open_group(tmp, mode="w", zarr_format=3)
            for name, spec in self._specs.items():
                self._arrays[name] = self._create_array(name, spec)
            self._group.attrs.update(self._attrs(complete=False))
        except BaseException as err:
            self._stack.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        if exc_type is not None:
            logger.warning("shard %s not written: %s", self.path, exc)
            stack.__exit__(exc_type, exc, tb)  # removes the temporary store; the exception propagates
            return
        try:
            self._finalise()
        except BaseException as err:
            stack.__exit__(type(err), err, err.__traceback__)
            raise
        stack.close()  # the atomic rename
        logger.info("wrote %s: %d clips, %d skipped", self.path, self._num_clips, len(self._skipped))

    def _create_array(self, name: str, spec: ArraySpec) -> zarr.Array:
        shape = (0, *spec.clip_shape)
        if name == FRAMES:
            kwargs: dict[str, Any] = {
                "chunks": (1, *spec.clip_shape),
                "shards": (self.frames_shard_clips, *spec.clip_shape),
                "compressors": frames_compressors(),
            }
        else:
            kwargs = {
                "chunks": (self.chunk_clips, *spec.clip_shape),
                "compressors": small_array_compressors(spec.dtype),
            }
        return self._group.create_array(
            name,
            shape=shape,
            dtype=spec.dtype,
            fill_value=spec.fill_value,
            filters=(),
            # Every chunk is written, even an all-fill one (a black clip), so a missing chunk file means damage.
            config={"write_empty_chunks": True},
            **kwargs,
        )

    def _attrs(self, *, complete: bool) -> dict[str, Any]:
        return {
            **self._user_attrs,
            "format": STORE_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "coordinates": COORDINATES,
            "shape": {"T": self.num_frames, "N": self.num_points, "H": self.height, "W": self.width},
            "has_confidence": self.has_confidence,
            "encoding": encoding_attrs(self.height, self.width),
            "layout": {"chunk_clips": self.chunk_clips, "frames_shard_clips": self.frames_shard_clips},
            "num_clips": self._num_clips,
            "videos": list(self._videos),
            "skipped": list(self._skipped),
            "checksums": {"algorithm": "crc32c", "complete": complete, "arrays": dict(self._crc) if complete else {}},
        }

    # -- adding clips ---------------------------------------------------------------------------------------

    def add(self, record: ClipRecord) -> None:
        """Append one clip (the shard's clip order is the order of the calls).

        Args:
            record: the clip; shapes must match the writer's T, N, H, W; tracks finite, visible points inside
                the frame (see :data:`mosic.store.schema.COORDINATES`); invisible points outside the frame are
                clamped to the out-of-frame margin.

        Raises:
            RuntimeError: outside the ``with`` block.
            ValueError: when the clip breaks the data contract; nothing of it is stored.
        """
        if self._stack is None:
            raise RuntimeError("ShardWriter.add() outside its `with` block")
        encoded = self._encode(record)
        for name, value in encoded.items():
            self._pending[name].append(value)
        self._clip_ids.add(int(record.clip_id))
        self._num_clips += 1
        for name in self._specs:
            per_write = self.frames_shard_clips if name == FRAMES else self.chunk_clips
            if len(self._pending[name]) >= per_write:
                self._flush(name)

    def skip(self, video_id: str, clip_id: int, reason: str) -> None:
        """Record a clip that could not be tracked; the list lands in ``attrs["skipped"]``."""
        self._skipped.append({"video_id": str(video_id), "clip_id": int(clip_id), "reason": str(reason)})
        logger.info("skipped clip %s of %s: %s", clip_id, video_id, reason)

    def _encode(self, r: ClipRecord) -> dict[str, np.ndarray]:
        if not isinstance(r, ClipRecord):
            raise ValueError(f"expected a ClipRecord, got {type(r).__name__}")
        t, n, h, w = self.num_frames, self.num_points, self.height, self.width
        where = f"clip {r.clip_id} of video {r.video_id!r}"
        if not isinstance(r.video_id, str) or not r.video_id:
            raise ValueError(f"{where}: video_id must be a non-empty string")
        if int(r.clip_id) in self._clip_ids:
            raise ValueError(f"{where}: clip_id {r.clip_id} is already in this shard")
        frames = np.asarray(r.frames)
        if frames.dtype != np.uint8 or frames.shape != (t, h, w, 3):
            raise ValueError(f"{where}: frames must be uint8 {(t, h, w, 3)}, got {frames.dtype} {frames.shape}")
        tracks = np.asarray(r.tracks)
        if tracks.shape != (t, n, 2) or not np.issubdtype(tracks.dtype, np.floating):
            raise ValueError(f"{where}: tracks must be float {(t, n, 2)}, got {tracks.dtype} {tracks.shape}")
        vis = np.asarray(r.visibility)
        if vis.dtype != np.bool_ or vis.shape != (t, n):
            raise ValueError(f"{where}: visibility must be bool {(t, n)}, got {vis.dtype} {vis.shape}")
        idx = np.asarray(r.frame_indices)
        if idx.shape != (t,) or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"{where}: frame_indices must be integers of shape {(t,)}, got {idx.dtype} {idx.shape}")
        if t and (idx.min() < 0 or idx.max() > np.iinfo(np.int32).max):
            raise ValueError(f"{where}: frame_indices must lie in [0, 2**31)")
        if not np.isfinite(tracks).all():
            raise ValueError(f"{where}: tracks hold {int((~np.isfinite(tracks)).sum())} non-finite values")
        lo = -0.5 - VISIBLE_TOLERANCE
        outside = vis & (
            (tracks[..., 0] < lo)
            | (tracks[..., 0] > w - 0.5 + VISIBLE_TOLERANCE)
            | (tracks[..., 1] < lo)
            | (tracks[..., 1] > h - 0.5 + VISIBLE_TOLERANCE)
        )
        if outside.any():
            ti, ni = np.argwhere(outside)[0]
            raise ValueError(
                f"{where}: {int(outside.sum())} visible points lie outside the {w}x{h} frame "
                f"[-0.5, W - 0.5] x [-0.5, H - 0.5], e.g. frame {ti} point {ni} at {tracks[ti, ni].tolist()}; "
                "mark them not visible or clamp them"
            )
        encoded = {
            FRAMES: frames.copy(),  # copies: the caller may reuse its buffers after add()
            TRACKS: encode_tracks(tracks, h, w),
            VISIBILITY: vis.copy(),
            CLIP_VIDEO: np.int32(self._videos.setdefault(r.video_id, len(self._videos))),
            CLIP_FRAMES: idx.astype(np.int32),
            CLIP_ID: np.int64(r.clip_id),
        }
        if self.has_confidence:
            conf = None if r.confidence is None else np.asarray(r.confidence)
            if conf is None or conf.shape != (t, n):
                raise ValueError(f"{where}: confidence must be float {(t, n)} (has_confidence=True)")
            if not (np.isfinite(conf).all() and conf.min(initial=0) >= 0 and conf.max(initial=0) <= 1):
                raise ValueError(f"{where}: confidence must be finite and in [0, 1]")
            encoded[CONFIDENCE] = encode_confidence(conf)
        elif r.confidence is not None:
            raise ValueError(f"{where}: has confidence but the writer was made with has_confidence=False")
        return encoded

    def _flush(self, name: str) -> None:
        """Write the pending clips of one array as whole chunks (or one whole frames shard) at its end."""
        pending = self._pending[name]
        if not pending:
            return
        block = np.stack(pending)
        start = self._written[name]
        array = self._arrays[name]
        array.resize((start + len(block), *array.shape[1:]))
        array[start:] = block
        self._crc[name] = checksum(block, self._crc[name])
        self._written[name] = start + len(block)
        pending.clear()

    def _finalise(self) -> None:
        for name in self._specs:
            self._flush(name)
        self._group.attrs.update(self._attrs(complete=True))
