"""Check a track-store shard end to end: schema, arrays, checksums, coordinates and the clip index.

:func:`verify_shard` reads every array of a shard through Zarr (so each chunk's crc32c is checked), recomputes
the whole-array crc32c recorded in the attributes (which also catches a missing chunk file, read back as fill
values), and checks the data contract of :mod:`mosic.store.schema`: finite tracks, visible points inside the
frame, invisible ones within the out-of-frame margin, and a consistent clip index. It returns a list of
sentences, one per problem, each naming the array and clip; an empty list means the shard is OK.

Command line (exits 1 when any shard has a problem)::

    python -m mosic.store.verify cache/tracks/shard_0000.zarr cache/tracks/shard_0001.zarr ...
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from mosic.store.schema import (
    CLIP_FRAMES,
    CLIP_ID,
    CLIP_VIDEO,
    CONFIDENCE,
    FRAMES,
    OUT_OF_FRAME_MARGIN,
    REQUIRED_PROVENANCE,
    SCHEMA_VERSION,
    STORE_FORMAT,
    TRACK_NAN,
    TRACK_SCALE,
    TRACKS,
    VISIBILITY,
    VISIBLE_TOLERANCE,
    WRITER_ATTRS,
    array_specs,
    checksum,
    decode_tracks,
    is_temporary_name,
    track_offset,
)

__all__ = ["verify_shard", "main"]

_MAX_PER_KIND = 5  # clips named per kind of problem; the rest are counted


class _Problems:
    """Collects problem sentences, naming at most a few clips per kind of problem."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._counts: dict[str, int] = {}

    def add(self, text: str, kind: str | None = None) -> None:
        if kind is not None:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            if self._counts[kind] > _MAX_PER_KIND:
                return
        self.items.append(text)

    def finish(self) -> list[str]:
        for kind, count in self._counts.items():
            if count > _MAX_PER_KIND:
                self.items.append(f"{kind}: {count - _MAX_PER_KIND} more clips with the same problem.")
        return self.items


def _read_blocks(
    array: zarr.Array, name: str, block: int, problems: _Problems, clip: Any
) -> tuple[np.ndarray | None, int | None]:
    """Read `array` in blocks of `block` clips and return (data, crc32c of all of it).

    `data` is None for frames (checked block by block and dropped) and when a block fails; `crc32c` is None
    when a block fails. A failing block is re-read clip by clip so that the problems name the damaged clips.
    """
    keep = name != FRAMES
    parts: list[np.ndarray] = []
    crc: int | None = 0
    n = array.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        try:
            data = np.asarray(array[start:stop])
        except Exception:  # noqa: BLE001 - any decode failure is a problem to report, not to crash on
            for i in range(start, stop):
                try:
                    array[i]
                except Exception as err:  # noqa: BLE001
                    problems.add(f"{name}: {clip(i)} cannot be read ({type(err).__name__}: {err}).", f"{name} read")
            crc = None
            keep = False
            continue
        if crc is not None:
            crc = checksum(data, crc)
        if keep:
            parts.append(data)
    if not keep:
        return None, crc
    if not parts:
        return np.empty(array.shape, dtype=array.dtype), crc
    return np.concatenate(parts), crc


