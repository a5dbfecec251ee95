"""Clip sampling follows the reference rules; shards and clips are stable when the corpus changes."""

import dataclasses

import numpy as np
import pytest

from mosic.config import ClipsConfig
from mosic.data.clips import check_clip_ids, clip_id, is_short, sample_clip, sample_clips, shard_of, video_rng


def make_cfg(**kw) -> ClipsConfig:
    base = dict(mode="regular", num_frames=12, step=6, clips_per_video=3, short_videos="pad", seed=0, num_shards=8)
    return ClipsConfig(**{**base, **kw})


def test_regular_long_video_uses_configured_step():
    cfg = make_cfg()
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        idx = sample_clip(180, cfg, rng)
        assert len(idx) == 12
        assert np.all(np.diff(idx) == 6)
        assert 0 <= idx[0] <= 180 - 72 and idx[-1] <= 179
        starts.add(int(idx[0]))
    assert min(starts) == 0 and max(starts) == 180 - 72  # the whole inclusive start range is reachable


def test_regular_short_video_shrinks_step_like_the_reference():
    cfg = make_cfg()
    idx = sample_clip(40, cfg, np.random.default_rng(0))  # 40 < 12 * 6 -> step = 40 // 12 = 3
    assert np.all(np.diff(idx) == 3)
    assert idx[-1] <= 39


def test_regular_shorter_than_clip_repeats_last_frame():
    idx = sample_clip(5, make_cfg(), np.random.default_rng(0))
    assert idx.tolist() == [0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4]


def test_uniform_sorted_and_without_replacement_when_possible():
    cfg = make_cfg(mode="uniform")
    rng = np.random.default_rng(1)
    idx = sample_clip(30, cfg, rng)
    assert len(idx) == 12 and np.all(np.diff(idx) > 0)
    short = sample_clip(4, cfg, rng)
    assert len(short) == 12 and np.all(np.diff(short) >= 0) and short.max() <= 3


def test_dense_is_consecutive_and_padded():
    cfg = make_cfg(mode="dense")
    idx = sample_clip(50, cfg, np.random.default_rng(2))
    assert np.all(np.diff(idx) == 1)
    assert sample_clip(7, cfg, np.random.default_rng(2)).tolist() == [0, 1, 2, 3, 4, 5, 6, 6, 6, 6, 6, 6]


def test_full_returns_every_frame():
    assert sample_clip(17, make_cfg(mode="full"), np.random.default_rng(0)).tolist() == list(range(17))


@pytest.mark.parametrize(
    ("mode", "frames", "short"), [("regular", 66, True), ("regular", 67, False), ("dense", 11, True)]
)
def test_short_videos_skip(mode, frames, short):
    cfg = make_cfg(mode=mode, short_videos="skip")
    assert is_short(frames, cfg) is short
    assert (sample_clips("v", frames, cfg) == []) is short
    assert len(sample_clips("v", frames, dataclasses.replace(cfg, short_videos="pad"))) == 3


def test_clips_depend_only_on_video_id_and_seed():
    cfg = make_cfg()
    a = sample_clips("video_a", 300, cfg)
    # Sampling other videos first must not change video_a's clips.
    for vid in ("x", "y", "z"):
        sample_clips(vid, 300, cfg)
    b = sample_clips("video_a", 300, cfg)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = sample_clips("video_a", 300, dataclasses.replace(cfg, seed=1))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))
    assert video_rng(0, "a").integers(1 << 30) != video_rng(0, "b").integers(1 << 30)


def test_shard_assignment_is_stable_and_spread():
    ids = [f"vid{i:04d}" for i in range(2000)]
    shards = [shard_of(v, 16) for v in ids]
    assert shards == [shard_of(v, 16) for v in ids]
    counts = np.bincount(shards, minlength=16)
    assert counts.min() > 2000 / 16 * 0.7  # roughly even
    assert shard_of("vid0007", 16) == shard_of("vid0007", 16)


def test_clip_id_is_a_63_bit_hash_of_video_and_clip_number():
    # Pinned: shards on disk hold these ids, so the formula must not drift.
    assert clip_id("bear", 0) == 92900983640129681 and clip_id("bear", 1) == 4825082586287954805
    ids = [clip_id(f"vid{v:05d}", c) for v in range(20_000) for c in range(5)]
    assert all(0 <= i < 1 << 63 for i in ids) and len(set(ids)) == len(ids)
    assert clip_id("a1", 0) != clip_id("a", 10)  # the separator keeps video id and number apart


def test_check_clip_ids_names_both_clips_of_a_collision():
    check_clip_ids([clip_id("a", 0), clip_id("a", 1)], ["a", "a"], [0, 1])
    with pytest.raises(ValueError, match="id 5 is shared by clip 0 of 'a' and clip 0 of 'b'"):
        check_clip_ids([5, 7, 5], ["a", "a", "b"], [0, 1, 0])
