"""Read track-store shards: the small arrays held in memory, frames read one clip at a time at memcpy speed.

:class:`ShardReader` loads tracks, visibility, confidence and the clip index of a shard when it opens (a few
MB per shard, one Zarr read each) and reads frames lazily. Frames are stored raw, one clip per inner chunk
of a Zarr shard file (:mod:`mosic.store.schema`), so the reader locates a clip's bytes from the shard index
(cached per shard file) and reads them straight into a fresh numpy array with one ``preadv``: no Zarr call
and no decoding per clip, which Zarr's ~0.5 ms per-access overhead would otherwise dominate. Any other frames
layout (e.g. a compressed one written by hand) falls back to ``zarr.Array.__getitem__``. The small arrays are
checked against the whole-array crc32c the writer recorded (a few MB: about a millisecond), which catches a
deleted chunk file; the frames' per-clip crc32c is not checked here: :func:`mosic.store.verify.verify_shard`
checks everything.

Readers are fork-safe (no file stays open; ``preadv`` has no shared offset) and picklable (a pickled reader
reopens its shard), so they work inside ``torch.utils.data.DataLoader`` workers.

:class:`TrackStore` puts several shards behind one global clip index ``0 .. total - 1`` (shards in the given
order) and opens each shard on first use.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import crc32c
import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec

from mosic.store.schema import (
    CLIP_FRAMES,
    CLIP_ID,
    CLIP_VIDEO,
    CONFIDENCE,
    FRAMES,
    SCHEMA_VERSION,
    STORE_FORMAT,
    TRACK_NAN,
    TRACK_SCALE,
    TRACKS,
    VISIBILITY,
    ClipRecord,
    checksum,
    decode_confidence,
    is_temporary_name,
    track_offset,
)

__all__ = ["ShardReader", "TrackStore", "StoreError", "CorruptShardError"]

logger = logging.getLogger(__name__)

_EMPTY = 2**64 - 1  # shard index entry of an absent inner chunk


class StoreError(ValueError):
    """A shard cannot be read: missing, temporary, of another schema version, or damaged."""


class CorruptShardError(StoreError):
    """Some chunk of a shard cannot be decoded, or a clip's frames are missing or truncated.

    The message names the shard, the array and the damaged clips, and ends with the command that checks the
    whole shard.

    Attributes:
        path: the shard.
        array: the damaged array, e.g. ``"tracks"``.
        clips: ``(start, stop)`` local clip ranges of the damaged chunks (empty when unknown).
        detail: what is wrong with them.
        reading: the clip whose read failed, when it is not one of `clips` (e.g. ``"clip 7 of the track store"``).
    """

    def __init__(
        self, path: Path, array: str, clips: Sequence[tuple[int, int]], detail: str, *, reading: str | None = None
    ) -> None:
        self.path, self.array, self.clips, self.detail, self.reading = path, array, list(clips), detail, reading
        where = ", ".join(f"clip {a}" if b == a + 1 else f"clips {a}-{b - 1}" for a, b in self.clips)
        super().__init__(
            (f"cannot read {reading}: " if reading else "")
            + f"{path}: array {array!r} is damaged at {where or 'an unknown clip'}: {detail}. "
            f"Check the whole shard with `python -m mosic.store.verify {path}`"
        )


def _load_array(path: Path, group: zarr.Group, name: str, expected_crc: int | None) -> np.ndarray:
    """All of array `name` of a shard; a chunk that fails to decode raises :class:`CorruptShardError`, and so does
    an array whose whole-array crc32c differs from `expected_crc` (the writer's, when it recorded one): Zarr reads
    a missing chunk file back as fill values without a word, so a deleted chunk is caught only here.

    After a failure each chunk is read again on its own (or looked for on disk), so that the error names the
    damaged clips.
    """
    array = group[name]
    try:
        values = np.asarray(array[:])
    except Exception as err:  # noqa: BLE001 - zarr and its codecs raise many types for a damaged chunk
        step = int(array.metadata.chunk_grid.chunk_shape[0])
        n = int(array.shape[0])
        bad = []
        for start in range(0, n, step):
            try:
                array[start : min(start + step, n)]
            except Exception:  # noqa: BLE001
                bad.append((start, min(start + step, n)))
        raise CorruptShardError(path, name, bad, f"a chunk cannot be decoded ({type(err).__name__}: {err})") from err
    if expected_crc is not None and checksum(values) != expected_crc:
        step, n, rest = int(array.metadata.chunk_grid.chunk_shape[0]), int(array.shape[0]), (0,) * (array.ndim - 1)
        gone = [
            (start, min(start + step, n))
            for k, start in enumerate(range(0, n, step))
            if not (path / name / array.metadata.encode_chunk_key((k, *rest))).exists()
        ]
        detail = (
            "its chunk file is missing (Zarr reads it back as fill values)"
            if gone
            else ("its data differ from what the writer recorded (whole-array crc32c)")
        )
        raise CorruptShardError(path, name, gone, detail)
    return values


def _open_group(path: Path) -> tuple[zarr.Group, dict[str, Any]]:
    """Open a shard read-only and check that it is a complete store of this schema version."""
    if is_temporary_name(path.name):
        raise StoreError(f"{path} is a temporary (incomplete) store; only a renamed, complete shard can be read")
    if not path.is_dir():
        raise StoreError(f"{path} does not exist or is not a directory")
    try:
        group = zarr.open_group(path, mode="r", zarr_format=3)
    except (OSError, ValueError, KeyError) as err:  # zarr raises FileNotFoundError or a ValueError subclass
        raise StoreError(f"{path} is not a Zarr v3 group: {err}") from err
    attrs = dict(group.attrs)
    if attrs.get("format") != STORE_FORMAT:
        raise StoreError(f"{path} is not a mosic track store (attrs format = {attrs.get('format')!r})")
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {attrs.get('schema_version')!r}; this mosic reads version {SCHEMA_VERSION}"
        )
    return group, attrs


class _FrameSource:
    """Reads ``frames[i]`` (uint8 [T, H, W, 3]) of one shard with one ``preadv``, or through Zarr.

    The fast path applies when the frames array is sharded (or not) with one clip per inner chunk and raw
    bytes (``bytes`` codec, optionally followed by ``crc32c``), as the writer stores it.
    """

    def __init__(self, root: Path, array: zarr.Array) -> None:
        self.root = root
        self.array = array
        meta = array.metadata
        self.clip_shape = tuple(array.shape[1:])
        self.nbytes = int(np.prod(self.clip_shape))
        self.sharded = False
        self.clips_per_file = 1
        self.fast = False
        self.crc_tail = 0  # bytes of crc32c after each clip's raw bytes
        # frames shard -> (inode of its file, [(offset, nbytes)] per clip)
        self._index: dict[int, tuple[int, list[tuple[int, int]]]] = {}
        self._paths: dict[int, Path] = {}
        codecs = tuple(meta.codecs)
        if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
            shard = codecs[0]
            inner = tuple(shard.chunk_shape)
            outer = tuple(meta.chunk_grid.chunk_shape)
            index_codecs = tuple(shard.index_codecs)
            if (
                inner == (1, *self.clip_shape)
                and outer[1:] == self.clip_shape
                and _raw(shard.codecs) is not None
                and isinstance(index_codecs[0], BytesCodec)
                and getattr(index_codecs[0].endian, "value", "little") == "little"
                and all(isinstance(c, Crc32cCodec) for c in index_codecs[1:])
            ):
                self.sharded = True
                self.clips_per_file = outer[0]
                self.index_crc = len(index_codecs) > 1
                self.index_at_end = shard.index_location.value == "end"
                self.fast = True
                self.crc_tail = 4 if _raw(shard.codecs) else 0
        elif tuple(meta.chunk_grid.chunk_shape) == (1, *self.clip_shape) and _raw(codecs) is not None:
            self.fast = True
            self.crc_tail = 4 if _raw(codecs) else 0
        if not self.fast:
            logger.info("%s: frames layout has no fast path; reading through zarr", root)

    def _file(self, i: int) -> Path:
        k = i // self.clips_per_file
        path = self._paths.get(k)
        if path is None:
            path = self._paths[k] = self.root / FRAMES / self.array.metadata.encode_chunk_key((k, 0, 0, 0, 0))
        return path

    def _shard_index(self, shard: int, fd: int, path: Path) -> list[tuple[int, int]]:
        """The (offset, nbytes) of each clip in one frames shard file, read once and cached."""
        st = os.fstat(fd)
        cached = self._index.get(shard)
        if cached is not None:
            if cached[0] != st.st_ino:
                # The shard was replaced (renamed over) since this reader opened it: its offsets are stale.
                raise StoreError(f"{path}: the shard changed on disk after it was opened; open it again")
            return cached[1]
        n = self.clips_per_file
        size = 16 * n + (4 if self.index_crc else 0)
        offset = st.st_size - size if self.index_at_end else 0
        raw = os.pread(fd, size, offset) if offset >= 0 else b""
        clips = [(shard * n, min((shard + 1) * n, self.array.shape[0]))]
        if len(raw) != size:
            raise CorruptShardError(self.root, FRAMES, clips, f"{path} is truncated (no complete shard index)")
        if self.index_crc and crc32c.crc32c(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
            raise CorruptShardError(self.root, FRAMES, clips, f"the shard index of {path} fails its crc32c check")
        index = [tuple(pair) for pair in np.frombuffer(raw[: 16 * n], dtype="<u8").reshape(n, 2).tolist()]
        self._index[shard] = (st.st_ino, index)
        return index

    def read(self, i: int, frames: Sequence[int] | None = None) -> np.ndarray:
        """``frames[i]`` as a new writable uint8 [T, H, W, 3] array, or only the frames `frames` of it
        ([len(frames), H, W, 3], in that order; on the fast path only their bytes are read)."""
        if not self.fast:
            try:
                clip = np.asarray(self.array[i])
            except Exception as err:  # noqa: BLE001 - see _load_array
                detail = f"cannot be decoded ({type(err).__name__}: {err})"
                raise CorruptShardError(self.root, FRAMES, [(i, i + 1)], detail) from err
            return clip if frames is None else clip[list(frames)]
        t = self.clip_shape[0]
        picked = list(range(t)) if frames is None else [int(f) for f in frames]
        if any(not 0 <= f < t for f in picked):
            raise IndexError(f"frames {picked} out of range for clips of {t} frames ({self.root})")
        out = np.empty((len(picked), *self.clip_shape[1:]), dtype=np.uint8)
        path = self._file(i)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise CorruptShardError(self.root, FRAMES, [(i, i + 1)], f"the file {path} is missing") from None
        try:
            offset = 0
            if self.sharded:
                offset, nbytes = self._shard_index(i // self.clips_per_file, fd, path)[i % self.clips_per_file]
                if offset == _EMPTY or nbytes != self.nbytes + self.crc_tail:
                    detail = f"missing or of the wrong size in {path}"
                    raise CorruptShardError(self.root, FRAMES, [(i, i + 1)], detail)
            if frames is None:  # one read of the whole clip
                got = os.preadv(fd, [out], offset)
            else:  # one read per frame asked for, at its place in the clip
                size = self.nbytes // t
                got = sum(os.preadv(fd, [out[k]], offset + f * size) for k, f in enumerate(picked))
        finally:
            os.close(fd)
        if got != out.nbytes:
            detail = f"truncated in {path} ({got} of {out.nbytes} bytes)"
            raise CorruptShardError(self.root, FRAMES, [(i, i + 1)], detail)
        return out


def _raw(codecs: Sequence[Any]) -> bool | None:
    """For a codec chain: None unless it is raw bytes (+ optional crc32c); else whether it ends with a crc."""
    codecs = tuple(codecs)
    if not codecs or not isinstance(codecs[0], BytesCodec):
        return None
    if len(codecs) == 1:
        return False
    if len(codecs) == 2 and isinstance(codecs[1], Crc32cCodec):
        return True
    return None


class ShardReader:
    """Random access to the clips of one shard.

    On open, the small arrays (tracks as int16, visibility, confidence, clip index) are read into memory
    (61 kB per clip at N = 1024, T = 12: 49 kB of int16 tracks, 12 kB of visibility); frames are read per clip
    on access. A reader opened before its shard was replaced by a rewrite raises :class:`StoreError` on the
    next frame read; open it again.

    Args:
        path: a complete shard written by :class:`mosic.store.ShardWriter`.

    Attributes:
        path: the shard path.
        attrs: the shard's attributes (provenance, shapes, videos, skipped clips, checksums).
        num_frames, height, width, num_points: T, H, W, N.
        videos: the video ids of the shard; ``clip_video`` indexes it.
        clip_ids: int64 [C], the caller's clip ids in shard order (from the tracking job:
            :func:`mosic.data.clips.clip_id`, not positions).

    Raises:
        StoreError: when `path` is temporary, missing, not a track store or of another schema version.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        group, self.attrs = _open_group(self.path)
        shape = self.attrs["shape"]
        self.num_frames, self.num_points = int(shape["T"]), int(shape["N"])
        self.height, self.width = int(shape["H"]), int(shape["W"])
        self.videos: list[str] = list(self.attrs["videos"])
        crc = (self.attrs.get("checksums") or {}).get("arrays") or {}  # {} when the writer did not finish

        def load(name: str) -> np.ndarray:
            return _load_array(self.path, group, name, crc.get(name))

        self._tracks = load(TRACKS)  # int16 [C, T, N, 2]
        self._visibility = load(VISIBILITY)  # bool [C, T, N]
        self._confidence = load(CONFIDENCE) if self.attrs.get("has_confidence") else None
        self._clip_video = load(CLIP_VIDEO)  # int32 [C]
        self._clip_frames = load(CLIP_FRAMES)  # int32 [C, T]
        self.clip_ids = load(CLIP_ID)  # int64 [C]
        self._frames = _FrameSource(self.path, group[FRAMES])
        # The offset tiled to [T, N, 2]: adding it elementwise is ~5x faster than broadcasting a [2] vector.
        self._offset = np.broadcast_to(track_offset(self.height, self.width), self._tracks.shape[1:]).copy()
        self._len = len(self.clip_ids)
        self._has_nan = bool((self._tracks == TRACK_NAN).any())  # only a damaged shard has NaN codes
        if self._len != self.attrs["num_clips"] or any(
            len(a) != self._len for a in (self._tracks, self._visibility, self._clip_video, self._clip_frames)
        ):
            raise StoreError(f"{self.path}: arrays disagree with num_clips = {self.attrs['num_clips']}")

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> ClipRecord:
        """The clip at local index `i` (negative counts from the end), frames freshly read from disk."""
        if not -self._len <= i < self._len:
            raise IndexError(f"clip {i} out of range for a shard of {self._len} clips ({self.path})")
        i %= self._len
        tracks, visibility = self.points(i)
        return ClipRecord(
            video_id=self.videos[self._clip_video[i]],
            clip_id=int(self.clip_ids[i]),
            frame_indices=self._clip_frames[i].copy(),
            frames=self._frames.read(i),
            tracks=tracks,
            visibility=visibility,
            confidence=None if self._confidence is None else decode_confidence(self._confidence[i]),
        )

    def points(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Only the tracks (float32 [T, N, 2], NaN where not decodable) and visibility (bool [T, N]) of clip `i`."""
        if not -self._len <= i < self._len:
            raise IndexError(f"clip {i} out of range for a shard of {self._len} clips ({self.path})")
        q = self._tracks[i % self._len]
        tracks = np.multiply(q, np.float32(1.0 / TRACK_SCALE), dtype=np.float32)  # exact: a power of two
        tracks += self._offset
        if self._has_nan:
            tracks[q == TRACK_NAN] = np.nan
        return tracks, self._visibility[i % self._len].copy()

    def read_frames(self, i: int, frames: Sequence[int] | None = None) -> np.ndarray:
        """Only the frames of clip `i`: uint8 [T, H, W, 3], or those at `frames` ([len(frames), H, W, 3]; only
        their bytes are read)."""
        if not -self._len <= i < self._len:
            raise IndexError(f"clip {i} out of range for a shard of {self._len} clips ({self.path})")
        return self._frames.read(i % self._len, frames)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"ShardReader({str(self.path)!r}, clips={self._len})"


class TrackStore:
    """Several shards behind one global clip index: clip ``g`` is local clip ``g - start[k]`` of shard ``k``.

    Only the shards' attributes are read here; a shard's arrays are loaded the first time one of its clips is
    read. Every shard must have the same T, N, H and W.

    Args:
        paths: shard paths; the global order is this order, then each shard's clip order. Empty shards (all
            clips skipped) are allowed and hold no global ids.

    Raises:
        StoreError: when a shard cannot be opened or shapes differ between shards.
    """

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.lengths: list[int] = []
        shapes = set()
        for path in self.paths:
            _, attrs = _open_group(path)
            self.lengths.append(int(attrs["num_clips"]))
            shapes.add(tuple(int(attrs["shape"][k]) for k in ("T", "N", "H", "W")))
        if len(shapes) > 1:
            raise StoreError(f"shards disagree on (T, N, H, W): {sorted(shapes)}")
        self.starts: list[int] = [0, *np.cumsum(self.lengths, dtype=np.int64).tolist()]
        # T, N, H, W of every clip (0 without shards): frames, cached points, frame height and width.
        self.num_frames, self.num_points, self.height, self.width = next(iter(shapes)) if shapes else (0, 0, 0, 0)
        self._readers: dict[int, ShardReader] = {}

    def __len__(self) -> int:
        return self.starts[-1]

    def locate(self, i: int) -> tuple[int, int]:
        """``(shard, local)`` of global clip `i`: the shard's position in `paths` and the clip's index in it."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"clip {i} out of range for a store of {n} clips")
        i %= n
        shard = bisect.bisect_right(self.starts, i) - 1  # empty shards share a start; take the last of them
        return shard, i - self.starts[shard]

    def shard(self, k: int) -> ShardReader:
        """The reader of shard `k` (opened on first use)."""
        reader = self._readers.get(k)
        if reader is None:
            reader = self._readers[k] = ShardReader(self.paths[k])
        return reader

    def __getitem__(self, i: int) -> ClipRecord:
        return self._call(i, lambda reader, local: reader[local])

    def points(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Tracks and visibility of global clip `i` (:meth:`ShardReader.points`)."""
        return self._call(i, lambda reader, local: reader.points(local))

    def read_frames(self, i: int, frames: Sequence[int] | None = None) -> np.ndarray:
        """Frames of global clip `i`, all or those at `frames` (:meth:`ShardReader.read_frames`)."""
        return self._call(i, lambda reader, local: reader.read_frames(local, frames))

    def _call(self, i: int, read: Callable[[ShardReader, int], Any]) -> Any:
        shard, local = self.locate(i)
        try:
            return read(self.shard(shard), local)
        except CorruptShardError as err:
            # Name the clip asked for too: a shard's small arrays load whole, so a damaged tracks chunk
            # fails the first read of any clip of that shard.
            reading = f"clip {i} of the track store (clip {local} of shard {shard})"
            raise CorruptShardError(err.path, err.array, err.clips, err.detail, reading=reading) from err.__cause__

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "lengths": self.lengths, "starts": self.starts, "num_frames": self.num_frames}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._readers = {}

    def __repr__(self) -> str:
        return f"TrackStore({len(self.paths)} shards, {len(self)} clips)"
