"""verify_shard and its command line catch damage, broken contracts and incomplete stores."""

import subprocess
import sys

import numpy as np
import pytest
import zarr
from store_helpers import H, W

from mosic.store import CorruptShardError, ShardReader, verify_shard
from mosic.store.schema import TRACK_NAN, checksum, encode_tracks


def test_clean_shard_verifies(shard):
    assert verify_shard(shard) == []


def test_flipped_bytes_in_a_frames_chunk(shard):
    chunk = shard / "frames" / "c" / "1" / "0" / "0" / "0" / "0"  # clips 2-3 (frames shards hold 2 clips)
    data = bytearray(chunk.read_bytes())
    data[50] ^= 0xFF
    chunk.write_bytes(bytes(data))
    problems = verify_shard(shard)
    assert any(p.startswith("frames: clip 2 (clip_id 12)") and "checksum" in p.lower() for p in problems), problems
    assert not any(p.startswith("frames: clip 3") for p in problems)


def test_flipped_bytes_in_a_tracks_chunk(shard):
    chunk = shard / "tracks" / "c" / "0" / "0" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    problems = verify_shard(shard)
    assert any(p.startswith("tracks: clip 0") and "cannot be read" in p for p in problems), problems


def test_missing_chunk_file(shard):
    (shard / "visibility" / "c" / "1" / "0" / "0").unlink()
    problems = verify_shard(shard)
    assert any(p.startswith("visibility: crc32c checksum mismatch") for p in problems), problems


def test_nan_tracks(shard):
    tracks = zarr.open_array(shard / "tracks", mode="r+")
    tracks[3, 1, 2, 0] = TRACK_NAN  # the code that decodes to NaN
    problems = verify_shard(shard)
    assert any(p.startswith("tracks: clip 3 (clip_id 13) has 1 non-finite") for p in problems), problems
    assert any(p.startswith("tracks: crc32c checksum mismatch") for p in problems)
    with pytest.raises(CorruptShardError, match=r"'tracks' is damaged at an unknown clip: its data differ"):
        ShardReader(shard)  # the reader checks the writer's crc32c of the small arrays too
    # Were the code written by the writer (its crc32c recorded), the reader would decode it as NaN.
    group = zarr.open_group(shard, mode="r+")
    sums = dict(group.attrs["checksums"])
    sums["arrays"] = {**sums["arrays"], "tracks": checksum(np.asarray(tracks[:]))}
    group.attrs["checksums"] = sums
    assert np.isnan(ShardReader(shard)[3].tracks[1, 2, 0])


def test_out_of_range_coordinates(shard, clips):
    tracks = zarr.open_array(shard / "tracks", mode="r+")
    vis = zarr.open_array(shard / "visibility", mode="r+")
    i = 4
    vis[i, 0, 0] = True
    tracks[i, 0, 0] = encode_tracks(np.array([W + 3.0, 1.0]), H, W)  # visible, 3 px right of the frame
    vis[1, 2, 3] = False
    tracks[1, 2, 3] = np.array([20000, 0], dtype=np.int16)  # far beyond the out-of-frame margin
    problems = verify_shard(shard)
    assert any(p.startswith("tracks: clip 4 (clip_id 14) has 1 visible points outside") for p in problems), problems
    assert any(p.startswith("tracks: clip 1 (clip_id 11) has 1 points more than 1000 px") for p in problems), problems


def test_wrong_schema_version(shard):
    group = zarr.open_group(shard, mode="r+")
    group.attrs["schema_version"] = 999
    problems = verify_shard(shard)
    assert problems == ["attrs: schema_version is 999, expected 1."]


def test_clip_index_problems(shard):
    zarr.open_array(shard / "clip_id", mode="r+")[1] = 10  # duplicates clip 0's id
    zarr.open_array(shard / "clip_video", mode="r+")[0] = 7  # no such video
    problems = verify_shard(shard)
    assert any(p.startswith("clip_id: ids [10] occur more than once") for p in problems), problems
    assert any(p.startswith("clip_video: clip 0") for p in problems), problems


def test_wrong_shape(shard):
    zarr.open_array(shard / "visibility", mode="r+").resize((4, 3, 6))
    assert any(p.startswith("visibility: expected bool (5, 3, 6), found bool (4, 3, 6)") for p in verify_shard(shard))


def test_cli(shard, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "mosic.store.verify", str(shard)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("OK"), ok.stdout + ok.stderr
    partial = tmp_path / ".shard_0001.zarr.tmp-123"
    partial.mkdir()
    bad = subprocess.run(
        [sys.executable, "-m", "mosic.store.verify", str(shard), str(partial), str(tmp_path / "absent.zarr")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert "incomplete" in bad.stdout and "does not exist" in bad.stdout and "1 of 3 shards OK" in bad.stdout


@pytest.mark.parametrize("name", [".shard.zarr", "shard.zarr.tmp-42"])
def test_temporary_names_are_incomplete(tmp_path, name):
    (tmp_path / name).mkdir()
    assert "incomplete" in verify_shard(tmp_path / name)[0]
