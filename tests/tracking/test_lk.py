"""The LK tracker on synthetic clips with exactly known motion: accuracy, leaving the frame, occlusion, edge cases."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from mosic.geometry import grid_queries
from mosic.tracking import Tracker, TrackResult
from mosic.tracking.lk import LKTracker


def test_protocol_and_settings():
    """The class's defaults are the pipeline's (``track.lk`` of config.yaml): a library user gets the same tracks."""
    tracker = LKTracker()
    assert isinstance(tracker, Tracker)
    pipeline = yaml.safe_load((Path(__file__).resolve().parents[2] / "config.yaml").read_text())["track"]["lk"]
    assert tracker.settings == {**pipeline, "min_eig_threshold": 1e-4}
    assert tracker.settings["win_size"] == 21 and tracker.settings["fb_threshold"] == 4.0
    assert "threads" not in tracker.settings  # a runtime knob, not part of what made the tracks
    for bad in ({"win_size": 4}, {"levels": -1}, {"fb_threshold": 0}, {"max_iter": 0}, {"threads": 0}):
        with pytest.raises(ValueError):
            LKTracker(**bad)


def test_subpixel_translation_is_tracked(make_translated_clip):
    H, W, T = 96, 96, 8
    shift = np.array([0.7, -0.4])  # px per frame, not a whole pixel
    offsets = np.arange(T)[:, None] * shift
    clip = make_translated_clip(H, W, offsets)
    queries = grid_queries(H, W, 8)
    result = LKTracker().track(clip, queries)

    assert isinstance(result, TrackResult)
    assert result.tracks.shape == (T, 64, 2) and result.tracks.dtype == np.float32
    assert result.visibility.shape == (T, 64) and result.visibility.dtype == np.bool_
    assert result.confidence is None
    np.testing.assert_array_equal(result.tracks[0], queries)
    expected = queries[None] + offsets[:, None].astype(np.float32)
    error = np.linalg.norm(result.tracks - expected, axis=-1)
    assert np.median(error[1:]) < 0.5
    assert np.percentile(error[1:], 90) < 0.5
    assert result.visibility.all()


def test_point_leaving_the_frame_becomes_not_visible(make_translated_clip):
    H, W, T = 64, 64, 10
    offsets = np.arange(T)[:, None] * np.array([3.0, 0.0])  # 27 px to the right over the clip
    clip = make_translated_clip(H, W, offsets)
    queries = np.array([[20.0, 32.0], [30.0, 20.0], [55.0, 32.0], [60.0, 44.0]], np.float32)
    result = LKTracker().track(clip, queries)

    true_x = queries[None, :, 0] + offsets[:, None, 0]
    assert not result.visibility[true_x > W - 1].any()  # past the last pixel centre: never visible
    # The two left points stay inside and are tracked throughout; the right ones are lost on the way out.
    assert result.visibility[:, :2].all()
    assert not result.visibility[-1, 2:].any()
    # Lost points hold their last good position, which is inside the frame.
    last_good = np.array([result.visibility[:, n].nonzero()[0].max() for n in (2, 3)])
    for n, t_last in zip((2, 3), last_good, strict=True):
        np.testing.assert_array_equal(
            result.tracks[t_last:, n], np.broadcast_to(result.tracks[t_last, n], (T - t_last, 2))
        )
    assert (result.tracks[..., 0] <= W - 1).all()


def test_query_outside_the_frame_is_never_visible(make_translated_clip):
    clip = make_translated_clip(32, 32, np.zeros((3, 2)))
    queries = np.array([[-1.0, 5.0], [5.0, 31.5], [10.0, 10.0]], np.float32)
    result = LKTracker().track(clip, queries)
    np.testing.assert_array_equal(result.visibility[:, :2], False)
    assert result.visibility[:, 2].all()
    np.testing.assert_array_equal(result.tracks, np.broadcast_to(queries, (3, 3, 2)))


def test_occluded_points_are_lost_by_the_forward_backward_check(make_translated_clip, make_texture):
    # A different texture is pasted over a square from frame 3 on; the scene behind it drifts slowly. A strict
    # check (1 px) with a 15-px window, so that points half a window inside the square see only the occluder.
    H, W, T, lo, hi = 128, 128, 5, 16, 64
    queries = grid_queries(H, W, 16)
    x, y = queries[:, 0], queries[:, 1]
    covered = (x >= lo + 8) & (x <= hi - 9) & (y >= lo + 8) & (y <= hi - 9)  # a half window inside
    dist = np.maximum(np.maximum(lo - x, x - (hi - 1)), np.maximum(lo - y, y - (hi - 1)))
    far = (dist >= 16) & (x < W - 8) & (y > 8)  # away from the occluder and from where content leaves
    lost, far_visible = [], []
    for seed in range(6):
        offsets = np.arange(T)[:, None] * np.array([0.6, -0.6])
        clip = make_translated_clip(H, W, offsets, seed=seed)
        clip[3:, lo:hi, lo:hi] = make_texture(H, W, seed + 1000)[lo:hi, lo:hi]
        result = LKTracker(win_size=15, fb_threshold=1.0).track(clip, queries)
        assert result.visibility[:3, covered].all()  # tracked until the occluder appears
        lost.append(~result.visibility[3, covered])
        far_visible.append(result.visibility[-1, far])
        # Once lost, always lost (LK cannot re-acquire a point).
        assert (np.diff(result.visibility.astype(int), axis=0) <= 0).all()
    lost = np.stack(lost)
    # The check catches most occluded points (~85-90% here); the rest lock on to the occluder's texture.
    assert lost.mean() >= 0.75
    assert lost.mean(axis=1).min() >= 0.5
    assert np.stack(far_visible).mean() >= 0.95


@pytest.mark.parametrize("value", [0, 128, 255])
def test_constant_frames_lose_every_point_without_crashing(value):
    clip = np.full((4, 32, 40, 3), value, np.uint8)
    queries = grid_queries(32, 40, 4)
    result = LKTracker().track(clip, queries)
    assert result.visibility[0].all()
    assert not result.visibility[1:].any()  # no texture: LK reports failure (min eigenvalue test)
    np.testing.assert_array_equal(result.tracks, np.broadcast_to(queries, (4, 16, 2)))  # held at the queries


def test_textured_clip_that_goes_black_loses_points(make_translated_clip):
    clip = make_translated_clip(48, 48, np.zeros((4, 2)))
    clip[2:] = 0
    result = LKTracker().track(clip, grid_queries(48, 48, 4))
    assert result.visibility[:2].all() and not result.visibility[2:].any()


def test_edge_cases_single_frame_and_no_points(make_translated_clip):
    clip = make_translated_clip(32, 32, np.zeros((3, 2)))
    one = LKTracker().track(clip[:1], grid_queries(32, 32, 2))
    assert one.tracks.shape == (1, 4, 2) and one.visibility.all()
    none = LKTracker().track(clip, np.zeros((0, 2), np.float32))
    assert none.tracks.shape == (3, 0, 2) and none.visibility.shape == (3, 0)
    with pytest.raises(ValueError):
        LKTracker().track(clip.astype(np.float32), grid_queries(32, 32, 2))


def test_deterministic_and_independent_of_threads(make_translated_clip):
    offsets = np.arange(6)[:, None] * np.array([1.3, 0.8])
    clip = make_translated_clip(64, 64, offsets, seed=3)
    queries = grid_queries(64, 64, 8)
    before = cv2.getNumThreads()
    a = LKTracker(threads=1).track(clip, queries)
    b = LKTracker(threads=1).track(clip, queries)
    c = LKTracker(threads=2).track(clip, queries)
    assert cv2.getNumThreads() == before  # restored
    for other in (b, c):
        np.testing.assert_array_equal(a.tracks, other.tracks)
        np.testing.assert_array_equal(a.visibility, other.visibility)
