"""TAP-Vid metrics on tiny cases whose answers are computed by hand (see the comments for the arithmetic)."""

import math

import numpy as np
import pytest

from mosic.tracking import TAPVID_THRESHOLDS, tapvid_metrics


def hand_case():
    """2 points x 3 frames in a 256x256 frame (no rescaling). Frame 0 is deliberately wrong: it must not count."""
    gt = np.array(
        [
            [[10, 10], [50, 50]],
            [[10, 10], [50, 50]],
            [[10, 10], [50, 50]],
        ],
        np.float32,
    )
    gt_vis = np.array([[True, True], [True, True], [True, False]])  # B occluded at t=2
    pred = np.array(
        [
            [[99, 99], [0, 0]],  # query frame: ignored
            [[11.5, 10], [50, 50.5]],  # A off by 1.5, B off by 0.5
            [[10, 13], [80, 80]],  # A off by 3; B's GT is occluded, its position does not matter
        ],
        np.float32,
    )
    pred_vis = np.array([[False, False], [True, False], [True, True]])
    return pred, pred_vis, gt, gt_vis


def test_hand_computed_case():
    m = tapvid_metrics(*hand_case(), image_size=(256, 256))
    # Scored: A1, A2, B1, B2. GT visible: A1, A2, B1. Distances A1 1.5, A2 3, B1 0.5.
    # OA: A1 ok, A2 ok, B1 wrong (pred occluded), B2 wrong (pred visible) -> 2/4.
    assert m["occlusion_accuracy"] == pytest.approx(0.5)
    # delta: within 1 -> {B1}: 1/3; within 2 -> {A1, B1}: 2/3; within 4, 8, 16 -> all 3.
    expected_delta = {"1": 1 / 3, "2": 2 / 3, "4": 1.0, "8": 1.0, "16": 1.0}
    for k, v in expected_delta.items():
        assert m[f"delta_{k}"] == pytest.approx(v)
    assert m["delta_avg"] == pytest.approx((1 / 3 + 2 / 3 + 3) / 5)
    # Jaccard at 1: TP 0 (B1 predicted occluded); FP {A1, A2 too far; B2 GT occluded} = 3; FN {A1, A2, B1} = 3 -> 0.
    # At 2: TP {A1}; FP {A2, B2}; FN {A2, B1} -> 1/5. At 4+: TP {A1, A2}; FP {B2}; FN {B1} -> 2/4.
    expected_jaccard = {"1": 0.0, "2": 0.2, "4": 0.5, "8": 0.5, "16": 0.5}
    for k, v in expected_jaccard.items():
        assert m[f"jaccard_{k}"] == pytest.approx(v)
    assert m["average_jaccard"] == pytest.approx((0 + 0.2 + 0.5 * 3) / 5)
    assert set(m) == {"delta_avg", "occlusion_accuracy", "average_jaccard"} | {
        f"{name}_{t:g}" for name in ("delta", "jaccard") for t in TAPVID_THRESHOLDS
    }


def test_query_frame_counts_only_when_asked():
    pred, pred_vis, gt, gt_vis = hand_case()
    m = tapvid_metrics(pred, pred_vis, gt, gt_vis, image_size=(256, 256), exclude_query_frame=False)
    # Frame 0 adds two GT-visible, predicted-occluded points far off: OA 2/6, delta_16 3/5.
    assert m["occlusion_accuracy"] == pytest.approx(2 / 6)
    assert m["delta_16"] == pytest.approx(3 / 5)


def test_perfect_prediction_scores_one():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (2, 5, 7, 2)).astype(np.float32)
    vis = rng.random((2, 5, 7)) < 0.7
    vis[:, 1] = True  # every clip has something visible to score
    m = tapvid_metrics(gt, vis, gt, vis, image_size=(100, 100))
    assert all(v == pytest.approx(1.0) for v in m.values())