def _check_attrs(attrs: dict[str, Any], problems: _Problems) -> tuple[int, int, int, int, int, bool] | None:
    """Check the attributes; return (C, T, N, H, W, has_confidence) when the shapes are usable."""
    if attrs.get("format") != STORE_FORMAT:
        problems.add(f"attrs: format is {attrs.get('format')!r}, expected {STORE_FORMAT!r}.")
    if attrs.get("schema_version") != SCHEMA_VERSION:
        problems.add(f"attrs: schema_version is {attrs.get('schema_version')!r}, expected {SCHEMA_VERSION}.")
    missing = [k for k in (*WRITER_ATTRS, *REQUIRED_PROVENANCE) if k not in attrs]
    if missing:
        problems.add(f"attrs: missing keys {missing}.")
    tracker = attrs.get("tracker")
    if "tracker" in attrs and not (isinstance(tracker, dict) and "name" in tracker):
        problems.add("attrs: tracker must be a dict with a 'name'.")
    checks = attrs.get("checksums")
    if not (isinstance(checks, dict) and checks.get("complete") is True and isinstance(checks.get("arrays"), dict)):
        problems.add("attrs: checksums are missing or were never completed (the writer did not finish).")
    skipped = attrs.get("skipped", [])
    if not isinstance(skipped, list) or not all(
        isinstance(s, dict) and {"video_id", "clip_id", "reason"} <= set(s) for s in skipped
    ):
        problems.add("attrs: skipped must be a list of {video_id, clip_id, reason} records.")
    videos = attrs.get("videos", [])
    if not isinstance(videos, list) or not all(isinstance(v, str) for v in videos) or len(set(videos)) != len(videos):
        problems.add("attrs: videos must be a list of distinct video id strings.")
    try:
        shape = attrs["shape"]
        dims = tuple(int(shape[k]) for k in ("T", "N", "H", "W"))
        num_clips = int(attrs["num_clips"])
        has_conf = bool(attrs["has_confidence"])
    except (KeyError, TypeError, ValueError):
        problems.add("attrs: shape {T, N, H, W}, num_clips and has_confidence must be present and integers.")
        return None
    t, n, h, w = dims
    encoding = attrs.get("encoding", {}).get(TRACKS, {})
    if encoding.get("scale") != TRACK_SCALE or encoding.get("offset") != [float(v) for v in track_offset(h, w)]:
        problems.add(f"attrs: encoding.tracks {encoding} does not match this schema (scale {TRACK_SCALE}).")
    return num_clips, t, n, h, w, has_conf


def _clip_namer(clip_ids: np.ndarray | None) -> Any:
    def clip(i: int) -> str:
        if clip_ids is not None and i < len(clip_ids):
            return f"clip {i} (clip_id {int(clip_ids[i])})"
        return f"clip {i}"

    return clip


def _check_tracks(q: np.ndarray, vis: np.ndarray | None, h: int, w: int, problems: _Problems, clip: Any) -> None:
    """Finite coordinates; visible points inside the frame; invisible ones within the margin."""
    x = decode_tracks(q, h, w)  # float32 [C, T, N, 2]
    bad = q == TRACK_NAN
    for i in np.flatnonzero(bad.any(axis=(1, 2, 3))):
        t, p = np.argwhere(bad[i].any(axis=-1))[0]
        problems.add(
            f"tracks: {clip(i)} has {int(bad[i].any(axis=-1).sum())} non-finite (NaN) positions "
            f"(first at frame {t}, point {p}).",
            "tracks non-finite",
        )
    size = np.array([w, h], dtype=np.float32)
    with np.errstate(invalid="ignore"):
        tol = VISIBLE_TOLERANCE + 0.5 / TRACK_SCALE + 1e-4  # what the writer accepts, plus rounding
        outside = ((x < -0.5 - tol) | (x > size - 0.5 + tol)).any(axis=-1)
        tol_far = OUT_OF_FRAME_MARGIN + 1.0 / TRACK_SCALE
        far = ((x < -0.5 - tol_far) | (x > size - 0.5 + tol_far)).any(axis=-1)
    if vis is not None:
        vis_out = outside & vis
        for i in np.flatnonzero(vis_out.any(axis=(1, 2))):
            t, p = np.argwhere(vis_out[i])[0]
            problems.add(
                f"tracks: {clip(i)} has {int(vis_out[i].sum())} visible points outside the {w}x{h} frame "
                f"(first at frame {t}, point {p}: {x[i, t, p].tolist()}).",
                "tracks visible outside frame",
            )
        far &= ~vis
    for i in np.flatnonzero(far.any(axis=(1, 2))):
        t, p = np.argwhere(far[i])[0]
        problems.add(
            f"tracks: {clip(i)} has {int(far[i].sum())} points more than {OUT_OF_FRAME_MARGIN:g} px outside the "
            f"frame (first at frame {t}, point {p}: {x[i, t, p].tolist()}).",
            "tracks out of range",
        )


def _check_index(data: dict[str, np.ndarray | None], videos: list[str], problems: _Problems, clip: Any) -> None:
    """clip_video points into the videos list and uses all of it; frame indices >= 0; clip ids unique."""
    clip_video, clip_frames, clip_ids = data.get(CLIP_VIDEO), data.get(CLIP_FRAMES), data.get(CLIP_ID)
    if clip_video is not None:
        for i in np.flatnonzero((clip_video < 0) | (clip_video >= len(videos))):
            problems.add(f"clip_video: {clip(i)} points to video {int(clip_video[i])} of {len(videos)}.", "clip_video")
        unused = sorted(set(range(len(videos))) - set(clip_video.tolist()))
        if unused:
            problems.add(f"clip_video: videos {[videos[v] for v in unused[:5]]} are listed but have no clip.")
    if clip_frames is not None:
        for i in np.flatnonzero((clip_frames < 0).any(axis=-1)):
            problems.add(f"clip_frames: {clip(i)} has negative frame indices.", "clip_frames")
    if clip_ids is not None:
        values, counts = np.unique(clip_ids, return_counts=True)
        if (counts > 1).any():
            problems.add(f"clip_id: ids {values[counts > 1][:5].tolist()} occur more than once.")


