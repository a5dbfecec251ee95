"""The dataset index: one row per video (what it is, whether it can be read, why not) and its clips.

`index.parquet` columns: ``video_id, kind, path, num_frames, height, width, rotation, fps, status, reason,
shard, num_clips``. ``status`` is ``ok`` or ``skipped``; ``reason`` says why a video was skipped (or carries a
note on an ``ok`` row, e.g. that mixed frame sizes were resized). ``height`` and ``width`` are the displayed
size, and ``rotation`` the degrees clockwise the reader turns stored frames to get it (a video's display
matrix, a frame's EXIF orientation; 0 for most data).

`clips.parquet` columns: ``clip_id, video_id, shard, clip, frames`` with ``clip`` the clip's number within
its video, ``clip_id`` its stable id (:func:`mosic.data.clips.clip_id`, a hash of video id and clip number,
checked unique) and ``frames`` the list of frame indices into the video (see :mod:`mosic.data.clips`). Rows
are sorted by shard, then video id, then clip.

Both files carry the provenance record (config, mosic version, git sha) in their Parquet schema
metadata under the key ``mosic``, and are written under a temporary name and renamed when complete.

Each tracking shard also gets its own clip list, ``clips/shard_NNNNN.parquet`` in the workflow (the tracking
job's only data input): the shard's rows of `clips.parquet` joined with their videos' rows of
`index.parquet`, columns ``clip_id, video_id, clip, frames, kind, path, num_frames, height, width, rotation,
fps, status, reason``, sorted by video id, then clip. Its bytes depend only on those clips (and the pyarrow
version): the metadata key ``mosic`` holds the shard number and the clip settings but no time or git sha, so
adding videos to other shards rewrites the file with the same bytes and Snakemake, which compares checksums
of small inputs, tracks the shard again only when its own clips changed.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mosic.config import ClipsConfig, DatasetConfig, IndexConfig, to_dict
from mosic.data.clips import check_clip_ids, clip_id, is_short, sample_clips, shard_of
from mosic.data.readers import VideoInfo, scan
from mosic.fsutil import atomic_file

logger = logging.getLogger(__name__)

__all__ = ["build_index", "shard_clips", "write_parquet", "write_shard_clips", "read_provenance", "run_index"]

_LAYOUT = {"synthetic": "ytvos", "ytvos": "ytvos", "videos": "videos", "davis": "davis"}


def build_index(infos: list[VideoInfo], clips_cfg: ClipsConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn probed videos into the index and clip tables (pure; no I/O).

    Args:
        infos: one probe result per video, as returned by :func:`mosic.data.readers.scan`.
        clips_cfg: clip sampling and sharding settings.

    Returns:
        ``(index, clips)`` data frames with the columns documented in the module docstring.

    Raises:
        ValueError: two clips with the same id (a hash collision; the message names both).
    """
    rows, clip_rows = [], []
    for info in sorted(infos, key=lambda i: i.video_id):
        status, reason = info.status, info.reason
        clips = []
        if status == "ok":
            clips = sample_clips(info.video_id, info.num_frames, clips_cfg)
            if not clips and is_short(info.num_frames, clips_cfg):
                status = "skipped"
                reason = (
                    f"too short: {info.num_frames} frames < one {clips_cfg.mode} clip of {clips_cfg.num_frames} "
                    f"frames at step {clips_cfg.step} (clips.short_videos = skip)"
                )
        shard = shard_of(info.video_id, clips_cfg.num_shards)
        rows.append(
            {
                "video_id": info.video_id,
                "kind": info.kind,
                "path": info.path,
                "num_frames": info.num_frames,
                "height": info.height,
                "width": info.width,
                "rotation": info.rotation,
                "fps": info.fps,
                "status": status,
                "reason": reason,
                "shard": shard,
                "num_clips": len(clips),
            }
        )
        clip_rows += [
            {
                "clip_id": clip_id(info.video_id, c),
                "video_id": info.video_id,
                "shard": shard,
                "clip": c,
                "frames": frames.astype("int32").tolist(),
            }
            for c, frames in enumerate(clips)
        ]
    index = pd.DataFrame(rows, columns=list(_INDEX_SCHEMA.names))
    clips_df = pd.DataFrame(clip_rows, columns=list(_CLIPS_SCHEMA.names))
    clips_df = clips_df.sort_values(["shard", "video_id", "clip"], kind="stable").reset_index(drop=True)
    check_clip_ids(clips_df["clip_id"], clips_df["video_id"], clips_df["clip"])
    return index, clips_df


