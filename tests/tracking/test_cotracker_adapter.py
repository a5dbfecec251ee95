"""The CoTracker3 adapter's contract, tested without the package through a fake ``cotracker`` module.

The fake predictor mimics what the adapter uses of upstream (``CoTrackerPredictor(checkpoint=None, ...)``
with ``.model`` and ``.interp_shape``; ``model(video=, queries=, iters=)`` returning coordinates and two
probabilities) and records every call. The last test runs the real package when it is installed.
"""

import json
import os
import pickle
import re
import sys
import types

import numpy as np
import pytest
import torch

from mosic.tracking import Tracker, grid_queries, inside_frame, make_tracker
from mosic.tracking.cotracker import INSTALL_HINT, CoTracker3Tracker, load_checkpoint, support_grid

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
    np.testing.assert_array_equal(result.visibility, visibility[0].numpy() & inside_frame(result.tracks, 32, 40))


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
