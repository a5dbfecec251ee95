"""Toy segmentation data for the protocol tests: colour cells whose colour is their class, and a stand-in
feature extractor that embeds each cell's colour (a plain module so tests can import it)."""

from dataclasses import dataclass, field

import numpy as np
import torch

CELL, GRID = 8, 4  # 32×32 images made of 4×4 uniform 8×8 cells
PALETTE = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180]], dtype=np.uint8)


@dataclass
class ToySet:
    """A SegmentationSet whose cells' colour is their class; `ignore_cells` cells per image keep their colour
    but are labelled `ignore_index` (like VOC boundaries, or ADE's class-0 "other" regions)."""

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

    def __init__(self, noise: float = 0.05, scale: float = 1.0):
        rng = np.random.default_rng(123)
        self.embed = scale * rng.standard_normal((len(PALETTE), self.dim)).astype(np.float32)
        self.noise = noise
        self.rng = np.random.default_rng(7)

    def __call__(self, images):
        cells = np.asarray(images).reshape(-1, GRID, CELL, GRID, CELL, 3).mean((2, 4))  # [B, S, S, 3]
        index = np.abs(cells[..., None, :] - PALETTE.astype(np.float32)).sum(-1).argmin(-1)
        feats = self.embed[index] + self.noise * self.rng.standard_normal(index.shape + (self.dim,))
        return torch.from_numpy(feats.astype(np.float32))