def test_all_occluded_prediction_has_zero_jaccard():
    gt = np.zeros((3, 4, 2), np.float32)
    gt_vis = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], bool)
    m = tapvid_metrics(gt, np.zeros_like(gt_vis), gt, gt_vis, image_size=(64, 64))
    assert m["average_jaccard"] == 0.0
    assert m["delta_avg"] == 1.0  # positions are right; delta ignores predicted visibility
    assert m["occlusion_accuracy"] == pytest.approx(5 / 8)  # scored frames 1-2: 5 of 8 GT occluded


def test_thresholds_refer_to_256x256_frames():
    # A 0.3 px error in x on a frame 64 px wide is 1.2 px at 256: outside 1, inside 2.
    gt = np.zeros((2, 1, 2), np.float32) + 10
    pred = gt.copy()
    pred[1, 0, 0] += 0.3
    vis = np.ones((2, 1), bool)
    m = tapvid_metrics(pred, vis, gt, vis, image_size=(128, 64))
    assert (m["delta_1"], m["delta_2"]) == (0.0, 1.0)
    m = tapvid_metrics(pred, vis, gt, vis, resize_to=None)  # native pixels: within 1
    assert m["delta_1"] == 1.0
    # The y axis scales by 256 / H: 0.3 px on a 128-px-high frame is 0.6 px at 256.
    pred_y = gt.copy()
    pred_y[1, 0, 1] += 0.3
    assert tapvid_metrics(pred_y, vis, gt, vis, image_size=(128, 64))["delta_1"] == 1.0
    with pytest.raises(ValueError, match="image_size"):
        tapvid_metrics(pred, vis, gt, vis)


def test_batch_is_the_mean_over_clips_and_skips_undefined_clips():
    pred, pred_vis, gt, gt_vis = hand_case()
    perfect = tapvid_metrics(gt, gt_vis, gt, gt_vis, image_size=(256, 256))
    single = tapvid_metrics(pred, pred_vis, gt, gt_vis, image_size=(256, 256))
    both = tapvid_metrics(
        np.stack([pred, gt]),
        np.stack([pred_vis, gt_vis]),
        np.stack([gt, gt]),
        np.stack([gt_vis, gt_vis]),
        image_size=(256, 256),
    )
    for k in single:
        assert both[k] == pytest.approx((single[k] + perfect[k]) / 2)
    # A clip with nothing GT-visible after frame 0 has no delta or Jaccard; it is left out of the mean.
    empty_vis = np.zeros_like(gt_vis)
    empty_vis[0] = True
    mixed = tapvid_metrics(
        np.stack([pred, gt]),
        np.stack([pred_vis, empty_vis]),
        np.stack([gt, gt]),
        np.stack([gt_vis, empty_vis]),
        image_size=(256, 256),
    )
    assert mixed["delta_avg"] == pytest.approx(single["delta_avg"])
    assert mixed["average_jaccard"] == pytest.approx(single["average_jaccard"])
    assert mixed["occlusion_accuracy"] == pytest.approx((single["occlusion_accuracy"] + 1.0) / 2)
    alone = tapvid_metrics(gt, empty_vis, gt, empty_vis, image_size=(256, 256))
    assert math.isnan(alone["delta_avg"]) and alone["occlusion_accuracy"] == 1.0


def test_nan_ground_truth_positions_where_occluded_are_ignored():
    pred, pred_vis, gt, gt_vis = hand_case()
    gt_nan = gt.copy()
    gt_nan[~gt_vis] = np.nan
    assert tapvid_metrics(pred, pred_vis, gt_nan, gt_vis, image_size=(256, 256)) == tapvid_metrics(
        pred, pred_vis, gt, gt_vis, image_size=(256, 256)
    )


def test_shape_errors():
    pred, pred_vis, gt, gt_vis = hand_case()
    with pytest.raises(ValueError, match="tracks"):
        tapvid_metrics(pred[:, :1], pred_vis, gt, gt_vis, image_size=(256, 256))
    with pytest.raises(ValueError, match="visibility"):
        tapvid_metrics(pred, pred_vis[:2], gt, gt_vis, image_size=(256, 256))
