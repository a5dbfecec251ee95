"""The tracker contract: query grid layout and convention, TrackResult checks, the visibility rule, make_tracker."""

import json

import numpy as np
import pytest

from mosic.tracking import TRACKERS, Tracker, TrackResult, check_clip, grid_queries, inside_frame, make_tracker


def test_grid_queries_layout_and_cell_centres():
    q = grid_queries(height=8, width=4, grid=2)
    assert q.dtype == np.float32 and q.shape == (4, 2)
    # Cells are 2 px wide and 4 px high; a cell spanning pixels 0..1 has its centre at x = 0.5.
    np.testing.assert_array_equal(q, [[0.5, 1.5], [2.5, 1.5], [0.5, 5.5], [2.5, 5.5]])  # y outer, x inner


def test_grid_queries_is_symmetric_and_matches_patch_centres():
    q = grid_queries(224, 224, 16)  # 14-px patches
    np.testing.assert_allclose(q[0], [6.5, 6.5])
    np.testing.assert_allclose(q[-1], [223 - 6.5, 223 - 6.5])  # same margin on both sides
    np.testing.assert_allclose(q[:16, 1], 6.5)  # first row: constant y
    np.testing.assert_allclose(np.diff(q[:16, 0]), 14.0, rtol=1e-6)
    # Each point is the centre of the patch it falls in: patch index = floor((x + 0.5) / 14).
    cols = np.floor((q[:, 0] + 0.5) / 14).astype(int)
    rows = np.floor((q[:, 1] + 0.5) / 14).astype(int)
    np.testing.assert_array_equal(rows * 16 + cols, np.arange(256))


@pytest.mark.parametrize("args", [(0, 4, 2), (4, 4, 0)])
def test_grid_queries_rejects_empty(args):
    with pytest.raises(ValueError):
        grid_queries(*args)


def test_inside_frame_uses_pixel_centre_square():
    H, W = 10, 20
    pts = np.array([[0, 0], [19, 9], [-0.01, 5], [19.01, 5], [5, -0.5], [5, 9.2], [np.nan, 1], [10, 5]])
    np.testing.assert_array_equal(inside_frame(pts, H, W), [True, True, False, False, False, False, False, True])


def test_track_result_validates_contract():
    tracks = np.zeros((3, 2, 2), np.float32)
    vis = np.ones((3, 2), bool)
    r = TrackResult(tracks=tracks, visibility=vis)
    assert (r.num_frames, r.num_points, r.confidence) == (3, 2, None)
    with pytest.raises(ValueError, match="tracks"):
        TrackResult(tracks=tracks.astype(np.float64), visibility=vis)
    with pytest.raises(ValueError, match="visibility"):
        TrackResult(tracks=tracks, visibility=vis[:2])
    with pytest.raises(ValueError, match="confidence"):
        TrackResult(tracks=tracks, visibility=vis, confidence=np.ones((3, 2)))
    with pytest.raises(TypeError):
        TrackResult(tracks, vis)  # keyword-only


def test_check_clip():
    clip = np.zeros((2, 4, 5, 3), np.uint8)
    c, q = check_clip(clip, [[1, 2]])
    assert q.dtype == np.float32 and q.shape == (1, 2)
    with pytest.raises(ValueError, match="clip"):
        check_clip(clip.astype(np.float32), q)
    with pytest.raises(ValueError, match="clip"):
        check_clip(clip[..., :1], q)
    with pytest.raises(ValueError, match="queries"):
        check_clip(clip, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="finite"):
        check_clip(clip, np.array([[np.nan, 1.0]]))


def test_make_tracker():
    assert TRACKERS == ("lk", "cotracker3", "ground_truth")
    tracker = make_tracker("lk", win_size=21)
    assert isinstance(tracker, Tracker)
    assert tracker.name == "lk" and tracker.needs_gpu is False
    assert tracker.settings["win_size"] == 21
    assert json.loads(json.dumps(tracker.settings)) == tracker.settings
    with pytest.raises(ValueError, match="unknown tracker"):
        make_tracker("raft")
    with pytest.raises(TypeError):
        make_tracker("lk", window=21)
