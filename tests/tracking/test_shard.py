"""The tracking job: a shard of clips -> decoded, tracked, stored atomically; bad clips skipped; kill-safe."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mosic.config import (
    ClipsConfig,
    CoTrackerConfig,
    DatasetConfig,
    IndexConfig,
    LKConfig,
    SyntheticConfig,
    TrackConfig,
)
from mosic.data.clips import clip_id
from mosic.data.index import run_index
from mosic.data.readers import open_video, scan
from mosic.data.synthetic import generate_synthetic
from mosic.geometry import grid_queries
from mosic.store import ShardReader, verify_shard
from mosic.tracking.base import TrackResult
from mosic.tracking.evaluate import clip_ground_truth, evaluate_shards
from mosic.tracking.shard import BadClipError, check_frames, track_shard

PROV = {
    "mosic_version": "0.1.0",
    "git_sha": "test",
    "config": {},
    "config_hash": "x",
    "created": "2026-01-01T00:00:00+00:00",
    "python": "3.11",
}
CLIPS = ClipsConfig(mode="regular", num_frames=4, step=1, clips_per_video=2, short_videos="pad", seed=0, num_shards=1)


def track_cfg(**kw) -> TrackConfig:
    base = dict(
        tracker="lk",
        height=32,
        width=32,
        grid=4,
        on_bad_clip="skip",
        threads=1,
        lk=LKConfig(win_size=15, levels=2, fb_threshold=2.0, max_iter=30, eps=0.01),
        cotracker=CoTrackerConfig(checkpoint="", visibility_threshold=0.9, autocast=False),
    )
    return TrackConfig(**{**base, **kw})


def index_tree(root: Path, out: Path, verify_frames: bool = True) -> Path:
    """Index `root` into `out`; returns the clip list of the one shard."""
    run_index(
        root=root,
        dataset=DatasetConfig(name="t", kind="ytvos", root=str(root), split="", on_error="skip"),
        index=IndexConfig(verify_frames=verify_frames, threads=1),
        clips=CLIPS,
        index_path=out / "index.parquet",
        clips_path=out / "clips.parquet",
        provenance=PROV,
        shard_paths=[out / "shard_00000.parquet"],
    )
    return out / "shard_00000.parquet"


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    cfg = SyntheticConfig(
        seed=3,
        num_videos=2,
        num_frames=8,
        height=48,
        width=48,
        num_classes=6,
        min_objects=2,
        max_objects=3,
        max_speed=1.5,
        camera_speed=0.5,
        scale_change=1.5,
        appearance_drift=0.3,
        faces=1,
        turn_frames=1,
        turn_travel=0.0,
        texture_seed=0,
        noise=1.0,
        track_grid=4,
        write_mp4=False,
        images_train=1,
        images_val=1,
    )
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic(cfg, root)
    return root / "ytvos"


def test_track_shard_writes_a_verified_shard(tmp_path, synthetic_root):
    clips = index_tree(synthetic_root, tmp_path)
    out = tmp_path / "shard_00000.zarr"
    summary = track_shard(shard=0, clips_path=clips, num_frames=4, track=track_cfg(), out_path=out, provenance=PROV)
    assert summary == {"clips": 4, "skipped": 0}
    assert verify_shard(out) == []
    reader = ShardReader(out)
    assert len(reader) == 4
    assert reader.attrs["tracker"]["name"] == "lk" and reader.attrs["git_sha"] == "test"
    listed = pd.read_parquet(clips)
    assert list(reader.clip_ids) == list(listed["clip_id"])  # the stable ids, in the list's order
    assert [clip_id(v, c) for v, c in zip(listed["video_id"], listed["clip"], strict=True)] == list(reader.clip_ids)
    clip = reader[0]
    assert clip.frames.shape == (4, 32, 32, 3) and clip.tracks.shape == (4, 16, 2)
    np.testing.assert_allclose(clip.tracks[0], grid_queries(32, 32, 4), atol=1 / 16)
    # Frames in the cache are exactly what the reader decodes at the cache resolution.
    info = next(i for i in scan(synthetic_root, "ytvos") if i.video_id == clip.video_id)
    with open_video(info) as video:
        np.testing.assert_array_equal(clip.frames, video.read(clip.frame_indices, size=(32, 32)))

    metrics = evaluate_shards([out], synthetic_root / "Scenes")
    assert metrics["clips"] == 4 and metrics["ground_truth"]["delta_avg"] == pytest.approx(1.0)
    assert 0.0 < metrics["cached"]["delta_avg"] <= 1.0


def test_track_shard_refuses_another_shards_clip_list(tmp_path, synthetic_root):
    clips = index_tree(synthetic_root, tmp_path)
    with pytest.raises(ValueError, match="lists the clips of shard 0, not of shard 1"):
        track_shard(shard=1, clips_path=clips, num_frames=4, track=track_cfg(), out_path=tmp_path / "s.zarr",
                    provenance=PROV)  # fmt: skip
    assert not (tmp_path / "s.zarr").exists()


def test_clip_ground_truth_maps_cache_pixels_to_source_and_back(synthetic_root):
    from mosic.data.synthetic import load_scene

    scene = load_scene(synthetic_root / "Scenes" / "synth_00000.json")
    q = grid_queries(24, 24, 4)  # a cache at half the source resolution
    tracks, vis = clip_ground_truth(scene, np.array([2, 3, 4]), q, (24, 24))
    np.testing.assert_allclose(tracks[0], q, atol=1e-4)  # the query frame returns the queries
    assert vis[0].all() and tracks.shape == (3, 16, 2)


def write_video(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{t:05d}.png")


def textured(rng, h=32, w=32) -> np.ndarray:
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def bad_tree(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "ytvos"
    jpeg = root / "JPEGImages"
    write_video(jpeg / "good", [textured(rng) for _ in range(5)])
    write_video(jpeg / "black", [textured(rng)] * 2 + [np.zeros((32, 32, 3), np.uint8)] * 3)
    write_video(jpeg / "sizes", [textured(rng) for _ in range(4)] + [textured(rng, 40, 32)])
    write_video(jpeg / "corrupt", [textured(rng) for _ in range(5)])
    return root


def test_bad_clips_are_skipped_with_reasons_and_the_rest_written(tmp_path, bad_tree, caplog):
    clips = index_tree(bad_tree, tmp_path, verify_frames=False)
    (bad_tree / "JPEGImages" / "corrupt" / "00001.png").write_bytes(b"not a png")  # breaks after indexing
    out = tmp_path / "shard_00000.zarr"
    summary = track_shard(shard=0, clips_path=clips, num_frames=4, track=track_cfg(), out_path=out, provenance=PROV)
    reader = ShardReader(out)
    assert set(reader.videos) >= {"good"}
    assert summary["clips"] == len(reader) >= 2
    skipped = {(s["video_id"], s["reason"]) for s in reader.attrs["skipped"]}
    reasons = " ".join(r for _, r in skipped)
    assert any(v == "black" for v, _ in skipped) and "constant (every pixel = 0)" in reasons
    assert any(v == "sizes" for v, _ in skipped) and "is 32x40, the other frames of the clip are 32x32" in reasons
    assert any(v == "corrupt" for v, _ in skipped) and "00001.png" in reasons
    assert "skipped" in caplog.text
    assert verify_shard(out) == []


def test_bad_clip_fail_mode_names_the_file_and_writes_nothing(tmp_path, bad_tree):
    clips = index_tree(bad_tree, tmp_path)
    out = tmp_path / "shard_00000.zarr"
    with pytest.raises(BadClipError, match="black"):
        track_shard(
            shard=0,
            clips_path=clips,
            num_frames=4,
            track=track_cfg(on_bad_clip="fail"),
            out_path=out,
            provenance=PROV,
        )
    assert not out.exists() and not list(tmp_path.glob(".shard_00000.zarr.tmp-*"))


def test_check_frames_accepts_a_normal_clip():
    frames = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 3), dtype=np.uint8)
    assert check_frames(frames, np.arange(3), [(8, 8)] * 3) == ""


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mosic.tracking.base import TrackResult
    from mosic.tracking.lk import LKTracker
    from mosic.tracking.shard import track_shard
    from test_shard import PROV, track_cfg

    class SlowTracker(LKTracker):
        def track(self, clip, queries):
            print("tracked", flush=True)
            time.sleep(0.5)
            return super().track(clip, queries)

    d = Path(sys.argv[1])
    track_shard(shard=0, clips_path=d / "shard_00000.parquet", num_frames=4,
                track=track_cfg(), out_path=d / "shard_00000.zarr", provenance=PROV, tracker=SlowTracker())
    """
)


@pytest.mark.slow
def test_sigkill_mid_shard_leaves_no_partial_shard_and_rerun_verifies(tmp_path, synthetic_root):
    index_tree(synthetic_root, tmp_path)
    script = tmp_path / "job.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "tracked"  # mid-shard: the first clip is being tracked
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    final = tmp_path / "shard_00000.zarr"
    assert not final.exists()
    res = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert verify_shard(final) == [] and len(ShardReader(final)) == 4
    assert not list(tmp_path.glob(".shard_00000.zarr.tmp-*"))  # the killed job's leftovers were cleaned up


def test_tracker_result_contract_is_enforced():
    with pytest.raises((ValueError, TypeError)):
        TrackResult(tracks=np.zeros((2, 3, 2), np.float64), visibility=np.zeros((2, 3), bool))
