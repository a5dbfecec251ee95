"""Synthetic clips with exactly known motion for the tracking tests (smooth random textures moved by cv2.warpAffine),
and the real test videos (skipped when absent)."""

from collections.abc import Callable

import cv2
import numpy as np
import pytest


def smooth_texture(height: int, width: int, seed: int, sigma: float = 2.0) -> np.ndarray:
    """uint8 [H, W, 3] RGB: blurred white noise stretched to 0..255 (corner-like structure at every pixel)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(height, width, 3)).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
    lo, hi = blurred.min(), blurred.max()
    return np.round((blurred - lo) / (hi - lo) * 255).astype(np.uint8)


def translated_clip(height: int, width: int, offsets: np.ndarray, seed: int = 0, margin: int = 32) -> np.ndarray:
    """uint8 [T, H, W, 3]: frame t is the texture translated by ``offsets[t]`` = (dx, dy) pixels.

    The texture is larger than the frame by ``margin`` on every side and the frame is cut from its middle,
    so content moving in from outside is real texture, not a border. A point (x, y) of frame 0 is at
    (x + dx_t, y + dy_t) in frame t (bilinear warp, so sub-pixel offsets are exact up to interpolation).
    """
    canvas = smooth_texture(height + 2 * margin, width + 2 * margin, seed)
    frames = []
    for dx, dy in offsets:
        m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float64)
        warped = cv2.warpAffine(canvas, m, canvas.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frames.append(warped[margin : margin + height, margin : margin + width])
    return np.stack(frames)


@pytest.fixture
def make_translated_clip() -> Callable[..., np.ndarray]:
    """:func:`translated_clip` as a fixture."""
    return translated_clip


@pytest.fixture
def make_texture() -> Callable[..., np.ndarray]:
    """:func:`smooth_texture` as a fixture."""
    return smooth_texture
