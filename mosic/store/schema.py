"""The track store schema: array layout, encodings, codecs, attributes and the clip record.

One Zarr v3 group per shard (the output of one tracking job, written by one process) holds C clips of
T frames with N tracked points each:

==============  =========  =================  =====================================================================
array           dtype      shape              meaning
==============  =========  =================  =====================================================================
``frames``      uint8      [C, T, H, W, 3]    RGB frames at the cache resolution
``tracks``      int16      [C, T, N, 2]       point positions (x, y), fixed point at 1/16 px (below)
``visibility``  bool       [C, T, N]          True where the point is visible (inside the frame, unoccluded)
``confidence``  uint8      [C, T, N]          tracker confidence, ``round(255 * c)``; only when the tracker has one
``clip_video``  int32      [C]                index into ``attrs["videos"]`` (the video ids of this shard)
``clip_frames`` int32      [C, T]             source frame indices of each clip in its video
``clip_id``     int64      [C]                clip ids, unique in the shard (tracking: :func:`mosic.data.clips.clip_id`)
==============  =========  =================  =====================================================================

Coordinates (see :data:`COORDINATES`): ``tracks[c, t, n] = (x, y)`` in pixels of the cached frame
``frames[c, t]``, pixel centres at integer coordinates, origin at the top-left, so the frame covers
``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` and features are indexed ``[row = y, col = x]``. A visible point lies
inside the frame (within :data:`VISIBLE_TOLERANCE`); a point that is not visible may lie outside it by at
most :data:`OUT_OF_FRAME_MARGIN` pixels (the writer clamps it there; its position is meaningless anyway).

Track encoding: ``q = round(16 * (x - offset))`` as int16 with ``offset = (W // 2, H // 2)``, decoded as
``x = q / 16 + offset``; the rounding error is at most 1/32 px and the representable range is
``offset +- 2048`` px, which holds every frame up to :data:`MAX_FRAME_SIZE` = 2048 px plus the margin.
``q = -32768`` (:data:`TRACK_NAN`, also the fill value) is never written and decodes to NaN, so a missing
chunk or a corrupted value shows up as a non-finite track in :func:`mosic.store.verify.verify_shard`.

Chosen by measurement (``benchmarks/store.py``, results in ``benchmarks/results/store.{json,md}``; 256 clips,
T = 12, N = 1024 on a 32 x 32 grid, 224 x 224 frames, smooth synthetic trajectories with camera and object
motion, 0.15 px tracker noise and occlusion; frames are 12-frame clips cut from the real test videos (bear,
paragliding, apple), saved as 854 x 480 JPEGs at quality 90, decoded with PIL and resized to the cache size):

- ``tracks``: int16 at 1/16 px in the natural ``[C, T, N, 2]`` layout, 64-clip chunks, Blosc(zstd, level 5,
  bit shuffle) + crc32c: **1.832 B per point per frame**, plus 0.019 for visibility = **1.851 B** (target
  <= 3), max error **1/32 px** on any frame up to 2048 px (target <= 1/16). Alternatives: float16 + Blosc
  byte shuffle 2.15 B but 0.125 px error at 224 px and 0.5 px at 2048 px (fails); int16 + plain zstd-3 3.16 B
  (fails); int16 + Blosc byte shuffle 2.03 B; Blosc-lz4 bit shuffle 2.26 B; a transpose to ``[C, T, 2, N]``
  1.80 B (3 % less); that plus numcodecs' Delta filter along N 1.51 B (18 % less, but a codec outside the
  Zarr v3 spec that other implementations cannot read, and the gain relies on grid-ordered points).
  Tracks are about 1 % of a shard (1.9 kB per frame against 147 kB of 224 x 224 frames), so portability
  wins: every codec used here is in the Zarr v3 spec.
- ``visibility``: bool, Blosc(zstd, 5, bit shuffle): 0.019 B per point per frame (zstd-3: 0.032; transposed
  to ``[C, N, T]``: 0.013, not worth a layout change). Confidence uses the same codec.
- Chunks of 16-128 clips store the same bytes; 64 clips is 3 MB raw per tracks chunk (Zarr's advice is
  >= 1 MB), 4 files per array in a 256-clip shard, and the whole array loads in 10-20 ms.
- ``frames``: decoded JPEG frames barely compress losslessly (zstd-1 1.12x, zstd-3 1.17x, lz4 1.00x) while
  zstd costs 1.4-1.6 ms per 224 x 224 clip to decode against 0.09 ms to copy it, so frames are stored raw:
  one clip per inner chunk, 16 clips per shard file (Zarr sharding codec, a crc32c per clip and on the
  shard index): 43 files per 256-clip shard instead of 283 with one file per clip, and faster to read.
- Read path: :class:`mosic.store.ShardReader` reads a clip's frames with one ``preadv`` at the offset from the
  cached shard index. Random clips (frames + tracks + visibility) at 224 x 224: 8,563 clips/s, **0.79x** an
  ``np.memmap`` of uncompressed ``.npy`` arrays (median of per-round ratios; 9,113 clips/s) and **335x**
  decoding the 12 full-size JPEGs with PIL (26 clips/s); at 112 x 112: 0.61x memmap, 662x JPEG. The same
  shard read per clip through the Zarr API gives 165 clips/s (0.02x memmap); zstd-1 frames through Zarr
  283 clips/s. Writing runs at ~380 MiB/s; :func:`mosic.store.verify.verify_shard` takes 0.5 s per shard.
"""

