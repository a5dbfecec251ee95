"""The CoTracker3 adapter's contract, tested without the package through a fake ``cotracker`` module.

The fake predictor mimics what the adapter uses of upstream (``CoTrackerPredictor(checkpoint=None, ...)``
with ``.model`` and ``.interp_shape``; ``model(video=, queries=, iters=)`` returning coordinates and two
probabilities) and records every call. Batches (``track_batch``, the shard job at ``batch_size`` 3) are checked
against clip-by-clip tracking with a fake whose output depends on each clip's pixels. The tests marked by
``importorskip("cotracker")`` run the real package (random weights) when it is installed.
"""

import json
import os
import pickle
import re
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mosic.config import ClipsConfig, CoTrackerConfig, DatasetConfig, IndexConfig, LKConfig, TrackConfig
from mosic.data.index import run_index
from mosic.geometry import grid_queries, inside_pixel_centres
from mosic.store import ShardReader, verify_shard
from mosic.tracking import BatchTracker, Tracker, make_tracker
from mosic.tracking.cotracker import INSTALL_HINT, CoTracker3Tracker, load_checkpoint, support_grid
from mosic.tracking.shard import track_shard, tracker_from_config

MODEL_HW = (16, 24)  # the fake's model resolution (upstream: 384 x 512)
STEP = torch.tensor([1.0, 0.5])  # the fake moves every point by this many model pixels per frame


