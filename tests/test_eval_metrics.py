"""Segmentation metrics on hand-computed cases."""

import numpy as np
import pytest

from mosic.evaluate.metrics import confusion, fold, match_labels, miou, score


def test_identity_miou_by_hand_with_ignore():
    gt = np.array([[0, 0, 1, 1], [255, 1, 1, 0]])
    pred = np.array([[0, 1, 1, 1], [1, 1, 0, 0]])
    # valid pixels: gt 0 at (0,0),(0,1),(1,3); gt 1 at (0,2),(0,3),(1,1),(1,2)
    # class 0: TP 2 ((0,0),(1,3)), FP 1 ((1,2) pred 0), FN 1 ((0,1)) -> 2/4
    # class 1: TP 3, FP 1 ((0,1)), FN 1 ((1,2)) -> 3/5
    out = score(gt, pred, num_classes=2, ignore_index=255)
    assert out["iou"] == pytest.approx([0.5, 0.6])
    assert out["miou"] == pytest.approx(0.55)


def test_hungarian_permutation_and_unmatched_to_background():
    gt = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([3, 3, 0, 0, 1, 2])  # label 3 is class 0, 0 is class 1; labels 1, 2 split class 2
    c = confusion(gt, pred, 3, 4, None)
    mapping = match_labels(c, "hungarian")
    assert mapping[3] == 0 and mapping[0] == 1 and sorted(mapping[[1, 2]].tolist()) == [0, 2]
    value, iou = miou(fold(c, mapping))
    # class 2 gets one of its two pixels; the other goes to background (class 0): IoU0 = 2/3, IoU1 = 1, IoU2 = 1/2
    assert iou.tolist() == pytest.approx([2 / 3, 1.0, 0.5])
    assert value == pytest.approx((2 / 3 + 1 + 0.5) / 3)


def test_many_to_one_by_precision_and_tie_to_lowest_class():
    gt = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 2, 2, 3])  # label 1 is 50/50 between classes 0 and 1 -> class 0
    c = confusion(gt, pred, 3, 4, None)
    assert match_labels(c, "many_to_one").tolist() == [0, 0, 1, 2]
    assert score(gt, pred, num_classes=3, num_labels=4, how="many_to_one")["miou"] == pytest.approx(
        (2 / 3 + 2 / 3 + 1) / 3
    )


def test_absent_class_counts_zero_unless_present_only():
    gt = np.array([0, 0, 1])
    pred = np.array([0, 0, 1])
    assert score(gt, pred, num_classes=3)["miou"] == pytest.approx(2 / 3)
    assert score(gt, pred, num_classes=3, present_only=True)["miou"] == pytest.approx(1.0)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="identity matching needs"):
        score(np.zeros(3), np.zeros(3), num_classes=2, num_labels=3)
    with pytest.raises(ValueError, match="ground-truth class outside"):
        confusion(np.array([5]), np.array([0]), 2, 2, 255)