from __future__ import annotations

from dataclasses import dataclass

import crc32c
import numpy as np
from zarr.codecs import BloscCodec, Crc32cCodec

__all__ = [
    "SCHEMA_VERSION",
    "STORE_FORMAT",
    "COORDINATES",
    "FRAMES",
    "TRACKS",
    "VISIBILITY",
    "CONFIDENCE",
    "CLIP_VIDEO",
    "CLIP_FRAMES",
    "CLIP_ID",
    "TRACK_SCALE",
    "TRACK_NAN",
    "MAX_FRAME_SIZE",
    "OUT_OF_FRAME_MARGIN",
    "VISIBLE_TOLERANCE",
    "CONFIDENCE_LEVELS",
    "DEFAULT_CHUNK_CLIPS",
    "DEFAULT_FRAMES_SHARD_CLIPS",
    "REQUIRED_PROVENANCE",
    "ArraySpec",
    "ClipRecord",
    "array_specs",
    "small_array_compressors",
    "frames_compressors",
    "track_offset",
    "encode_tracks",
    "decode_tracks",
    "encode_confidence",
    "decode_confidence",
    "checksum",
    "is_temporary_name",
    "WRITER_ATTRS",
    "encoding_attrs",
]

SCHEMA_VERSION = 1
"""Bumped whenever the layout, an encoding or the meaning of an attribute changes; readers refuse others."""

STORE_FORMAT = "mosic.track_store"
"""``attrs["format"]`` of every shard."""

COORDINATES = (
    "tracks[c, t, n] = (x, y) in pixels of the cached frame frames[c, t] (H x W); pixel centres at integer "
    "coordinates, origin at the top-left, so a frame covers [-0.5, W - 0.5] x [-0.5, H - 0.5]; features are "
    "indexed [row = y, col = x]. Stored as int16 q = round(16 * (x - offset)), offset = (W // 2, H // 2); "
    "x = q / 16 + offset; q = -32768 means NaN. Points with visibility False may lie outside the frame."
)
"""The coordinate convention, written into every shard's attributes."""

# Array names.
FRAMES = "frames"
TRACKS = "tracks"
VISIBILITY = "visibility"
CONFIDENCE = "confidence"
CLIP_VIDEO = "clip_video"
CLIP_FRAMES = "clip_frames"
CLIP_ID = "clip_id"

TRACK_SCALE = 16
"""Fixed-point steps per pixel of the stored tracks (1/16 px resolution, 1/32 px maximum rounding error)."""

TRACK_NAN = -32768
"""The int16 code that decodes to NaN; the fill value of ``tracks``, never written by the writer."""

MAX_FRAME_SIZE = 2048
"""Largest cache frame side (pixels) the int16 encoding covers with the out-of-frame margin."""

