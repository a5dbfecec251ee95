"""Writer -> reader round trip: values, dtypes, attrs and provenance; writer input checks."""

import json

import numpy as np
import pytest
import zarr
from store_helpers import PROVENANCE, H, N, T, W, make_clip, write_shard

from mosic.store import SCHEMA_VERSION, ShardReader, ShardWriter, verify_shard
from mosic.store.schema import TRACK_SCALE, decode_tracks, encode_tracks


def test_round_trip_values(shard, clips):
    reader = ShardReader(shard)
    assert len(reader) == len(clips)
    for i, want in enumerate(clips):
        got = reader[i]
        assert got.video_id == want.video_id and got.clip_id == want.clip_id
        np.testing.assert_array_equal(got.frame_indices, want.frame_indices)
        np.testing.assert_array_equal(got.frames, want.frames)
        np.testing.assert_array_equal(got.visibility, want.visibility)
        assert np.abs(got.tracks - want.tracks).max() <= 1 / 32
        assert got.confidence is None
    np.testing.assert_array_equal(reader[-1].frames, clips[-1].frames)
    with pytest.raises(IndexError):
        reader[len(clips)]


def test_dtypes_and_attrs(shard, clips):
    reader = ShardReader(shard)
    got = reader[0]
    assert got.frames.dtype == np.uint8 and got.frames.shape == (T, H, W, 3) and got.frames.flags.writeable
    assert got.tracks.dtype == np.float32 and got.tracks.shape == (T, N, 2)
    assert got.visibility.dtype == np.bool_ and got.visibility.shape == (T, N)
    assert got.frame_indices.dtype == np.int32
    attrs = reader.attrs
    assert attrs["schema_version"] == SCHEMA_VERSION and attrs["format"] == "mosic.track_store"
    for key, value in PROVENANCE.items():
        assert attrs[key] == value
    assert attrs["shape"] == {"T": T, "N": N, "H": H, "W": W}
    assert attrs["num_clips"] == len(clips) and attrs["videos"] == ["vid_0", "vid_1", "vid_2"]
    assert attrs["skipped"] == [{"video_id": "vid_x", "clip_id": 99, "reason": "cannot decode frame 3"}]
    assert "pixel centres at integer coordinates" in attrs["coordinates"]
    assert set(attrs["checksums"]["arrays"]) == {
        "frames",
        "tracks",
        "visibility",
        "clip_video",
        "clip_frames",
        "clip_id",
    }
    group = zarr.open_group(shard, mode="r")
    dtypes = {name: str(group[name].dtype) for name in group.array_keys()}
    assert dtypes == {
        "frames": "uint8",
        "tracks": "int16",
        "visibility": "bool",
        "clip_video": "int32",
        "clip_frames": "int32",
        "clip_id": "int64",
    }
    np.testing.assert_array_equal(reader.clip_ids, [c.clip_id for c in clips])


def test_confidence_round_trip(tmp_path, rng):
    clips = [make_clip(rng, i, confidence=True) for i in range(3)]
    path = write_shard(tmp_path / "conf.zarr", clips, has_confidence=True)
    assert verify_shard(path) == []
    reader = ShardReader(path)
    for i, want in enumerate(clips):
        assert np.abs(reader[i].confidence - want.confidence).max() <= 1 / 510 + 1e-6


def test_empty_shard_is_valid(tmp_path):
    path = write_shard(tmp_path / "empty.zarr", [], skipped=[("vid_a", 0, "too short"), ("vid_b", 1, "corrupt")])
    assert verify_shard(path) == []
    reader = ShardReader(path)
    assert len(reader) == 0 and len(reader.attrs["skipped"]) == 2


def test_track_encoding_precision_up_to_2048_px():
    rng = np.random.default_rng(1)
    x = rng.uniform(-0.5, 2047.5, size=(100_000, 2)).astype(np.float32)
    back = decode_tracks(encode_tracks(x, 2048, 2048), 2048, 2048)
    assert np.abs(back - x).max() <= 0.5 / TRACK_SCALE + 1e-4
    far = np.array([[-5000.0, 9000.0]], dtype=np.float32)  # clamped to the out-of-frame margin
    assert np.isfinite(decode_tracks(encode_tracks(far, 2048, 2048), 2048, 2048)).all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tracks": np.full((T, N, 2), np.nan, np.float32)}, "non-finite"),
        ({"frames": np.zeros((T, H, W, 3), np.float32)}, "frames must be uint8"),
        ({"visibility": np.ones((T, N), np.uint8)}, "visibility must be bool"),
        ({"tracks": np.full((T, N, 2), W + 5.0, np.float32), "visibility": np.ones((T, N), bool)}, "outside"),
        ({"confidence": np.ones((T, N), np.float32)}, "has_confidence=False"),
    ],
)
def test_writer_rejects_bad_clips(tmp_path, rng, change, message):
    clip = make_clip(rng, 0)
    bad = type(clip)(**{**clip.__dict__, **change})
    with ShardWriter(tmp_path / "s.zarr", num_frames=T, height=H, width=W, num_points=N, attrs=PROVENANCE) as w:
        with pytest.raises(ValueError, match=message):
            w.add(bad)
        w.add(clip)
    assert len(ShardReader(tmp_path / "s.zarr")) == 1


def test_writer_checks_attrs(tmp_path):
    kwargs = {"num_frames": T, "height": H, "width": W, "num_points": N}
    with pytest.raises(ValueError, match="provenance"):
        ShardWriter(tmp_path / "s.zarr", attrs={"tracker": {"name": "x"}}, **kwargs)
    with pytest.raises(ValueError, match="JSON"):
        ShardWriter(tmp_path / "s.zarr", attrs={**PROVENANCE, "extra": np.float32(1)}, **kwargs)
    with pytest.raises(ValueError, match="writer sets"):
        ShardWriter(tmp_path / "s.zarr", attrs={**PROVENANCE, "num_clips": 3}, **kwargs)
    json.dumps(PROVENANCE)


def test_points_on_the_tolerance_edge_verify(tmp_path, rng):
    clip = make_clip(rng, 0)
    edge = 0.5 + 1 / 16  # the writer accepts visible points this far past the pixel-centre bounds
    clip.tracks[0, :4] = [(-edge, -edge), (W - 1 + edge, H - 1 + edge), (-edge, H - 1 + edge), (3.0, -edge)]
    clip.visibility[0, :4] = True
    path = write_shard(tmp_path / "edge.zarr", [clip])
    assert verify_shard(path) == []