def shard_clips(index: pd.DataFrame, clips: pd.DataFrame, shard: int) -> pd.DataFrame:
    """One shard's clip list: its rows of `clips` with their videos' rows of `index` (pure; no I/O).

    Args:
        index: the index table from :func:`build_index`.
        clips: the clip table from :func:`build_index`.
        shard: the shard number.

    Returns:
        The columns of the per-shard file (module docstring), sorted by video id, then clip.
    """
    own = clips[clips["shard"] == shard].drop(columns="shard")
    videos = index.drop(columns=["shard", "num_clips"])
    table = own.merge(videos, on="video_id", how="left", validate="many_to_one")
    return table.sort_values(["video_id", "clip"], kind="stable").reset_index(drop=True)[list(_SHARD_SCHEMA.names)]


_INDEX_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("kind", pa.string()),
        ("path", pa.string()),
        ("num_frames", pa.int64()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("rotation", pa.int16()),
        ("fps", pa.float64()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("shard", pa.int32()),
        ("num_clips", pa.int32()),
    ]
)
_CLIPS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.int64()),
        ("video_id", pa.string()),
        ("shard", pa.int32()),
        ("clip", pa.int32()),
        ("frames", pa.list_(pa.int32())),
    ]
)
_SHARD_SCHEMA = pa.schema(
    [
        ("clip_id", pa.int64()),
        ("video_id", pa.string()),
        ("clip", pa.int32()),
        ("frames", pa.list_(pa.int32())),
        *(field for field in _INDEX_SCHEMA if field.name not in ("video_id", "shard", "num_clips")),
    ]
)


def write_parquet(df: pd.DataFrame, path: str | Path, schema: pa.Schema, provenance: dict[str, Any]) -> None:
    """Write `df` to `path` atomically (temporary name, then rename) with provenance in the schema metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"mosic": json.dumps(provenance)})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)


def write_shard_clips(df: pd.DataFrame, path: str | Path, *, shard: int, clips: ClipsConfig) -> None:
    """Write one shard's clip list (:func:`shard_clips`) so that the same clips give the same bytes.

    The schema metadata holds only ``{"shard", "clips"}`` under ``mosic`` (no pandas metadata, time or git sha);
    the Parquet footer names the pyarrow version, so upgrading pyarrow changes the bytes. Written atomically.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, schema=_SHARD_SCHEMA, preserve_index=False)
    record = json.dumps({"shard": int(shard), "clips": to_dict(clips)}, sort_keys=True)
    table = table.replace_schema_metadata({b"mosic": record})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance record stored in a Parquet file written by :func:`write_parquet` (what the README points
    users to for telling which config, version and commit made an index)."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[b"mosic"])


def run_index(
    *,
    root: str | Path,
    dataset: DatasetConfig,
    index: IndexConfig,
    clips: ClipsConfig,
    index_path: str | Path,
    clips_path: str | Path,
    provenance: dict[str, Any],
    shard_paths: Sequence[str | Path] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Probe every video under `root`, sample clips, and write `index.parquet`, `clips.parquet` and the
    per-shard clip lists.

    Bad videos never stop the job with ``dataset.on_error = "skip"``: they are rows with
    ``status = "skipped"`` and the reason. With ``"fail"`` the first bad video raises an error naming it.

    Args:
        shard_paths: where to write each shard's clip list (:func:`write_shard_clips`), shard 0 first: none,
            or ``clips.num_shards`` paths.
    """
    if shard_paths and len(shard_paths) != clips.num_shards:
        raise ValueError(f"{len(shard_paths)} shard clip lists for clips.num_shards = {clips.num_shards}")
    infos = scan(
        Path(root),
        _LAYOUT[dataset.kind],
        dataset.split,
        verify_frames=index.verify_frames,
        threads=index.threads,
        on_error=dataset.on_error,
    )
    if not infos:
        raise FileNotFoundError(
            f"no videos found under {root} (dataset.kind = {dataset.kind}, split = {dataset.split!r})"
        )
    index_df, clips_df = build_index(infos, clips)
    write_parquet(index_df, index_path, _INDEX_SCHEMA, provenance)
    write_parquet(clips_df, clips_path, _CLIPS_SCHEMA, provenance)
    for shard, path in enumerate(shard_paths):
        write_shard_clips(shard_clips(index_df, clips_df, shard), path, shard=shard, clips=clips)

    status = Counter(index_df["status"])
    logger.info(
        "indexed %d videos under %s: %d ok, %d skipped; %d clips in %d shards",
        len(index_df),
        root,
        status.get("ok", 0),
        status.get("skipped", 0),
        len(clips_df),
        clips.num_shards,
    )
    for row in index_df[index_df["status"] == "skipped"].itertuples():
        logger.warning("skipped %s (%s): %s", row.video_id, row.path, row.reason)
    return index_df, clips_df