OUT_OF_FRAME_MARGIN = 1000.0
"""How far (pixels) outside the frame an invisible point may lie; the writer clamps it to this band."""

VISIBLE_TOLERANCE = 1.0 / TRACK_SCALE
"""How far (pixels) outside ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` a visible point may lie."""

CONFIDENCE_LEVELS = 255
"""Confidence in [0, 1] is stored as ``round(255 * c)`` in uint8 (error <= 1/510)."""

DEFAULT_CHUNK_CLIPS = 64
"""Clips per chunk of the small arrays (tracks, visibility, confidence, clip index)."""

DEFAULT_FRAMES_SHARD_CLIPS = 16
"""Clips per shard file of ``frames`` (inner chunks hold one clip each)."""

REQUIRED_PROVENANCE = ("mosic_version", "git_sha", "config", "config_hash", "tracker")
"""Keys the caller's attrs must have (:func:`mosic.provenance.provenance` gives all but ``tracker``)."""


@dataclass(frozen=True, kw_only=True)
class ArraySpec:
    """dtype, per-clip shape and fill value of one array of a shard (the array is ``[C, *clip_shape]``)."""

    dtype: np.dtype
    clip_shape: tuple[int, ...]
    fill_value: int | bool


@dataclass(frozen=True, kw_only=True, eq=False)
class ClipRecord:
    """One tracked clip: what the tracking job adds to a shard and what a reader returns.

    Attributes:
        video_id: id of the source video.
        clip_id: the caller's id of the clip (unique within a shard); the tracking job stores
            :func:`mosic.data.clips.clip_id`, a 63-bit hash of video id and clip number.
        frame_indices: int32 [T], source frame indices of the clip in its video.
        frames: uint8 [T, H, W, 3], RGB frames at the cache resolution.
        tracks: float32 [T, N, 2], point positions (x, y) in pixels of ``frames``; pixel centres at integer
            coordinates, origin top-left (:data:`COORDINATES`). Read back with at most 1/32 px error.
        visibility: bool [T, N], True where the point is visible; visible points lie inside the frame.
        confidence: float32 [T, N] in [0, 1], or None when the tracker gives none.
    """

    video_id: str
    clip_id: int
    frame_indices: np.ndarray
    frames: np.ndarray
    tracks: np.ndarray
    visibility: np.ndarray
    confidence: np.ndarray | None = None


def array_specs(
    *, num_frames: int, height: int, width: int, num_points: int, has_confidence: bool
) -> dict[str, ArraySpec]:
    """The arrays of a shard with these shapes, in the order they are written and checked."""
    t, n = num_frames, num_points
    specs = {
        FRAMES: ArraySpec(dtype=np.dtype(np.uint8), clip_shape=(t, height, width, 3), fill_value=0),
        TRACKS: ArraySpec(dtype=np.dtype(np.int16), clip_shape=(t, n, 2), fill_value=TRACK_NAN),
        VISIBILITY: ArraySpec(dtype=np.dtype(np.bool_), clip_shape=(t, n), fill_value=False),
        CONFIDENCE: ArraySpec(dtype=np.dtype(np.uint8), clip_shape=(t, n), fill_value=0),
        CLIP_VIDEO: ArraySpec(dtype=np.dtype(np.int32), clip_shape=(), fill_value=-1),
        CLIP_FRAMES: ArraySpec(dtype=np.dtype(np.int32), clip_shape=(t,), fill_value=-1),
        CLIP_ID: ArraySpec(dtype=np.dtype(np.int64), clip_shape=(), fill_value=-1),
    }
    if not has_confidence:
        del specs[CONFIDENCE]
    return specs


def small_array_compressors(dtype: np.dtype) -> tuple[BloscCodec, Crc32cCodec]:
    """Codecs of every array but ``frames``: Blosc-zstd level 5 with bit shuffle, then a crc32c per chunk.

    Bit shuffle groups the slowly varying high bits of neighbouring int16 coordinates (and packs bools 8 to a
    byte); see the module docstring for the measured alternatives.
    """
    return (
        BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle", typesize=np.dtype(dtype).itemsize),
        Crc32cCodec(),
    )