class FakeModel(torch.nn.Module):
    """Moves each query by STEP per frame; visibility 0.95 for even points, 0.5 for odd ones; confidence 0.7."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(3))
        self.model_resolution = MODEL_HW
        self.calls = []

    def forward(self, video, queries, iters=4):
        self.calls.append({"video": video.clone(), "queries": queries.clone(), "iters": iters})
        B, T = video.shape[:2]
        N = queries.shape[1]
        t = torch.arange(T, dtype=torch.float32)[None, :, None, None]
        coords = queries[:, None, :, 1:] + t * STEP  # [B, T, N, 2]
        vis = torch.where(torch.arange(N) % 2 == 0, 0.95, 0.5).expand(B, T, N)
        conf = torch.full((B, T, N), 0.7)
        return coords, vis, conf, None


class ContentModel(FakeModel):
    """FakeModel whose output also depends on each clip's pixels, so a batch that mixed clips up would show.

    Frame t moves every point by a further (its top-left red value / 64) model px in x and y, and the visibility
    probability of point n is ``frac(5 * green / 255 + 0.37 n)`` (top-left green of frame t): elementwise maths
    only, so the batched (vmapped) call gives exactly the values of single calls. Resizing keeps corner pixels
    (``align_corners=True``).
    """

    def forward(self, video, queries, iters=4):
        coords, _, conf, _ = super().forward(video, queries, iters)
        corner = video[:, :, :, 0, 0]  # [B, T, 3]
        coords = coords + (corner[..., 0] / 64)[..., None, None]
        points = torch.arange(queries.shape[1], dtype=torch.float32)
        vis = torch.frac(corner[..., 1, None] / 255 * 5 + 0.37 * points)  # [B, T, N]
        return coords, vis, conf, None


class FakePredictor:
    instances = []

    def __init__(self, checkpoint="./checkpoints/scaled_offline.pth", offline=True, v2=False, window_len=60):
        # Upstream seeds torch at import and draws random weights at construction: touch the global RNG.
        torch.manual_seed(0)
        torch.rand(10)
        self.kwargs = {"checkpoint": checkpoint, "offline": offline, "v2": v2, "window_len": window_len}
        self.model = FakeModel()
        self.interp_shape = MODEL_HW
        FakePredictor.instances.append(self)


@pytest.fixture
def fake_cotracker(monkeypatch):
    FakePredictor.instances = []
    package = types.ModuleType("cotracker")
    predictor = types.ModuleType("cotracker.predictor")
    predictor.CoTrackerPredictor = FakePredictor
    package.predictor = predictor
    monkeypatch.setitem(sys.modules, "cotracker", package)
    monkeypatch.setitem(sys.modules, "cotracker.predictor", predictor)
    return FakePredictor


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "scaled_offline.pth"
    torch.save({"weight": torch.tensor([1.0, 2.0, 3.0])}, path)
    return path


def coloured_clip(T: int, H: int, W: int) -> np.ndarray:
    """Frame t is constant with RGB = (10t + 5, 10t + 6, 10t + 7): resizing keeps the values exactly."""
    base = 10 * np.arange(T)[:, None, None, None] + 5 + np.arange(3)
    return np.broadcast_to(base, (T, H, W, 3)).astype(np.uint8)


def test_contract_inputs_and_outputs(fake_cotracker, checkpoint):
    T, H, W = 5, 21, 33
    tracker = CoTracker3Tracker(checkpoint=checkpoint, device="cpu")
    assert isinstance(tracker, Tracker) and tracker.name == "cotracker3" and tracker.needs_gpu
    assert fake_cotracker.instances[0].kwargs == {"checkpoint": None, "offline": True, "v2": False, "window_len": 60}
    model = fake_cotracker.instances[0].model
    torch.testing.assert_close(model.weight, torch.tensor([1.0, 2.0, 3.0]))  # our weights_only load

    queries = np.array([[0.0, 0.0], [32.0, 20.0], [16.0, 10.0], [25.5, 3.25]], np.float32)
    result = tracker.track(coloured_clip(T, H, W), queries)

    (call,) = model.calls  # one forward pass for one clip
    video, model_queries = call["video"], call["queries"]
    assert video.dtype == torch.float32 and video.shape == (1, T, 3, *MODEL_HW)  # [1, T, 3, h, w], batch of one
    expected_values = torch.tensor(10 * np.arange(T)[:, None] + 5 + np.arange(3), dtype=torch.float32)
    torch.testing.assert_close(video[0].amax(dim=(2, 3)), expected_values)  # RGB order, 0..255, not normalised
    torch.testing.assert_close(video[0].amin(dim=(2, 3)), expected_values)
    assert call["iters"] == 6
    # Queries are (t=0, x, y) in model pixels (scale (w-1)/(W-1)), followed by upstream's 6x6 support grid.
    to_model = torch.tensor([(MODEL_HW[1] - 1) / (W - 1), (MODEL_HW[0] - 1) / (H - 1)])
    assert model_queries.shape == (1, 4 + 36, 3)
    assert (model_queries[0, :, 0] == 0).all()
    torch.testing.assert_close(model_queries[0, :4, 1:], torch.from_numpy(queries) * to_model)
    torch.testing.assert_close(model_queries[0, 4:, 1:], support_grid(6, *MODEL_HW))

    # Outputs come back in input pixels: the fake's motion of STEP model px per frame is STEP / to_model px.
    assert result.tracks.dtype == np.float32 and result.tracks.shape == (T, 4, 2)
    expected = queries[None] + (np.arange(T)[:, None, None] * (STEP / to_model).numpy()).astype(np.float32)
    np.testing.assert_allclose(result.tracks, expected, atol=1e-4)
    np.testing.assert_array_equal(result.tracks[0], queries)
    # Default rule: sigmoid(vis) > 0.9 -> even points; point 1 starts at the bottom-right pixel centre and
    # leaves the frame at t=1, so it is not visible from then on whatever its score.
    assert result.visibility.dtype == np.bool_ and result.confidence.dtype == np.float32
    np.testing.assert_array_equal(result.visibility[0], True)
    np.testing.assert_array_equal(result.visibility[1:], np.broadcast_to([True, False, True, False], (T - 1, 4)))
    np.testing.assert_allclose(result.confidence[1:], np.broadcast_to([0.95, 0.5, 0.95, 0.5], (T - 1, 4)))
    np.testing.assert_array_equal(result.confidence[0], 1.0)

    tracker.track(coloured_clip(T, H, W), queries)
    assert len(model.calls) == 2  # one call per clip, never batched


def content_tracker(checkpoint, **kw) -> CoTracker3Tracker:
    """A tracker on :class:`ContentModel` (needs the ``fake_cotracker`` fixture)."""
    tracker = CoTracker3Tracker(checkpoint=checkpoint, device="cpu", visibility_threshold=0.5, **kw)
    tracker._model = ContentModel()
    return tracker


def assert_same_results(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.tracks, b.tracks)
        np.testing.assert_array_equal(a.visibility, b.visibility)
        np.testing.assert_array_equal(a.confidence, b.confidence)


def test_track_batch_equals_clip_by_clip_in_one_forward_per_chunk(fake_cotracker, checkpoint):
    rng = np.random.default_rng(0)
    shapes = [(5, 21, 33)] * 2 + [(7, 21, 33)] + [(5, 21, 33)] * 2  # a longer clip in the middle
    clips = [rng.integers(0, 256, shape + (3,), dtype=np.uint8) for shape in shapes]
    queries = np.array([[0.0, 0.0], [32.0, 20.0], [16.0, 10.0], [25.5, 3.25], [3.0, 17.0]], np.float32)
    single = content_tracker(checkpoint)
    expected = [single.track(clip, queries) for clip in clips]
    assert len(single._model.calls) == 5

    batched = content_tracker(checkpoint, batch_size=3)
    assert isinstance(batched, BatchTracker) and batched.batch_size == 3
    results = batched.track_batch(clips, queries)
    assert_same_results(results, expected)
    assert 0 < np.mean([r.visibility[1:].mean() for r in results]) < 1  # the comparison covers both outcomes
    # The 4 five-frame clips run as chunks of 3 and 1, then the 7-frame clip: 3 forward passes, not 5.
    assert [call["video"].shape[1] for call in batched._model.calls] == [5, 5, 7]
    assert batched.track_batch([], queries) == []


def test_batch_size_is_validated_and_read_from_the_config(fake_cotracker, checkpoint, monkeypatch):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            CoTracker3Tracker(checkpoint=checkpoint, device="cpu", batch_size=bad)
    assert "batch_size" not in CoTracker3Tracker(checkpoint=checkpoint, device="cpu", batch_size=4).settings
    monkeypatch.setattr(torch.hub, "load", lambda *args, **kwargs: FakePredictor())
    cfg = CoTrackerConfig(checkpoint="", visibility_threshold=0.9, autocast=False, batch_size=5)
    tracker = tracker_from_config(shard_track_cfg(cotracker=cfg))
    assert isinstance(tracker, CoTracker3Tracker) and tracker.batch_size == 5
    assert CoTrackerConfig(checkpoint="", visibility_threshold=0.9, autocast=False).batch_size == 1


# --- the shard job at batch sizes 1 and 3 --------------------------------------------------------------------------
PROV = {"mosic_version": "0.1.0", "git_sha": "test", "config": {}, "config_hash": "x"}
# 3 frames at step 2; a 4-frame video is shorter than one clip (5 frames), so its step shrinks to 1 (padded).
SHARD_CLIPS = ClipsConfig(mode="regular", num_frames=3, step=2, clips_per_video=2, short_videos="pad", seed=0,
                          num_shards=1)  # fmt: skip


def shard_track_cfg(**kw) -> TrackConfig:
    base = dict(
        tracker="cotracker3",
        height=24,
        width=32,
        grid=3,
        on_bad_clip="skip",
        threads=1,
        lk=LKConfig(win_size=15, levels=2, fb_threshold=2.0, max_iter=30, eps=0.01),
        cotracker=CoTrackerConfig(checkpoint="", visibility_threshold=0.5, autocast=False),
    )
    return TrackConfig(**{**base, **kw})


@pytest.fixture
def shard_clips(tmp_path) -> Path:
    """Clip list of one shard: 8 good clips of 4 videos (one short), an all-black video in the middle."""
    rng = np.random.default_rng(1)
    root = tmp_path / "ytvos"
    lengths = {"a": 9, "b": 9, "c_black": 9, "c_short": 4, "d": 9}
    for video, length in lengths.items():
        folder = root / "JPEGImages" / video
        folder.mkdir(parents=True)
        for t in range(length):
            frame = np.zeros((24, 32, 3), np.uint8) if video == "c_black" else rng.integers(0, 256, (24, 32, 3))
            Image.fromarray(frame.astype(np.uint8)).save(folder / f"{t:05d}.png")
    run_index(
        root=root,
        dataset=DatasetConfig(name="t", kind="ytvos", root=str(root), split="", on_error="skip"),
        index=IndexConfig(verify_frames=False, threads=1),
        clips=SHARD_CLIPS,
        index_path=tmp_path / "index.parquet",
        clips_path=tmp_path / "clips.parquet",
        provenance=PROV,
        shard_paths=[tmp_path / "shard_00000.parquet"],
    )
    return tmp_path / "shard_00000.parquet"


@pytest.mark.parametrize("substep", [None, 1])
def test_track_shard_is_the_same_at_batch_sizes_1_and_3(fake_cotracker, checkpoint, shard_clips, tmp_path, substep):
    readers, calls = [], []
    for batch_size in (1, 3):
        tracker = content_tracker(checkpoint, batch_size=batch_size)
        out = tmp_path / f"batch{batch_size}.zarr"
        summary = track_shard(shard=0, clips_path=shard_clips, num_frames=3, track=shard_track_cfg(), out_path=out,
                              provenance=PROV, tracker=tracker, substep=substep)  # fmt: skip
        assert summary == {"clips": 8, "skipped": 2} and verify_shard(out) == []
        readers.append(ShardReader(out))
        calls.append([call["video"].shape[1] for call in tracker._model.calls])
    one, three = readers
    assert list(one.clip_ids) == list(three.clip_ids) and len(one) == 8
    assert one.attrs["skipped"] == three.attrs["skipped"]
    assert {s["video_id"] for s in one.attrs["skipped"]} == {"c_black"}
    assert one.attrs["tracker"] == three.attrs["tracker"]
    for i in range(len(one)):
        x, y = one[i], three[i]
        assert x.video_id == y.video_id
        np.testing.assert_array_equal(x.frame_indices, y.frame_indices)
        np.testing.assert_array_equal(x.frames, y.frames)
        np.testing.assert_array_equal(x.tracks, y.tracks)
        np.testing.assert_array_equal(x.visibility, y.visibility)
    visible = np.mean([one[i].visibility[1:].mean() for i in range(len(one))])
    assert 0 < visible < 1
    # Batches of 3 in shard order: a a b | b s s | d d (s: c_short). The short video's clips are padded, so with
    # substep 1 their dense clips (3 frames) are shorter than the others (5 frames) and the middle batch runs
    # as two forward passes.
    if substep:
        assert calls == [[5, 5, 5, 5, 3, 3, 5, 5], [5, 5, 3, 5]]
    else:
        assert calls == [[3] * 8, [3, 3, 3]]


def test_substep_tracks_the_dense_clip_in_one_call_and_keeps_the_sampled_frames(fake_cotracker, checkpoint):
    from mosic.tracking.substep import substep_frames, track_substep

    H, W = 21, 33
    frames, keep = substep_frames(np.array([0, 3, 6]), 1)  # 3 sampled frames at step 3, tracked through 7
    tracker = CoTracker3Tracker(checkpoint=checkpoint, device="cpu")
    queries = np.array([[0.0, 0.0], [16.0, 10.0]], np.float32)
    result = track_substep(tracker, coloured_clip(len(frames), H, W), queries, keep)

    (call,) = fake_cotracker.instances[0].model.calls
    assert call["video"].shape[1] == 7  # the whole dense clip in one forward pass
    # The fake moves STEP model px per frame it sees, so sampled frame i is 3 i dense frames on.
    to_model = np.array([(MODEL_HW[1] - 1) / (W - 1), (MODEL_HW[0] - 1) / (H - 1)])
    expected = queries[None] + (np.array([0, 3, 6])[:, None, None] * STEP.numpy() / to_model).astype(np.float32)
    assert result.tracks.shape == (3, 2, 2) and result.confidence.shape == (3, 2)
    np.testing.assert_allclose(result.tracks, expected, atol=1e-4)
    np.testing.assert_array_equal(result.visibility, [[True, True], [True, False], [True, False]])


def test_vis_conf_rule_and_settings(fake_cotracker, checkpoint):
    tracker = make_tracker(
        "cotracker3",
        checkpoint=str(checkpoint),
        visibility_score="vis_conf",
        visibility_threshold=0.6,
        support_points=0,
        iters=3,
        device="cpu",
    )
    queries = grid_queries(20, 20, 2)
    result = tracker.track(coloured_clip(3, 20, 20), queries)
    call = fake_cotracker.instances[0].model.calls[0]
    assert call["queries"].shape == (1, 4, 3) and call["iters"] == 3
    np.testing.assert_allclose(result.confidence[1:], np.broadcast_to([0.665, 0.35, 0.665, 0.35], (2, 4)), rtol=1e-6)
    np.testing.assert_array_equal(result.visibility[1:], np.broadcast_to([True, False, True, False], (2, 4)))
    settings = tracker.settings
    assert settings["source"]["kind"] == "checkpoint" and len(settings["source"]["sha256"]) == 64
    assert settings["model_resolution"] == list(MODEL_HW)
    assert (settings["visibility_score"], settings["visibility_threshold"]) == ("vis_conf", 0.6)
    assert json.loads(json.dumps(settings)) == settings


def test_checkpoint_loading_is_weights_only(fake_cotracker, tmp_path):
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": {"weight": torch.tensor([4.0, 5.0, 6.0])}}, wrapped)
    tracker = CoTracker3Tracker(checkpoint=wrapped, device="cpu")
    torch.testing.assert_close(tracker._model.weight, torch.tensor([4.0, 5.0, 6.0]))

    unsafe = tmp_path / "unsafe.pth"
    torch.save({"weight": torch.zeros(3), "extra": types.SimpleNamespace(a=1)}, unsafe)  # arbitrary object
    with pytest.raises(pickle.UnpicklingError):
        CoTracker3Tracker(checkpoint=unsafe, device="cpu")

    wrong = tmp_path / "online.pth"
    torch.save({"weight": torch.zeros(4)}, wrong)
    with pytest.raises(RuntimeError, match="not an offline CoTracker3 state dict"):
        CoTracker3Tracker(checkpoint=wrong, device="cpu")


def test_global_rng_is_left_alone(fake_cotracker, checkpoint):
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    CoTracker3Tracker(checkpoint=checkpoint, device="cpu")  # the fake reseeds and draws, like upstream
    torch.testing.assert_close(torch.rand(4), expected)


def test_torch_hub_when_no_checkpoint(fake_cotracker, monkeypatch):
    seen = []

    def fake_hub_load(repo, entry_point, *args, **kwargs):
        seen.append((repo, entry_point))
        return FakePredictor()

    monkeypatch.setattr(torch.hub, "load", fake_hub_load)
    tracker = CoTracker3Tracker(device="cpu")
    assert seen == [("facebookresearch/co-tracker", "cotracker3_offline")]
    assert tracker.settings["source"] == {
        "kind": "torch.hub",
        "repo": "facebookresearch/co-tracker",
        "entry_point": "cotracker3_offline",
    }


def test_torch_hub_failure_says_what_to_do(fake_cotracker, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load", offline)
    with pytest.raises(RuntimeError, match="no network.*checkpoint=<path>"):
        CoTracker3Tracker(device="cpu")


def test_missing_package_says_how_to_install(monkeypatch, checkpoint):
    monkeypatch.setitem(sys.modules, "cotracker", None)  # makes `import cotracker...` raise ImportError
    monkeypatch.delitem(sys.modules, "cotracker.predictor", raising=False)
    with pytest.raises(ImportError, match="not on PyPI") as info:
        make_tracker("cotracker3", checkpoint=checkpoint, device="cpu")
    assert "git+https://github.com/facebookresearch/co-tracker@" in str(info.value)
    assert str(info.value).startswith(INSTALL_HINT)


def test_bad_settings(fake_cotracker, checkpoint):
    for bad in (
        {"visibility_score": "conf"},
        {"visibility_threshold": 1.0},
        {"iters": 0},
        {"support_points": -1},
        {"model_resolution": (30, 40)},
    ):
        with pytest.raises(ValueError):
            CoTracker3Tracker(checkpoint=checkpoint, device="cpu", **bad)


def test_support_grid_matches_upstream_layout():
    # get_points_on_a_grid(6, (384, 512)): margin 512/64 = 8 on both axes, row-major.
    grid = support_grid(6, 384, 512)
    assert grid.shape == (36, 2)
    torch.testing.assert_close(grid[0], torch.tensor([8.0, 8.0]))
    torch.testing.assert_close(grid[-1], torch.tensor([504.0, 376.0]))
    torch.testing.assert_close(grid[1], torch.tensor([8.0 + 496 / 5, 8.0]))


def test_real_cotracker_matches_its_predictor(tmp_path):
    """With the package installed (random weights, tiny resolution): shapes, dtypes and parity with upstream."""
    pytest.importorskip("cotracker")
    from cotracker.predictor import CoTrackerPredictor

    upstream = CoTrackerPredictor(checkpoint=None)
    path = tmp_path / "random_offline.pth"
    torch.save(upstream.model.state_dict(), path)
    torch.manual_seed(7)
    expected_draw = torch.rand(3)
    torch.manual_seed(7)
    tracker = CoTracker3Tracker(checkpoint=path, model_resolution=(64, 64), device="cpu")
    torch.testing.assert_close(torch.rand(3), expected_draw)  # building the model left the global RNG alone
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (4, 32, 40, 3), dtype=np.uint8)
    queries = grid_queries(32, 40, 2)
    result = tracker.track(clip, queries)
    assert result.tracks.shape == (4, 4, 2) and result.tracks.dtype == np.float32
    assert result.visibility.shape == (4, 4) and result.visibility.dtype == np.bool_
    assert result.confidence.shape == (4, 4) and result.confidence.dtype == np.float32
    assert np.isfinite(result.tracks).all()

    upstream.interp_shape = (64, 64)
    upstream.model.model_resolution = (64, 64)
    video = torch.from_numpy(clip).permute(0, 3, 1, 2).float()[None]
    q = torch.cat([torch.zeros(4, 1), torch.from_numpy(queries)], dim=1)[None]
    tracks, visibility = upstream(video, queries=q)
    np.testing.assert_allclose(result.tracks, tracks[0].numpy(), atol=1e-4)
    np.testing.assert_array_equal(
        result.visibility, visibility[0].numpy() & inside_pixel_centres(result.tracks, 32, 40)
    )


def random_weights(tmp_path: Path) -> Path:
    """A state dict of upstream's offline model with random weights (the package must be importable)."""
    from cotracker.predictor import CoTrackerPredictor

    with torch.random.fork_rng():
        model = CoTrackerPredictor(checkpoint=None).model
    path = tmp_path / "random_offline.pth"
    torch.save(model.state_dict(), path)
    return path


