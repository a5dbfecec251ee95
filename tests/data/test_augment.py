"""Crop boxes, the exact track map into a resized crop (bright-dot test), the inside test and the photometric ops."""

import math

import numpy as np
import pytest
import torch
from dots import blob_frames, dot_centre

from mosic.data.augment import (
    CropBox,
    Photometric,
    apply_photometric,
    apply_photometric_batch,
    crop_resize_frames,
    map_points,
    random_resized_crop_box,
    sample_photometric,
)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize(
    ("box", "size"),
    [
        (CropBox(x0=11, y0=7, w=30, h=26), 64),  # upsampled about 2.2x
        (CropBox(x0=3, y0=5, w=56, h=40), 24),  # downsampled with antialiasing
        (CropBox(x0=0, y0=0, w=64, h=48), 64),  # anisotropic: x kept, y stretched
    ],
)
def test_mapped_track_lands_on_the_dot(box, size, flip):
    height, width = 48, 64
    points = np.array([[25.3, 19.6], [30.0, 24.25], [20.7, 22.1]], dtype=np.float32)  # inside every box
    frames = torch.from_numpy(blob_frames(points, height, width, sigma=2.5))
    out = crop_resize_frames(frames, box, size, flip)
    assert out.shape == (3, 3, size, size) and out.dtype == torch.uint8
    mapped = map_points(points, box, size, flip)
    radius = 3 * 2.5 * max(size / box.w, size / box.h)
    for t in range(3):
        found = dot_centre(out[t, 0].numpy().astype(np.float64), mapped[t], radius)
        np.testing.assert_allclose(found, mapped[t], atol=0.05)  # measured: <= 0.01 px


def test_map_points_formula_and_flip():
    box = CropBox(x0=4, y0=2, w=8, h=16)
    # The left/top edge of the crop (cache x0 - 0.5) maps to -0.5, the far edge to S - 0.5.
    pts = np.array([[3.5, 1.5], [11.5, 17.5], [4.0, 2.0]], dtype=np.float32)
    np.testing.assert_allclose(map_points(pts, box, 32, False), [[-0.5, -0.5], [31.5, 31.5], [1.5, 0.5]])
    flipped = map_points(pts, box, 32, True)
    np.testing.assert_allclose(flipped[:, 0], 31 - map_points(pts, box, 32, False)[:, 0])
    assert np.isnan(map_points(np.array([[np.nan, 1.0]]), box, 32, False)[0, 0])


def test_crop_box_within_bounds_scale_and_ratio():
    rng = np.random.default_rng(0)
    for _ in range(200):
        box = random_resized_crop_box(rng, 96, 128, (0.4, 1.0))
        assert 0 <= box.x0 and box.x0 + box.w <= 128 and 0 <= box.y0 and box.y0 + box.h <= 96
        # rounding w and h moves area and ratio a little
        assert 0.4 * 0.95 <= box.w * box.h / (96 * 128) <= 1.0
        assert 3 / 4 * 0.95 <= box.w / box.h <= 4 / 3 * 1.05


def test_crop_box_falls_back_to_the_centre_crop():
    # A 10 x 100 strip cannot hold any crop of area >= 90 % with w / h <= 4/3: torchvision's fallback.
    box = random_resized_crop_box(np.random.default_rng(0), 10, 100, (0.9, 1.0))
    assert box == CropBox(x0=(100 - 13) // 2, y0=0, w=13, h=10)
    # Scale (1, 1) on a square frame keeps the whole frame whenever the drawn ratio rounds to 1.
    assert random_resized_crop_box(np.random.default_rng(1), 32, 32, (1.0, 1.0), (1.0, 1.0)) == CropBox(
        x0=0, y0=0, w=32, h=32
    )


def test_crop_box_is_deterministic_per_generator():
    boxes = [random_resized_crop_box(np.random.default_rng([3, 1, 4]), 64, 64, (0.4, 1.0)) for _ in range(2)]
    assert boxes[0] == boxes[1]


def test_photometric_draws_and_application():
    rng = np.random.default_rng(0)
    draws = [sample_photometric(rng, 224) for _ in range(2000)]
    assert abs(np.mean([bool(d.jitter) for d in draws]) - 0.8) < 0.03
    assert abs(np.mean([d.grayscale for d in draws]) - 0.2) < 0.03
    assert abs(np.mean([d.blur_sigma is not None for d in draws]) - 0.5) < 0.04
    for d in draws[:50]:
        if d.jitter:
            assert sorted(op for op, _ in d.jitter) == ["brightness", "contrast", "hue", "saturation"]
            factors = dict(d.jitter)
            assert all(0.6 <= factors[k] <= 1.4 for k in ("brightness", "contrast", "saturation"))
            assert -0.1 <= factors["hue"] <= 0.1
        if d.blur_sigma is not None:
            assert 0.1 <= d.blur_sigma <= 2.0

    frame = torch.rand(1, 3, 16, 16)
    frames = frame.expand(3, 3, 16, 16)
    aug = Photometric(jitter=(("hue", 0.05), ("contrast", 1.3)), grayscale=False, blur_sigma=1.0)
    out = apply_photometric(frames, aug)
    assert out.shape == frames.shape and 0 <= out.min() and out.max() <= 1
    assert not torch.allclose(out[0], frame[0])
    torch.testing.assert_close(out[1], out[0])  # the same parameters for every frame
    gray = apply_photometric(frame, Photometric(jitter=(), grayscale=True, blur_sigma=None))
    torch.testing.assert_close(gray[:, 0], gray[:, 2])
    identity = apply_photometric(frame, Photometric(jitter=(), grayscale=False, blur_sigma=None))
    assert math.isclose(float(identity.sum()), float(frame.sum()))


def test_batched_photometric_is_each_clip_alone_bit_for_bit():
    """Each clip of a batch gets exactly its own apply_photometric, with its own op order and factors."""
    ops = ("brightness", "contrast", "saturation", "hue")
    augs = [
        Photometric(jitter=tuple(zip(ops, (1.3, 0.7, 1.2, 0.08), strict=True)), grayscale=False, blur_sigma=None),
        Photometric(
            jitter=tuple(zip(ops[::-1], (-0.05, 0.65, 1.35, 0.9), strict=True)), grayscale=True, blur_sigma=0.8
        ),  # fmt: skip
        Photometric(jitter=(), grayscale=False, blur_sigma=1.7),
        Photometric(
            jitter=tuple(zip(ops[1:] + ops[:1], (1.1, 0.6, -0.1, 1.4), strict=True)), grayscale=False, blur_sigma=None
        ),  # fmt: skip
        Photometric(jitter=(), grayscale=False, blur_sigma=None),
    ]
    images = torch.rand(len(augs), 3, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    expected = torch.stack([apply_photometric(clip, aug) for clip, aug in zip(images, augs, strict=True)])
    out = apply_photometric_batch(images.clone(), augs)
    assert torch.equal(out, expected)
    assert torch.equal(out[4], images[4])  # nothing drawn: unchanged
    with pytest.raises(ValueError, match="photometric draws"):
        apply_photometric_batch(images, augs[:2])