def frames_compressors() -> tuple[Crc32cCodec]:
    """Codecs of ``frames`` (inside the sharding codec): none but a crc32c per clip.

    Lossless compression of decoded JPEG frames saves little and costs more read time than the whole copy
    (module docstring), so frames are stored raw and read with one ``preadv`` per clip.
    """
    return (Crc32cCodec(),)


def track_offset(height: int, width: int) -> np.ndarray:
    """The per-axis offset (x, y) = (W // 2, H // 2) of the track encoding, float32 [2]."""
    return np.array([width // 2, height // 2], dtype=np.float32)


def encode_tracks(tracks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Encode pixel positions as int16 fixed point, clamping to the out-of-frame margin.

    Args:
        tracks: float [..., 2] finite positions (x, y) in pixels (:data:`COORDINATES`).
        height: frame height H in pixels (at most :data:`MAX_FRAME_SIZE`).
        width: frame width W in pixels (at most :data:`MAX_FRAME_SIZE`).

    Returns:
        int16 [..., 2], ``round(16 * (clamp(x) - offset))``; never :data:`TRACK_NAN`.
    """
    lo = np.array([-0.5 - OUT_OF_FRAME_MARGIN] * 2)
    hi = np.array([width - 0.5 + OUT_OF_FRAME_MARGIN, height - 0.5 + OUT_OF_FRAME_MARGIN])
    x = np.clip(np.asarray(tracks, dtype=np.float64), lo, hi)
    q = np.rint((x - track_offset(height, width)) * TRACK_SCALE)
    return np.clip(q, TRACK_NAN + 1, 32767).astype(np.int16)


def decode_tracks(q: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decode int16 fixed point to float32 pixel positions (x, y); :data:`TRACK_NAN` becomes NaN.

    Args:
        q: int16 [..., 2] as stored.
        height: frame height H in pixels.
        width: frame width W in pixels.

    Returns:
        float32 [..., 2] positions in pixels (exact: every code is a float32 multiple of 1/16).
    """
    x = np.multiply(q, np.float32(1.0 / TRACK_SCALE), dtype=np.float32)  # exact: a power of two
    offset = track_offset(height, width)
    x[..., 0] += offset[0]
    x[..., 1] += offset[1]
    missing = q == TRACK_NAN
    if missing.any():
        x[missing] = np.nan
    return x


def encode_confidence(confidence: np.ndarray) -> np.ndarray:
    """float [...] in [0, 1] -> uint8 ``round(255 * c)``."""
    return np.rint(np.clip(confidence, 0.0, 1.0) * CONFIDENCE_LEVELS).astype(np.uint8)


def decode_confidence(q: np.ndarray) -> np.ndarray:
    """uint8 [...] -> float32 [...] in [0, 1]."""
    return q.astype(np.float32) * np.float32(1.0 / CONFIDENCE_LEVELS)


def checksum(array: np.ndarray, value: int = 0) -> int:
    """crc32c of the C-order bytes of `array`, continuing from `value` (so chunks can be fed in order)."""
    return crc32c.crc32c(np.ascontiguousarray(array).data, value=value)


def is_temporary_name(name: str) -> bool:
    """True for names a writer uses before its final rename (``.name.tmp-PID``) or any hidden name."""
    return name.startswith(".") or ".tmp-" in name


WRITER_ATTRS = (
    "format",
    "schema_version",
    "coordinates",
    "shape",
    "has_confidence",
    "encoding",
    "layout",
    "num_clips",
    "videos",
    "skipped",
    "checksums",
)
"""The attribute keys the writer sets; the caller's attrs may not use them."""


def encoding_attrs(height: int, width: int) -> dict:
    """The ``attrs["encoding"]`` record: how to decode tracks and confidence without this package."""
    return {
        TRACKS: {
            "dtype": "int16",
            "scale": TRACK_SCALE,
            "offset": [float(v) for v in track_offset(height, width)],
            "nan": TRACK_NAN,
            "decode": "x = q / scale + offset (per axis, x then y); q == nan -> NaN",
        },
        CONFIDENCE: {"dtype": "uint8", "decode": f"c = q / {CONFIDENCE_LEVELS}"},
    }