def assert_batch_matches_batch_one(tracker: CoTracker3Tracker, clips: list[np.ndarray], queries: np.ndarray) -> None:
    """Tracks of ``track_batch`` within 1e-3 px of one clip at a time; no vmap fallback to a per-clip loop."""
    expected = [tracker.track(clip, queries) for clip in clips]
    enable = getattr(torch._C._functorch, "_set_vmap_fallback_warning_enabled", None)
    if enable is not None:
        enable(True)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*performance drop.*")  # a vmap fallback
            results = tracker.track_batch(clips, queries)
    finally:
        if enable is not None:
            enable(False)
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(got.tracks, want.tracks, rtol=0, atol=1e-3)
        np.testing.assert_allclose(got.confidence, want.confidence, rtol=0, atol=1e-4)
        np.testing.assert_array_equal(got.visibility, want.visibility)


@pytest.mark.slow
def test_real_cotracker_batch_equals_batch_one(tmp_path):
    """Upstream's model (random weights, 64² canvas) on 3 + 1 clips at batch_size 3 against batch 1 on the CPU."""
    pytest.importorskip("cotracker")
    tracker = CoTracker3Tracker(checkpoint=random_weights(tmp_path), model_resolution=(64, 64), device="cpu",
                                batch_size=3)  # fmt: skip
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (4, 32, 40, 3), dtype=np.uint8) for _ in range(3)]
    clips.insert(1, rng.integers(0, 256, (5, 32, 40, 3), dtype=np.uint8))  # another length: its own pass
    assert_batch_matches_batch_one(tracker, clips, grid_queries(32, 40, 3))


