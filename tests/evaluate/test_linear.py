"""Linear probe on frozen features: learns a recoverable class map, honours the ignore label, ADE averaging."""

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from mosic.config import LinearConfig
from mosic.evaluate.base import SegmentationSet
from mosic.evaluate.linear import averaged_classes, linear_probe, resized_masks

CELL, GRID = 8, 4  # 32×32 images made of 4×4 uniform 8×8 cells
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180]], dtype=np.uint8)


@dataclass
class ToySet:
    """A SegmentationSet whose cells' colour is their class; `ignore_cells` cells keep their colour but are
    labelled `ignore_index` (like VOC boundaries, or ADE's class-0 "other" regions)."""

    n: int
    num_classes: int
    ignore_index: int | None
    seed: int
    name: str = "toy/split"
    ignore_cells: int = 2
    first_class: int = 0
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        rng = np.random.default_rng(self.seed)
        self.cells = rng.integers(self.first_class, self.num_classes, size=(self.n, GRID, GRID))
        self.ignored = np.zeros_like(self.cells, dtype=bool)
        for i in range(self.n):
            flat = rng.choice(GRID * GRID, size=self.ignore_cells, replace=False)
            self.ignored[i].flat[flat] = True
        self.class_names = [f"c{i}" for i in range(self.num_classes)]

    def __len__(self):
        return self.n

    def image(self, i):
        return np.kron(PALETTE[self.cells[i]], np.ones((CELL, CELL, 1), dtype=np.uint8)).astype(np.uint8)

    def mask(self, i):
        labels = np.where(self.ignored[i], self.ignore_index, self.cells[i]).astype(np.uint8)
        return np.kron(labels, np.ones((CELL, CELL), dtype=np.uint8))


class ColourExtractor:
    """Stand-in for FeatureExtractor: each token is a fixed random embedding of its cell's palette index."""

    input_size, grid, dim, batch_size = 32, GRID, 16, 8

    def __init__(self, noise: float = 0.05):
        rng = np.random.default_rng(123)
        self.embed = rng.standard_normal((len(PALETTE), self.dim)).astype(np.float32)
        self.noise = noise
        self.rng = np.random.default_rng(7)

    def __call__(self, images):
        cells = np.asarray(images).reshape(-1, GRID, CELL, GRID, CELL, 3).mean((2, 4))  # [B, S, S, 3]
        index = np.abs(cells[..., None, :] - PALETTE.astype(np.float32)).sum(-1).argmin(-1)
        feats = self.embed[index] + self.noise * self.rng.standard_normal(index.shape + (self.dim,))
        return torch.from_numpy(feats.astype(np.float32))


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
