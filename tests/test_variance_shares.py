"""mosic.motion_study.variance_shares: how much of the features' variance the label under a token explains, and how
much the image it comes from, on oracle features of a toy segmentation set."""

import numpy as np
import pytest
import torch

from mosic.motion_study import variance_shares

GRID, PATCH = 4, 4


class Toy:
    """Four 16 x 16 images: background 0, class 1 in the left half of rows 0-1, class 2 in the right half of rows
    2-3 (in patches), the ignore label on one patch of image 0."""

    ignore_index = 255

    def __init__(self):
        self.masks = []
        for i in range(4):
            m = np.zeros((GRID * PATCH, GRID * PATCH), np.uint8)
            m[: 2 * PATCH, : 2 * PATCH] = 1
            m[2 * PATCH :, 2 * PATCH :] = 2
            if i == 0:
                m[:PATCH, 3 * PATCH :] = 255
            self.masks.append(m)

    def __len__(self):
        return 4

    def image(self, i):
        return np.full((GRID * PATCH, GRID * PATCH, 3), i, np.uint8)  # the image index, for the oracles

    def mask(self, i):
        return self.masks[i]


def oracle(kind, noise=0.0):
    """Features [B, GRID, GRID, 8]: one-hot of the label under each patch (class) or of the image (image)."""
    toy = Toy()
    gen = torch.Generator().manual_seed(0)

    def extract(images):
        out = torch.zeros(len(images), GRID, GRID, 8)
        for b, img in enumerate(images):
            i = int(img[0, 0, 0])
            labels = toy.mask(i)[PATCH // 2 :: PATCH, PATCH // 2 :: PATCH]
            for r in range(GRID):
                for c in range(GRID):
                    out[b, r, c, (int(labels[r, c]) % 8) if kind == "class" else 4 + i] = 1.0
        return out + noise * torch.randn(out.shape, generator=gen)

    return extract


def test_label_features_are_all_class_and_image_features_all_image():
    by_class = variance_shares(oracle("class"), Toy())
    assert by_class["class"] == pytest.approx(100.0) and by_class["image"] < 5
    by_image = variance_shares(oracle("image"), Toy())
    assert by_image["image"] == pytest.approx(100.0) and by_image["class"] < 5


def test_noise_lowers_both_shares():
    clean, noisy = variance_shares(oracle("class"), Toy()), variance_shares(oracle("class", noise=0.5), Toy())
    assert 10 < noisy["class"] < clean["class"] - 20 and noisy["image"] < 10
