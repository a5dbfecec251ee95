"""The query grid and the two "inside the image" tests (mosic/geometry.py)."""

import numpy as np
import pytest

from mosic.geometry import grid_queries, inside_image, inside_pixel_centres


def test_grid_queries_are_cell_centres_row_major() -> None:
    q = grid_queries(128, 96, 16)
    assert q.shape == (256, 2) and q.dtype == np.float32
    np.testing.assert_allclose(q[0], [96 / 32 - 0.5, 128 / 32 - 0.5])
    np.testing.assert_allclose(q[1], [3 * 96 / 32 - 0.5, 3.5])  # x runs fastest
    np.testing.assert_allclose(q[-1], [95 - 96 / 32 + 0.5, 127 - 3.5])
    # With G = W / patch the points are the patch centres: patch 16 at 64 px -> 7.5, 23.5, ...
    np.testing.assert_array_equal(np.unique(grid_queries(64, 64, 4)[:, 0]), [7.5, 23.5, 39.5, 55.5])


def test_the_two_inside_tests_differ_only_in_the_border_half_pixel() -> None:
    # A 4 (high) x 10 (wide) image: centres span [0, 9] x [0, 3], the image area [-0.5, 9.5) x [-0.5, 3.5).
    xs = np.array([-0.6, -0.5, -0.1, 0.0, 9.0, 9.1, 9.49, 9.5, np.nan])
    pts = np.stack([xs, np.full_like(xs, 1.0)], axis=-1)
    assert inside_pixel_centres(pts, 4, 10).tolist() == [False, False, False, True, True, False, False, False, False]
    assert inside_image(pts, 4, 10).tolist() == [False, True, True, True, True, True, True, False, False]
    # y is checked against the height, not the width.
    tall = np.array([[1.0, 3.0], [1.0, 3.4], [1.0, 3.6]])
    assert inside_pixel_centres(tall, 4, 10).tolist() == [True, False, False]
    assert inside_image(tall, 4, 10).tolist() == [True, True, False]


def test_nearest_pixel_of_a_point_inside_the_image_is_a_valid_index() -> None:
    rng = np.random.default_rng(0)
    pts = rng.uniform(-2, 12, size=(10_000, 2))
    ok = inside_image(pts, 10, 10)
    idx = np.floor(pts[ok] + 0.5).astype(int)  # nearest pixel, rounding half up
    assert ok.any() and (idx >= 0).all() and (idx <= 9).all()


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


def test_inside_pixel_centres_is_the_pixel_centre_square():
    H, W = 10, 20
    pts = np.array([[0, 0], [19, 9], [-0.01, 5], [19.01, 5], [5, -0.5], [5, 9.2], [np.nan, 1], [10, 5]])
    np.testing.assert_array_equal(
        inside_pixel_centres(pts, H, W), [True, True, False, False, False, False, False, True]
    )