def verify_shard(path: str | Path) -> list[str]:
    """Check one shard; return its problems as sentences (an empty list means OK).

    Args:
        path: the shard directory.

    Returns:
        One sentence per problem, naming the array and, where it applies, the clip (local index and clip id).
        A temporary or partial store (name starting with ``.`` or containing ``.tmp-``) is reported as
        incomplete without further checks.
    """
    path = Path(path)
    if is_temporary_name(path.name):
        return [f"{path.name}: incomplete store (a temporary name; the writer did not finish and rename it)."]
    if not path.is_dir():
        return [f"{path}: does not exist or is not a directory."]
    try:
        group = zarr.open_group(path, mode="r", zarr_format=3)
    except Exception as err:  # noqa: BLE001
        return [f"{path}: cannot be opened as a Zarr v3 group ({type(err).__name__}: {err})."]
    problems = _Problems()
    attrs = dict(group.attrs)
    dims = _check_attrs(attrs, problems)
    if dims is None:
        return problems.finish()
    num_clips, t, n, h, w, has_conf = dims
    specs = array_specs(num_frames=t, height=h, width=w, num_points=n, has_confidence=has_conf)
    with warnings.catch_warnings():
        # Snakemake drops a `.snakemake_timestamp` file into every directory() output, so into each shard;
        # zarr warns about the foreign file when it lists the group. It is expected there and harmless.
        warnings.filterwarnings("ignore", message=r"Object at \.snakemake_timestamp is not recognized")
        present = set(group.array_keys())
    if CONFIDENCE in present and not has_conf:
        problems.add("confidence: present although attrs has_confidence is false.")
    expected_crc = (attrs.get("checksums") or {}).get("arrays") or {}

    arrays: dict[str, zarr.Array] = {}
    for name, spec in specs.items():
        if name not in present:
            problems.add(f"{name}: array is missing.")
            continue
        array = group[name]
        shape = (num_clips, *spec.clip_shape)
        if array.dtype != spec.dtype or tuple(array.shape) != shape:
            problems.add(f"{name}: expected {spec.dtype} {shape}, found {array.dtype} {tuple(array.shape)}.")
            continue
        arrays[name] = array

    clip_ids = None
    if CLIP_ID in arrays:
        try:
            clip_ids = np.asarray(arrays[CLIP_ID][:])
        except Exception:  # noqa: BLE001 - reported below when the array is read block by block
            clip_ids = None
    clip = _clip_namer(clip_ids)

    data: dict[str, np.ndarray | None] = {}
    for name, array in arrays.items():
        block = array.metadata.chunk_grid.chunk_shape[0]
        values, crc = _read_blocks(array, name, block, problems, clip)
        data[name] = values
        if crc is None:
            problems.add(f"{name}: whole-array crc32c not checked because some chunks cannot be read.")
        elif name not in expected_crc:
            problems.add(f"{name}: no crc32c recorded in attrs checksums.")
        elif crc != expected_crc[name]:
            problems.add(
                f"{name}: crc32c checksum mismatch (stored {expected_crc[name]:#010x}, computed {crc:#010x}); "
                "the data changed after writing or a chunk file is missing."
            )

    if data.get(TRACKS) is not None:
        _check_tracks(data[TRACKS], data.get(VISIBILITY), h, w, problems, clip)
    _check_index(data, list(attrs.get("videos", [])), problems, clip)
    return problems.finish()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: verify each shard, print ``OK`` or its problems, return 1 if any shard has a problem."""
    parser = argparse.ArgumentParser(prog="python -m mosic.store.verify", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="shard directories")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.paths:
        problems = verify_shard(path)
        if problems:
            failed += 1
            print(f"FAIL {path}")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"OK   {path}")
    if len(args.paths) > 1:
        print(f"{len(args.paths) - failed} of {len(args.paths)} shards OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
