"""Per-clip augmentations of the training clips: one random resized crop (and flip) shared by every frame, the exact
map of track coordinates into it, and the student's photometric augmentation.

Coordinate convention (as in :mod:`mosic.store.schema`): a point ``(x, y)`` is in pixels, pixel centres at integer
coordinates, origin top-left, so a frame of width W covers ``[-0.5, W - 0.5]``. A crop box ``(x0, y0, w, h)`` of
the cache frame holds cache pixels ``x0 .. x0 + w - 1``, i.e. the interval ``[x0 - 0.5, x0 + w - 0.5]``; resized
to ``S`` pixels it becomes ``[-0.5, S - 0.5]``, so a point maps exactly by::

    x_in = (x - x0 + 0.5) * S / w - 0.5        y_in = (y - y0 + 0.5) * S / h - 0.5

which is the sampling map of ``F.interpolate(..., align_corners=False)`` (also with ``antialias=True``): pixel
``j`` of the output is centred on input coordinate ``(j + 0.5) * w / S - 0.5``. A horizontal flip of the
resized frame maps ``x_in`` to ``(S - 1) - x_in``. A point is *inside* the resized frame when
``-0.5 <= x_in < S - 0.5`` and the same for y: exactly the points whose nearest pixel ``round(x_in)`` is a valid
index ``0 .. S - 1`` (half-open, so a point on the far edge never rounds to ``S``).

Every random draw takes a :class:`numpy.random.Generator` argument: the dataset seeds one per clip and epoch, so
an augmentation does not depend on the process or worker that computes it. The draws are made where the clip is
read (a loader worker); the pixel operations run later, on a whole batch on the training device
(:func:`crop_resize_frames` per clip, :func:`apply_photometric_batch`), and on the CPU they give exactly the
pixels of the one-clip functions.

The normalisation constants live here too (training, evaluation and the presets share them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import Tensor

# adjust_hue's own colour-space conversions: a batched hue shift with one factor per clip, exactly as adjust_hue.
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ORIGINAL_STD",
    "CropBox",
    "Photometric",
    "random_resized_crop_box",
    "crop_resize_frames",
    "map_points",
    "sample_photometric",
    "apply_photometric",
    "apply_photometric_batch",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ORIGINAL_STD = (0.228, 0.224, 0.225)  # the original training code's typo (spec §1.4); faithful preset only


@dataclass(frozen=True, kw_only=True)
class CropBox:
    """A crop of the cache frame: columns ``x0 .. x0 + w - 1`` and rows ``y0 .. y0 + h - 1`` (integers)."""

    x0: int
    y0: int
    w: int
    h: int


def random_resized_crop_box(
    rng: np.random.Generator,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> CropBox:
    """Draw a crop as torchvision's ``RandomResizedCrop.get_params``, from `rng` instead of torch's global stream.

    Up to 10 tries draw an area fraction ``~ U(scale)`` and a log-uniform aspect ratio ``w / h ~ ratio``, with
    ``w = round(sqrt(A r))`` and ``h = round(sqrt(A / r))``; the first that fits is placed uniformly. When none
    fits, the largest centre crop with the ratio clamped into `ratio` is used.

    Args:
        rng: the clip's generator.
        height: H of the frame the crop is taken from (the cache resolution).
        width: W of that frame.
        scale: (smallest, largest) area fraction.
        ratio: (smallest, largest) aspect ratio w / h.
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            y0 = int(rng.integers(0, height - h + 1))
            x0 = int(rng.integers(0, width - w + 1))
            return CropBox(x0=x0, y0=y0, w=w, h=h)
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return CropBox(x0=(width - w) // 2, y0=(height - h) // 2, w=w, h=h)


def crop_resize_frames(frames: Tensor, box: CropBox, size: int, flip: bool) -> Tensor:
    """Crop every frame with `box`, resize it to ``size x size`` and optionally flip it horizontally.

    One bilinear, antialiased ``F.interpolate`` call for all T frames. On the CPU it runs on the uint8 pixels
    (channels-last, about 8x faster than on float32; the result is rounded to uint8 as torchvision's uint8 resize
    does). CUDA has no uint8 antialiased kernel: there the pixels are resized as float32 and rounded to integers
    (float32 holding 0-255), which can differ from the CPU's fixed-point uint8 result by one level.

    Args:
        frames: uint8 [T, H, W, 3], the clip's frames at the cache resolution.
        box: the crop, inside the frame.
        size: S, the side of the output.
        flip: mirror the output horizontally.

    Returns:
        [T, 3, S, S] (memory in channels-last order): uint8 on the CPU, integer-valued float32 elsewhere.
    """
    crop = frames[:, box.y0 : box.y0 + box.h, box.x0 : box.x0 + box.w].permute(0, 3, 1, 2)  # [T, 3, h, w]
    if frames.device.type != "cpu":
        crop = crop.float()
    if (box.h, box.w) != (size, size):
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if crop.is_floating_point():
            crop = crop.round_().clamp_(0, 255)
    return crop.flip(-1) if flip else crop


def map_points(points: np.ndarray, box: CropBox, size: int, flip: bool) -> np.ndarray:
    """Map points ``(x, y)`` in cache pixels into the cropped, resized (and flipped) frame (module docstring).

    Args:
        points: float [..., 2], (x, y) in pixels of the cache frame, pixel centres at integer coordinates.
        box: the crop.
        size: S, the side of the resized crop.
        flip: whether the resized crop was mirrored horizontally.

    Returns:
        float32 [..., 2], (x, y) in pixels of the ``S x S`` input, same convention; NaN stays NaN.
    """
    p = points.astype(np.float64)
    x = (p[..., 0] - box.x0 + 0.5) * (size / box.w) - 0.5
    y = (p[..., 1] - box.y0 + 0.5) * (size / box.h) - 0.5
    if flip:
        x = (size - 1) - x
    return np.stack([x, y], axis=-1).astype(np.float32)


@dataclass(frozen=True, kw_only=True)
class Photometric:
    """The drawn parameters of one photometric augmentation (shared by every frame it is applied to).

    Attributes:
        jitter: ``(op, factor)`` pairs applied in order, op in brightness/contrast/saturation/hue; empty when the
            colour jitter was not drawn.
        grayscale: convert to grey (3 equal channels).
        blur_sigma: standard deviation of the Gaussian blur in pixels of the input, or None for no blur.
    """

    jitter: tuple[tuple[str, float], ...]
    grayscale: bool
    blur_sigma: float | None


_JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


def sample_photometric(
    rng: np.random.Generator,
    size: int,
    *,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p_jitter: float = 0.8,
    p_gray: float = 0.2,
    p_blur: float = 0.5,
    sigma: tuple[float, float] = (0.1, 2.0),
) -> Photometric:
    """Draw a photometric augmentation (SimCLR / DINO style, the strengths the brief asks for).

    ``ColorJitter(brightness, contrast, saturation, hue)`` with probability `p_jitter`, its four ops in a random
    order as torchvision does (factors ``U(1 - b, 1 + b)``, hue shift ``U(-hue, hue)``); ``RandomGrayscale``
    with `p_gray`; Gaussian blur with `p_blur` and ``sigma ~ U(sigma) * S / 224`` (DINO's range is for 224 px
    inputs, so it is scaled with the input size). Every draw is taken whether or not it is used, so the number
    of draws is fixed.

    Args:
        rng: the clip's generator (a stream of its own, so turning the augmentation on changes nothing else).
        size: S, the input side in pixels.
    """
    u_jitter, u_gray, u_blur = rng.random(3)
    order = rng.permutation(4)
    amounts = {"brightness": brightness, "contrast": contrast, "saturation": saturation}
    factors = {k: float(rng.uniform(1 - v, 1 + v)) for k, v in amounts.items()}
    factors["hue"] = float(rng.uniform(-hue, hue))
    s = float(rng.uniform(*sigma)) * size / 224
    jitter = tuple((_JITTER_OPS[k], factors[_JITTER_OPS[k]]) for k in order) if u_jitter < p_jitter else ()
    return Photometric(jitter=jitter, grayscale=bool(u_gray < p_gray), blur_sigma=s if u_blur < p_blur else None)


def apply_photometric(images: Tensor, aug: Photometric) -> Tensor:
    """Apply `aug` with torchvision.transforms.v2 functional ops.

    Args:
        images: float32 [..., 3, S, S] in [0, 1] (one frame or all T; the same parameters for every frame, as
            each op works on every image alone).
        aug: from :func:`sample_photometric`.

    Returns:
        float32 [..., 3, S, S] in [0, 1].
    """
    if images.ndim > 3:
        # Frame by frame: on CPU the blur's depthwise conv2d is 2-4x faster per frame than on a stack of frames.
        frames = images.reshape(-1, *images.shape[-3:])
        return torch.stack([apply_photometric(f, aug) for f in frames.unbind(0)]).view(images.shape)
    fns = {
        "brightness": TF.adjust_brightness,
        "contrast": TF.adjust_contrast,
        "saturation": TF.adjust_saturation,
        "hue": TF.adjust_hue,
    }
    for op, factor in aug.jitter:
        images = fns[op](images, factor)
    if aug.grayscale:
        images = TF.rgb_to_grayscale(images, num_output_channels=3)
    if aug.blur_sigma is not None:
        k = 2 * math.ceil(3 * aug.blur_sigma) + 1  # covers +-3 sigma
        images = TF.gaussian_blur(images, kernel_size=[k, k], sigma=[aug.blur_sigma, aug.blur_sigma])
    return images


def _per_image(values: list[float], like: Tensor) -> Tensor:
    """float32 [n, 1, 1, 1, 1] on `like`'s device from Python floats, each rounded once as torch rounds a scalar."""
    return torch.tensor(values, dtype=torch.float64).to(device=like.device, dtype=torch.float32).view(-1, 1, 1, 1, 1)


def _blend(images: Tensor, other: Tensor, ratios: list[float]) -> Tensor:
    """torchvision's ``_blend`` with one ratio per clip: ``clamp(x * r + other * (1 - r), 0, 1)``.

    ``add_(other, alpha=1 - r)`` runs as one fused multiply-add in torch's vectorised CPU kernel; ``addcmul`` with
    a tensor factor does the same, so the result is bit for bit torchvision's (``(1 - r)`` is taken in float64,
    as Python takes it, before the rounding to float32).
    """
    r = _per_image(ratios, images)
    alpha = _per_image([1.0 - x for x in ratios], images)
    return torch.addcmul(images.mul(r), other, alpha).clamp_(0, 1)


def _image_means(gray: Tensor) -> Tensor:
    """[..., 1, 1, 1]: the mean of each image of `gray` [..., 1, S, S], summed serially whatever the thread count.

    Torch sums a reduction to a single value in chunks over its threads (a different rounding) but reduces many
    values one by one, each over a thread; a lone image is therefore reduced beside a zero-stride copy of itself.
    Every image then gets the one-thread mean that :func:`apply_photometric` gets in a loader worker, whatever
    the other clips of its batch.
    """
    if gray.shape[:-3].numel() == 1:
        return gray.expand(2, *gray.shape).mean(dim=(-3, -2, -1), keepdim=True)[0]
    return gray.mean(dim=(-3, -2, -1), keepdim=True)


def _jitter(images: Tensor, op: str, factors: list[float]) -> Tensor:
    """torchvision's ``adjust_<op>`` on float images [n, F, 3, S, S], one factor per clip (same operations)."""
    if op == "brightness":
        return images.mul(_per_image(factors, images)).clamp_(0, 1)
    if op == "contrast":
        return _blend(images, _image_means(TF.rgb_to_grayscale(images)), factors)
    if op == "saturation":
        return _blend(images, TF.rgb_to_grayscale(images), factors)
    hsv = _rgb_to_hsv(images)
    h, s, v = hsv.unbind(dim=-3)
    h.add_(_per_image(factors, images)[..., 0]).remainder_(1.0)
    return _hsv_to_rgb(torch.stack((h, s, v), dim=-3))


def apply_photometric_batch(images: Tensor, augs: Sequence[Photometric]) -> Tensor:
    """:func:`apply_photometric` on a batch of clips, each with its own parameters, in place.

    The clips that share an operation at a step (e.g. contrast as the second jitter op) go through it together,
    so a batch costs a few dozen tensor operations on the device rather than some per clip; only the Gaussian
    blur, whose kernel size follows each clip's sigma, runs clip by clip. On the CPU every clip's pixels are
    exactly those of :func:`apply_photometric` on that clip alone in a one-thread process (the operations are
    torchvision's with per-clip factors; see :func:`_blend` and :func:`_image_means`).

    Args:
        images: float32 [B, F, 3, S, S] in [0, 1], F frames of each of B clips; overwritten.
        augs: B draws of :func:`sample_photometric`, one per clip.

    Returns:
        `images`, augmented: float32 [B, F, 3, S, S] in [0, 1].
    """
    if len(augs) != images.shape[0]:
        raise ValueError(f"{len(augs)} photometric draws for a batch of {images.shape[0]} clips")

    def update(clips: list[int], fn) -> None:
        index = torch.tensor(clips, device=images.device)
        images.index_copy_(0, index, fn(images.index_select(0, index)))

    for position in range(len(_JITTER_OPS)):
        for op in _JITTER_OPS:
            clips = [b for b, a in enumerate(augs) if len(a.jitter) > position and a.jitter[position][0] == op]
            if clips:
                factors = [augs[b].jitter[position][1] for b in clips]
                update(clips, lambda x, op=op, factors=factors: _jitter(x, op, factors))
    gray = [b for b, a in enumerate(augs) if a.grayscale]
    if gray:
        update(gray, lambda x: TF.rgb_to_grayscale(x, num_output_channels=3))
    for b, aug in enumerate(augs):
        if aug.blur_sigma is not None:
            k = 2 * math.ceil(3 * aug.blur_sigma) + 1
            blur = [k, k], [aug.blur_sigma, aug.blur_sigma]
            if images.device.type == "cpu":  # frame by frame: as fast as in apply_photometric, the same pixels
                for frame in images[b]:
                    frame.copy_(TF.gaussian_blur(frame, kernel_size=blur[0], sigma=blur[1]))
            else:
                images[b] = TF.gaussian_blur(images[b], kernel_size=blur[0], sigma=blur[1])
    return images