@pytest.mark.gpu
def test_real_cotracker_batch_equals_batch_one_on_cuda(tmp_path):
    """The same on CUDA at the trained 384x512 canvas, 4 clips of 12 x 224², 256 points (TF32 off: fp32 maths)."""
    pytest.importorskip("cotracker")
    tracker = CoTracker3Tracker(checkpoint=random_weights(tmp_path), device="cuda", batch_size=4)
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (12, 224, 224, 3), dtype=np.uint8) for _ in range(4)]
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        assert_batch_matches_batch_one(tracker, clips, grid_queries(224, 224, 16))
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


class _RunsShell:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_malicious_checkpoint_is_refused_by_name(tmp_path, writer):
    """No cotracker package needed: the file is refused, named, and its payload never runs."""
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil checkpoint.pth"
    state = {"weight": torch.zeros(3), "extra": _RunsShell(marker)}
    if writer == "torch.save":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    for load in (load_checkpoint, lambda p: CoTracker3Tracker(checkpoint=p, device="cpu")):
        with pytest.raises(pickle.UnpicklingError, match="refused to load CoTracker checkpoint") as info:
            load(path)
        assert str(path) in str(info.value) and "weights_only=True" in str(info.value)
    assert not marker.exists()


def test_unreadable_checkpoint_is_named(tmp_path):
    path = tmp_path / "not_a_checkpoint.pth"
    path.write_bytes(b"hello, not a torch file")
    with pytest.raises(ValueError, match=re.escape(f"cannot read CoTracker checkpoint {path}")):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_checkpoint(tmp_path / "missing.pth")
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": {"weight": torch.ones(2)}}, wrapped)
    torch.testing.assert_close(load_checkpoint(wrapped)["weight"], torch.ones(2))
