"""The index: probed videos -> index.parquet and clips.parquet, with skips recorded and provenance attached."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from mosic.config import ClipsConfig, DatasetConfig, IndexConfig
from mosic.data.clips import clip_id, shard_of
from mosic.data.index import build_index, read_provenance, run_index
from mosic.data.readers import VideoInfo

CLIPS = ClipsConfig(mode="regular", num_frames=4, step=2, clips_per_video=2, short_videos="pad", seed=0, num_shards=3)


def info(vid: str, frames: int, status: str = "ok", reason: str = "") -> VideoInfo:
    return VideoInfo(
        video_id=vid,
        kind="jpeg_folder",
        path=f"/data/{vid}",
        num_frames=frames,
        height=32,
        width=48,
        fps=math.nan,
        status=status,
        reason=reason,
    )


def test_build_index_rows_clips_and_skips():
    infos = [info("b", 20), info("a", 9), info("bad", 0, "skipped", "zero-byte file"), info("tiny", 3)]
    index, clips = build_index(infos, CLIPS)
    assert list(index["video_id"]) == ["a", "b", "bad", "tiny"]
    assert index.set_index("video_id").loc["bad", "reason"] == "zero-byte file"
    assert list(index["num_clips"]) == [2, 2, 0, 2]  # short videos are padded by default
    assert all(index["shard"] == [shard_of(v, 3) for v in index["video_id"]])
    assert len(clips) == 6 and all(len(f) == 4 for f in clips["frames"])
    assert list(clips["shard"]) == sorted(clips["shard"])
    tiny = clips[clips["video_id"] == "tiny"]["frames"].iloc[0]
    assert list(tiny) == [0, 1, 2, 2]


def test_short_videos_skip_is_recorded_with_reason():
    index, clips = build_index([info("tiny", 3), info("long", 30)], dataclasses.replace(CLIPS, short_videos="skip"))
    row = index.set_index("video_id").loc["tiny"]
    assert row["status"] == "skipped" and "too short: 3 frames" in row["reason"]
    assert set(clips["video_id"]) == {"long"}


def test_adding_videos_keeps_existing_clips_and_shards():
    _, before = build_index([info("a", 50), info("c", 60)], CLIPS)
    _, after = build_index([info("a", 50), info("b", 40), info("c", 60)], CLIPS)
    kept = after[after["video_id"] != "b"].reset_index(drop=True)
    pd.testing.assert_frame_equal(  # clip ids included: not row numbers
        before.sort_values(["video_id", "clip"]).reset_index(drop=True),
        kept.sort_values(["video_id", "clip"]).reset_index(drop=True),
    )
    assert list(after["clip_id"]) == [clip_id(v, c) for v, c in zip(after["video_id"], after["clip"], strict=True)]
    assert after["clip_id"].is_unique


def test_a_clip_id_collision_stops_the_index(monkeypatch):
    monkeypatch.setattr("mosic.data.index.clip_id", lambda video_id, clip: 42)
    with pytest.raises(ValueError, match="clip id 42 is shared by clip 0 of 'a' and clip 1 of 'a'"):
        build_index([info("a", 50)], CLIPS)


def write_ytvos(root, videos: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for vid, frames in videos.items():
        d = root / "JPEGImages" / vid
        d.mkdir(parents=True)
        for t in range(frames):
            Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(d / f"{t:05d}.jpg")


def test_run_index_writes_parquet_with_provenance(tmp_path):
    root = tmp_path / "ytvos"
    write_ytvos(root, {"v0": 10, "v1": 6})
    (root / "JPEGImages" / "empty").mkdir()
    ds = DatasetConfig(name="t", kind="ytvos", root=str(root), split="", on_error="skip")
    idx = IndexConfig(verify_frames=True, threads=2)
    index, clips = run_index(
        root=root,
        dataset=ds,
        index=idx,
        clips=CLIPS,
        index_path=tmp_path / "out" / "index.parquet",
        clips_path=tmp_path / "out" / "clips.parquet",
        provenance={"config": {"x": 1}, "git_sha": "abc"},
    )
    on_disk = pd.read_parquet(tmp_path / "out" / "index.parquet")
    assert list(on_disk["video_id"]) == ["empty", "v0", "v1"]
    assert list(on_disk["status"]) == ["skipped", "ok", "ok"]
    assert on_disk["reason"].iloc[0]  # says why
    assert list(on_disk["num_frames"][1:]) == [10, 6] and list(on_disk["width"][1:]) == [32, 32]
    assert read_provenance(tmp_path / "out" / "clips.parquet")["git_sha"] == "abc"
    assert len(pd.read_parquet(tmp_path / "out" / "clips.parquet")) == 4
    assert not list((tmp_path / "out").glob(".*tmp*"))  # no temporary files left behind


def test_run_index_fail_mode_names_the_file_and_keeps_previous_output(tmp_path):
    root = tmp_path / "ytvos"
    write_ytvos(root, {"v0": 5})
    out = tmp_path / "out"
    kw = dict(
        root=root,
        index=IndexConfig(verify_frames=True, threads=1),
        clips=CLIPS,
        index_path=out / "index.parquet",
        clips_path=out / "clips.parquet",
        provenance={},
    )
    ds = DatasetConfig(name="t", kind="ytvos", root=str(root), split="", on_error="fail")
    run_index(dataset=ds, **kw)
    before = (out / "index.parquet").read_bytes()
    (root / "JPEGImages" / "v0" / "00002.jpg").write_bytes(b"")  # zero-byte frame
    with pytest.raises(Exception, match="00002.jpg"):
        run_index(dataset=ds, **kw)
    assert (out / "index.parquet").read_bytes() == before  # the earlier index is intact


def test_run_index_empty_root_is_a_clear_error(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    ds = DatasetConfig(name="t", kind="ytvos", root=str(tmp_path), split="", on_error="skip")
    with pytest.raises(FileNotFoundError, match="no videos found under"):
        run_index(
            root=tmp_path,
            dataset=ds,
            index=IndexConfig(verify_frames=False, threads=1),
            clips=CLIPS,
            index_path=tmp_path / "i.parquet",
            clips_path=tmp_path / "c.parquet",
            provenance={},
        )


def test_shard_clip_lists_keep_their_bytes_when_other_shards_get_videos(tmp_path):
    """A shard's clip list depends on its own clips only: the tracking job's input (rules/track.smk)."""
    assert [shard_of(v, 3) for v in ("bear", "cat", "fox", "owl")] == [0, 1, 2, 1]
    root = tmp_path / "ytvos"
    write_ytvos(root, {"bear": 9, "cat": 7, "fox": 8})
    ds = DatasetConfig(name="t", kind="ytvos", root=str(root), split="", on_error="skip")

    def index(out, created: str) -> list[bytes]:
        paths = [out / f"shard_{s:05d}.parquet" for s in range(3)]
        run_index(root=root, dataset=ds, index=IndexConfig(verify_frames=False, threads=1), clips=CLIPS,
                  index_path=out / "index.parquet", clips_path=out / "clips.parquet",
                  provenance={"created": created, "git_sha": created}, shard_paths=paths)  # fmt: skip
        return [p.read_bytes() for p in paths]

    before = index(tmp_path / "a", "monday")
    assert index(tmp_path / "b", "tuesday") == before  # no time or commit in them
    write_ytvos(root, {"owl": 6})
    after = index(tmp_path / "c", "wednesday")
    assert after[0] == before[0] and after[2] == before[2] and after[1] != before[1]

    one = pd.read_parquet(tmp_path / "c" / "shard_00001.parquet")
    clips = pd.read_parquet(tmp_path / "c" / "clips.parquet")
    assert list(one["video_id"]) == ["cat", "cat", "owl", "owl"] and list(one["clip"]) == [0, 1, 0, 1]
    assert list(one["clip_id"]) == list(clips[clips["shard"] == 1]["clip_id"])
    assert list(one["num_frames"]) == [7, 7, 6, 6] and set(one["status"]) == {"ok"}
    assert set(one["path"]) == {str(root / "JPEGImages" / v) for v in ("cat", "owl")}
    meta = json.loads(pq.read_schema(tmp_path / "c" / "shard_00001.parquet").metadata[b"mosic"])
    assert meta == {"shard": 1, "clips": dataclasses.asdict(CLIPS)}
