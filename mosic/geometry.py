"""Image coordinates: the one home of the query grid and of the two "inside the image" tests.

The data contract (``DESIGN.md``): points are ``(x, y)`` in pixels, pixel centres at integer coordinates, origin
top-left, so an ``H x W`` image covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``. Two questions about a point have
different answers near the border, hence two names:

- :func:`inside_pixel_centres`: ``[0, W - 1] x [0, H - 1]``, between the first and the last pixel centre. The
  trackers' visibility rule: a tracked position is visible only there (every pixel it interpolates from exists).
- :func:`inside_image`: ``[-0.5, W - 0.5) x [-0.5, H - 0.5)``, on the image area, so that its nearest pixel
  (rounding half up) is a valid index. Training's rule for points mapped into a crop: a point the gather can
  read exactly.

Both are false for non-finite points (comparisons with NaN are false). numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["grid_queries", "inside_image", "inside_pixel_centres"]


def grid_queries(height: int, width: int, grid: int) -> np.ndarray:
    """A ``grid x grid`` lattice of query points at the centres of equal cells.

    Point ``n = i_y * grid + i_x`` (row-major: y outer, x inner) is

        x = (i_x + 0.5) * W / G - 0.5,    y = (i_y + 0.5) * H / G - 0.5

    i.e. the centre of cell ``(i_y, i_x)`` when the image ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` is cut into
    G x G equal cells. With G = W / patch the points are the centres of the ViT patches. Unlike CoTracker's
    ``grid_size`` layout (margin W/64 on a 384x512 canvas, then rescaled), the margins are symmetric and do not
    depend on the tracker. The tracking jobs query it on each clip's first frame, and the synthetic dataset
    writes its ground-truth trajectories for it.

    Args:
        height: H, image height in pixels.
        width: W, image width in pixels.
        grid: G, points per side.

    Returns:
        float32 [G * G, 2] ``(x, y)`` points.
    """
    if grid < 1 or height < 1 or width < 1:
        raise ValueError(f"need grid, height, width >= 1, got {grid}, {height}, {width}")
    xs = (np.arange(grid, dtype=np.float64) + 0.5) * width / grid - 0.5
    ys = (np.arange(grid, dtype=np.float64) + 0.5) * height / grid - 0.5
    gx, gy = np.meshgrid(xs, ys)  # [G, G], y outer
    return np.stack([gx.ravel(), gy.ravel()], axis=-1).astype(np.float32)


def inside_pixel_centres(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Whether points lie in ``[0, W - 1] x [0, H - 1]`` (the trackers' visibility rule).

    Args:
        points: float [..., 2] ``(x, y)`` pixel positions.
        height: H.
        width: W.

    Returns:
        bool [...]; false for non-finite points.
    """
    x, y = points[..., 0], points[..., 1]
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def inside_image(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Whether points lie in ``[-0.5, W - 0.5) x [-0.5, H - 0.5)`` (their nearest pixel is a valid index).

    Args:
        points: float [..., 2] ``(x, y)`` pixel positions.
        height: H.
        width: W.

    Returns:
        bool [...]; false for non-finite points.
    """
    x, y = points[..., 0], points[..., 1]
    return (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
