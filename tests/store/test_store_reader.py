"""ShardReader frame paths and TrackStore's global clip index across shards (an empty one included)."""

import pickle

import numpy as np
import pytest
import zarr
from store_helpers import PROVENANCE, N, T, make_clip, write_shard
from zarr.codecs import Crc32cCodec, ZstdCodec

from mosic.store import CorruptShardError, ShardReader, ShardWriter, StoreError, TrackStore, verify_shard


@pytest.fixture
def three_shards(tmp_path, rng):
    """Shards of 3, 0 (all skipped) and 2 clips; clip ids 0-4 in global order."""
    a = write_shard(tmp_path / "a.zarr", [make_clip(rng, i, video_id="va") for i in range(3)])
    b = write_shard(tmp_path / "b.zarr", [], skipped=[("vb", 99, "corrupt")])
    c = write_shard(tmp_path / "c.zarr", [make_clip(rng, i, video_id="vc") for i in range(3, 5)])
    return [a, b, c]


def test_global_index_across_shards(three_shards):
    store = TrackStore(three_shards)
    assert len(store) == 5 and store.lengths == [3, 0, 2]
    assert [store.locate(i) for i in range(5)] == [(0, 0), (0, 1), (0, 2), (2, 0), (2, 1)]
    assert [store[i].clip_id for i in range(5)] == [0, 1, 2, 3, 4]
    assert store[-1].video_id == "vc" and store.locate(-5) == (0, 0)
    with pytest.raises(IndexError):
        store.locate(5)
    np.testing.assert_array_equal(store[3].frames, ShardReader(three_shards[2])[0].frames)


def test_empty_shards_first_and_last(tmp_path, rng):
    empty = [write_shard(tmp_path / f"e{i}.zarr", []) for i in range(2)]
    full = write_shard(tmp_path / "f.zarr", [make_clip(rng, 7)])
    store = TrackStore([empty[0], full, empty[1]])
    assert len(store) == 1 and store.locate(0) == (1, 0) and store[0].clip_id == 7
    assert len(TrackStore([])) == 0


def test_store_pickles_without_open_readers(three_shards):
    store = TrackStore(three_shards)
    store[4]
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone[4].frames, store[4].frames)
    reader = pickle.loads(pickle.dumps(ShardReader(three_shards[0])))
    assert len(reader) == 3


def test_shards_must_agree_on_shapes(tmp_path, rng, three_shards):
    other = tmp_path / "big.zarr"
    with ShardWriter(other, num_frames=T, height=16, width=16, num_points=N, attrs=PROVENANCE):
        pass
    with pytest.raises(StoreError, match="disagree"):
        TrackStore([three_shards[0], other])


def _rewrite_frames(shard, **layout):
    """Replace the frames array with the same data in another layout (as a foreign writer might)."""
    group = zarr.open_group(shard, mode="r+")
    data = group["frames"][:]
    del group["frames"]
    group.create_array("frames", shape=data.shape, dtype=data.dtype, **layout)[:] = data
    return data


@pytest.mark.parametrize(
    ("layout", "fast"),
    [
        ({"chunks": (1, 3, 8, 10, 3), "compressors": (Crc32cCodec(),)}, True),  # one file per clip
        ({"chunks": (1, 3, 8, 10, 3), "compressors": None}, True),  # no crc
        ({"chunks": (1, 3, 8, 10, 3), "shards": (4, 3, 8, 10, 3), "compressors": None}, True),
        ({"chunks": (2, 3, 8, 10, 3), "compressors": (ZstdCodec(level=1),)}, False),  # falls back to zarr
    ],
)
def test_other_frames_layouts(shard, clips, layout, fast):
    _rewrite_frames(shard, **layout)
    reader = ShardReader(shard)
    assert reader._frames.fast is fast
    store = TrackStore([shard])
    for i, clip in enumerate(clips):
        np.testing.assert_array_equal(reader[i].frames, clip.frames)
        # Some frames only, in the order asked (the training items read only a step's frames).
        for frames in ([0], [2, 0], [0, 1, 2]):
            np.testing.assert_array_equal(store.read_frames(i, frames), clip.frames[frames])
        tracks, visible = store.points(i)
        np.testing.assert_array_equal(tracks, reader[i].tracks)
        np.testing.assert_array_equal(visible, clip.visibility)
    with pytest.raises(IndexError):
        store.read_frames(0, [3])


def test_reader_refuses_other_schema_versions(shard):
    zarr.open_group(shard, mode="r+").attrs["schema_version"] = 0
    with pytest.raises(StoreError, match="schema version 0"):
        ShardReader(shard)


def test_fast_path_reports_truncated_frames(shard):
    path = shard / "frames" / "c" / "0" / "0" / "0" / "0" / "0"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(StoreError, match="shard index"):
        ShardReader(shard)[0]
    assert verify_shard(shard)


def test_reader_notices_a_replaced_shard(tmp_path, rng, clips):
    path = write_shard(tmp_path / "s.zarr", clips)
    reader = ShardReader(path)
    reader[0]
    write_shard(path, clips[:2])
    with pytest.raises(StoreError, match="changed on disk"):
        reader[0]
    assert len(ShardReader(path)) == 2


def test_corrupt_tracks_chunk_names_shard_array_clips_and_verify(three_shards):
    """A garbage tracks chunk fails the read with one sentence naming where to look, not a zarr traceback."""
    shard = three_shards[2]  # global clips 3 and 4; tracks chunks hold 2 clips, so chunk 0 is both
    (shard / "tracks" / "c" / "0" / "0" / "0" / "0").write_bytes(b"not a blosc chunk" * 8)
    store = TrackStore(three_shards)
    assert store[0].clip_id == 0  # other shards still read
    with pytest.raises(CorruptShardError) as info:
        store[4]
    message = str(info.value)
    assert str(shard) in message and "'tracks'" in message
    assert "clip 4 of the track store (clip 1 of shard 2)" in message and "clips 0-1" in message
    assert f"python -m mosic.store.verify {shard}" in message
    assert isinstance(info.value, StoreError) and info.value.clips == [(0, 2)]
    assert info.value.__cause__ is not None  # the zarr error stays attached
    with pytest.raises(CorruptShardError, match=r"array 'tracks' is damaged at clips 0-1"):
        ShardReader(shard)


def test_missing_frames_names_the_clip_and_verify(shard):
    """A frames shard file that vanished names the clip and the verify command."""
    (shard / "frames" / "c" / "1" / "0" / "0" / "0" / "0").unlink()  # clips 2-3
    reader = ShardReader(shard)
    reader[1]
    with pytest.raises(CorruptShardError, match=r"'frames' is damaged at clip 3: .*mosic\.store\.verify"):
        reader[3]


@pytest.mark.parametrize("name", ["tracks", "visibility", "clip_id"])
def test_missing_small_array_chunk_fails_the_open_naming_the_clips(three_shards, name):
    """Zarr reads a deleted chunk file back as fill values; the reader checks the writer's crc32c and says which
    clips are gone instead of serving zeros."""
    shard = three_shards[2]
    chunk = next(p for p in sorted((shard / name / "c").rglob("*")) if p.is_file())
    data = chunk.read_bytes()
    chunk.unlink()
    try:
        with pytest.raises(
            CorruptShardError, match=rf"array '{name}' is damaged at clips 0-1: its chunk file is missing"
        ):
            ShardReader(shard)
    finally:
        chunk.write_bytes(data)
    assert len(ShardReader(shard)) == 2
