"""The ground-truth tracker: the synthetic dataset's exact tracks, at the cache resolution, into a shard."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mosic.config import (
    ClipsConfig,
    CoTrackerConfig,
    DatasetConfig,
    IndexConfig,
    LKConfig,
    SyntheticConfig,
    TrackConfig,
)
from mosic.data.index import run_index
from mosic.data.synthetic import ground_truth_tracks, load_scene, render_video
from mosic.geometry import grid_queries
from mosic.store import ShardReader, verify_shard
from mosic.tracking import SourceTracker, Tracker, make_tracker
from mosic.tracking.evaluate import evaluate_shards
from mosic.tracking.ground_truth import GroundTruthTracker, MissingSceneError
from mosic.tracking.shard import track_shard, tracker_from_config

PROV = {"mosic_version": "0.1.0", "git_sha": "test", "config": {}, "config_hash": "x"}
# Turning objects (faces = 2) at 48 x 40 px; cached at 32 x 24 (height x width), so coordinates are rescaled.
SYNTH = SyntheticConfig(seed=5, num_videos=3, num_frames=10, height=48, width=40, num_classes=6, min_objects=2,
                        max_objects=3, max_speed=3.0, camera_speed=1.0, scale_change=1.5, appearance_drift=0.3,
                        faces=2, turn_frames=4, turn_travel=8.0, texture_seed=0, noise=1.0, track_grid=4,
                        write_mp4=False, images_train=1, images_val=1)  # fmt: skip
CLIPS = ClipsConfig(mode="regular", num_frames=4, step=2, clips_per_video=2, short_videos="pad", seed=0, num_shards=1)


def gt_cfg(**kw) -> TrackConfig:
    base = dict(
        tracker="ground_truth",
        height=32,
        width=24,
        grid=6,
        on_bad_clip="skip",
        threads=1,
        lk=LKConfig(win_size=15, levels=2, fb_threshold=2.0, max_iter=30, eps=0.01),
        cotracker=CoTrackerConfig(checkpoint="", visibility_threshold=0.9, autocast=False),
    )
    return TrackConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A generated synthetic dataset (ytvos/ with Scenes/) and its index and clips tables."""
    from mosic.data.synthetic import generate_synthetic

    d = tmp_path_factory.mktemp("gt")
    generate_synthetic(SYNTH, d / "data")
    root = d / "data" / "ytvos"
    run_index(
        root=root,
        dataset=DatasetConfig(name="t", kind="ytvos", root=str(root), split="", on_error="skip"),
        index=IndexConfig(verify_frames=True, threads=1),
        clips=CLIPS,
        index_path=d / "index.parquet",
        clips_path=d / "clips.parquet",
        provenance=PROV,
        shard_paths=[d / "shard_00000.parquet"],
    )
    return d


def test_ground_truth_tracker_is_built_by_name(tmp_path):
    tracker = make_tracker("ground_truth", scenes_dir=tmp_path)
    assert isinstance(tracker, GroundTruthTracker) and isinstance(tracker, Tracker)
    assert isinstance(tracker, SourceTracker) and tracker.name == "ground_truth" and not tracker.needs_gpu
    assert isinstance(tracker_from_config(gt_cfg(), scenes_dir=tmp_path), GroundTruthTracker)
    with pytest.raises(ValueError, match="Scenes"):
        tracker_from_config(gt_cfg())
    with pytest.raises(TypeError, match="video id and frame indices"):
        tracker.track(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((1, 2), np.float32))


