"""Linear probe on frozen features: learns a recoverable class map, honours the ignore label, ADE averaging."""

import numpy as np
import pytest
from eval_toys import ColourExtractor, ToySet

from mosic.config import LinearConfig
from mosic.evaluate.base import SegmentationSet
from mosic.evaluate.linear import averaged_classes, linear_probe, resized_masks


def config(**kw) -> LinearConfig:
    base = dict(enabled=True, epochs=30, lr=0.1, momentum=0.9, weight_decay=0.0, drop_at=25, batch_size=8, mask_size=16)
    return LinearConfig(**(base | kw))


def test_toy_set_is_a_segmentation_set():
    assert isinstance(ToySet(2, 4, 255, seed=0), SegmentationSet)


def test_probe_recovers_the_classes_and_ignores_the_ignore_label(tmp_path):
    # ~6% of pixels, where bilinear upsampling mixes two or three cells, are out of reach of any linear head
    train, val = ToySet(24, 5, 255, seed=0, name="toy/train"), ToySet(8, 5, 255, seed=1, name="toy/val")
    out = linear_probe(train, val, ColourExtractor(), config(), seed=0, cache_dir=tmp_path)
    assert out["miou"] > 0.9
    assert out["miou_best_epoch"] >= out["miou"]
    assert len(out["history"]) == out["epochs"] == 30 and 1 <= out["best_epoch"] <= 30
    assert len(out["iou"]) == out["num_classes"] == 5 and out["averaged_classes"] == 5
    assert (out["train_images"], out["val_images"]) == (24, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "toy_train_32.npy",
        "toy_train_32.npy.json",
        "toy_val_32.npy",
        "toy_val_32.npy.json",
    ]
    # same seed, cached features: the same numbers
    again = linear_probe(train, val, ColourExtractor(noise=0.0), config(), seed=0, cache_dir=tmp_path)
    assert again["history"] == out["history"]


def test_untrained_probe_is_poor():
    # guards the toy task against being trivially solved: one epoch at a tiny rate stays far from the optimum
    train, val = ToySet(24, 5, 255, seed=0), ToySet(8, 5, 255, seed=1)
    out = linear_probe(train, val, ColourExtractor(), config(epochs=1, lr=1e-4), seed=0)
    assert out["miou"] < 0.6


def test_ade_like_ignore_zero_clean_vs_parity():
    # ADE20K: class 0 is the ignore label. Ignored cells look like real classes; were they trained on or
    # scored, the real classes' IoU would drop below 1.
    train = ToySet(24, 5, 0, seed=0, first_class=1, ignore_cells=4)
    val = ToySet(8, 5, 0, seed=1, first_class=1, ignore_cells=4)
    clean = linear_probe(train, val, ColourExtractor(), config(), seed=0)
    parity = linear_probe(train, val, ColourExtractor(), config(), seed=0, parity=True)
    assert clean["averaged_classes"] == 4 and parity["averaged_classes"] == 5
    assert clean["iou"][0] == 0.0
    assert clean["miou"] > 0.9
    assert parity["miou"] == pytest.approx(clean["miou"] * 4 / 5)


def test_averaged_classes():
    assert averaged_classes(151, 0, parity=False).tolist() == list(range(1, 151))
    assert len(averaged_classes(151, 0, parity=True)) == 151
    assert len(averaged_classes(21, 255, parity=False)) == 21
    assert len(averaged_classes(21, None, parity=False)) == 21


def test_resized_masks_clean_and_parity():
    ds = ToySet(3, 5, 255, seed=2)
    clean = resized_masks(ds, 16, input_size=32, parity=False)
    parity = resized_masks(ds, 16, input_size=32, parity=True)
    assert clean.shape == (3, 16, 16) and clean.dtype == np.uint8
    # 8-pixel cells: both samplings stay inside the cell, so the two chains agree here
    np.testing.assert_array_equal(clean, parity)
    np.testing.assert_array_equal(clean[:, ::4, ::4], np.where(ds.ignored, 255, ds.cells))


def test_mask_values_outside_the_classes_are_rejected():
    train, val = ToySet(4, 5, 255, seed=0), ToySet(2, 5, 255, seed=1)
    orig = train.mask
    train.mask = lambda i: np.where(orig(i) == 255, 7, orig(i)).astype(np.uint8)  # 7: neither class nor ignore
    with pytest.raises(ValueError, match="mask value 7"):
        linear_probe(train, val, ColourExtractor(), config(epochs=1), seed=0)
