"""The tracker contract: TrackResult checks, check_clip, make_tracker (query grid, visibility square: test_geometry)."""

import json

import numpy as np
import pytest

from mosic.tracking import TRACKERS, Tracker, TrackResult, check_clip, make_tracker


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
    tracker = make_tracker("lk", win_size=15)  # a setting other than the default
    assert isinstance(tracker, Tracker)
    assert tracker.name == "lk" and tracker.needs_gpu is False
    assert tracker.settings["win_size"] == 15
    assert json.loads(json.dumps(tracker.settings)) == tracker.settings
    with pytest.raises(ValueError, match="unknown tracker"):
        make_tracker("raft")
    with pytest.raises(TypeError):
        make_tracker("lk", window=21)