def test_shard_holds_the_exact_tracks_scaled_to_the_cache(dataset, tmp_path):
    out = tmp_path / "shard_00000.zarr"
    track = gt_cfg()
    summary = track_shard(
        shard=0,
        clips_path=dataset / "shard_00000.parquet",
        num_frames=CLIPS.num_frames,
        track=track,
        out_path=out,
        provenance=PROV,
        scenes_dir=dataset / "data" / "ytvos" / "Scenes",
    )
    assert summary == {"clips": SYNTH.num_videos * CLIPS.clips_per_video, "skipped": 0}
    assert verify_shard(out) == []
    reader = ShardReader(out)
    assert reader.attrs["tracker"]["name"] == "ground_truth"
    queries = grid_queries(track.height, track.width, track.grid)
    tracker = GroundTruthTracker(dataset / "data" / "ytvos" / "Scenes")
    sx, sy = SYNTH.width / track.width, SYNTH.height / track.height
    turned = 0
    for i in range(len(reader)):
        clip = reader[i]
        scene = render_video(SYNTH, int(clip.video_id.split("_")[1])).scene
        t0 = int(clip.frame_indices[0])
        # Independently: cache pixels -> video pixels (pixel centres at integers), exact tracks, and back.
        src = np.stack([(queries[:, 0] + 0.5) * sx - 0.5, (queries[:, 1] + 0.5) * sy - 0.5], axis=-1)
        tracks, vis = ground_truth_tracks(scene, src.astype(np.float32), query_frame=t0)
        tracks, vis = tracks[clip.frame_indices], vis[clip.frame_indices]
        expected = np.stack([(tracks[..., 0] + 0.5) / sx - 0.5, (tracks[..., 1] + 0.5) / sy - 0.5], axis=-1)
        x, y = expected[..., 0], expected[..., 1]
        inside = (x >= 0) & (x <= track.width - 1) & (y >= 0) & (y <= track.height - 1)  # pixel-centre square
        # The tracker itself is exact; tracks[0] are the queries bit for bit.
        result = tracker.track_source(clip.frames, queries, video_id=clip.video_id, frame_indices=clip.frame_indices)
        np.testing.assert_array_equal(result.tracks[0], queries)
        np.testing.assert_allclose(result.tracks, expected, atol=1e-4)
        np.testing.assert_array_equal(result.visibility, vis & inside)
        # The shard holds them at its 1/16-px fixed point (out-of-frame positions are clamped to its margin).
        np.testing.assert_array_equal(clip.visibility, vis & inside)
        np.testing.assert_allclose(clip.tracks[clip.visibility], expected[clip.visibility], atol=1 / 32 + 1e-6)
        assert clip.frames.shape == (CLIPS.num_frames, track.height, track.width, 3)
        turned += any(o.turn_start < clip.frame_indices[-1] and o.turn_start > t0 for o in scene.objects)
    assert turned > 0  # some clips see an object turn; its tracks are unaffected
    # The tracking metrics score the cache as perfect (up to the half-pixel border of the visibility rule).
    metrics = evaluate_shards([out], dataset / "data" / "ytvos" / "Scenes")
    assert metrics["tracker"]["name"] == "ground_truth"
    assert metrics["cached"]["delta_avg"] == pytest.approx(1.0)


def test_tracks_match_the_scene_file_tracks_at_the_video_resolution(dataset):
    """At the video's own size the tracker returns the generator's Tracks/<video>.npz for a clip from frame 0."""
    tracker = GroundTruthTracker(dataset / "data" / "ytvos" / "Scenes")
    with np.load(dataset / "data" / "ytvos" / "Tracks" / "synth_00001.npz") as z:
        queries, tracks, vis = z["queries"], z["tracks"], z["visibility"]
    frames = np.arange(0, SYNTH.num_frames, 3)
    clip = np.zeros((len(frames), SYNTH.height, SYNTH.width, 3), np.uint8)
    result = tracker.track_source(clip, queries, video_id="synth_00001", frame_indices=frames)
    np.testing.assert_allclose(result.tracks, tracks[frames], atol=1e-4)
    x, y = tracks[frames][..., 0], tracks[frames][..., 1]
    inside = (x >= 0) & (x <= SYNTH.width - 1) & (y >= 0) & (y <= SYNTH.height - 1)
    np.testing.assert_array_equal(result.visibility, vis[frames] & inside)
    assert tracker.scene("synth_00001") == load_scene(dataset / "data" / "ytvos" / "Scenes" / "synth_00001.json")
    with pytest.raises(ValueError, match="not frames of its scene"):
        tracker.track_source(clip[:2], queries, video_id="synth_00001", frame_indices=np.array([0, SYNTH.num_frames]))


def test_missing_scene_names_the_video_and_file_and_is_not_skipped(dataset, tmp_path):
    scenes = tmp_path / "Scenes"
    shutil.copytree(dataset / "data" / "ytvos" / "Scenes", scenes)
    (scenes / "synth_00002.json").unlink()
    clips = pd.read_parquet(dataset / "clips.parquet")
    assert "synth_00002" in set(clips["video_id"])
    with pytest.raises(MissingSceneError, match=r"synth_00002.*Scenes/synth_00002\.json.*synthetic"):
        track_shard(
            shard=0,
            clips_path=dataset / "shard_00000.parquet",
            num_frames=CLIPS.num_frames,
            track=gt_cfg(on_bad_clip="skip"),
            out_path=tmp_path / "shard_00000.zarr",
            provenance=PROV,
            scenes_dir=scenes,
        )
    assert not (tmp_path / "shard_00000.zarr").exists()
