"""Rendering a scene: frames and instance masks of the videos, and the images of the VOC-layout set.

Rendering is analytic and vectorised: each pixel is inverse-mapped into each object's coordinates
(:mod:`.geometry`), where shapes (signed distance functions, anti-aliased analytically) and textures
(:mod:`mosic.data.textures`) are defined, so masks and trajectories come from the same transforms as the
pixels. :func:`render_video` and :func:`render_image` give in memory exactly what :mod:`.writer` saves (before
JPEG compression).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mosic.config import SyntheticConfig
from mosic.data.synthetic.draw import draw_scene
from mosic.data.synthetic.geometry import _camera, _pose, _to_object, _turn_weight, _turned
from mosic.data.synthetic.scene import Face, Scene, SceneObject
from mosic.data.textures import EXTENT, shape_sdf, texture

# Random streams: np.random.default_rng([seed, stream, index]); videos and VOC images never share a stream,
# and item i of a stream does not depend on how many items are drawn.
_VIDEO_STREAM = 0
_IMAGE_STREAM = 1


@dataclass(frozen=True, kw_only=True)
class SyntheticVideo:
    """A rendered synthetic video held in memory.

    Shapes: ``frames`` uint8 [T, H, W, 3] RGB; ``masks`` uint8 [T, H, W] instance ids (0 = background; the
    id of the top surface at each pixel centre). ``categories`` maps every instance id of the scene to its
    class name (an object may be hidden in some or all frames).
    """

    video_id: str
    frames: np.ndarray  # [T, H, W, 3] uint8
    masks: np.ndarray  # [T, H, W] uint8
    categories: dict[int, str]
    scene: Scene


@dataclass(frozen=True, kw_only=True)
class SyntheticImage:
    """An image of the VOC-layout set held in memory: one frame of an independent scene.

    Shapes: ``image`` uint8 [H, W, 3] RGB; ``instances`` uint8 [H, W] instance ids and ``labels`` uint8
    [H, W] class ids, both 255 on the 1-px boundary band (ignore). ``objects`` has one record per object of
    the scene, in depth order: ``{"instance", "class_id", "category", "shape", "face", "pixels"}`` (``face``:
    the face it shows, index into its class's faces; ``pixels``: where it is on top, band included; 0 for an
    object out of view or hidden).
    """

    image_id: str
    face: int | None  # the face every object shows, or None: each object shows a face drawn at random
    frame: int  # the scene frame rendered
    image: np.ndarray  # [H, W, 3] uint8
    instances: np.ndarray  # [H, W] uint8
    labels: np.ndarray  # [H, W] uint8
    objects: tuple[dict[str, Any], ...]
    scene: Scene


def _wave_sum(waves: tuple, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """Sum of plane waves on the grid wx (W,) x wy (H,), using sin(a + b) to stay separable."""
    out = np.zeros((wy.size, wx.size))
    for kx, ky, phase, amp in waves:
        a = kx * wx + phase
        b = ky * wy
        out += amp * (np.sin(b)[:, None] * np.cos(a)[None, :] + np.cos(b)[:, None] * np.sin(a)[None, :])
    return out


def _background(scene: Scene, t: int) -> np.ndarray:
    bg = scene.background
    camx, camy = _camera(scene, float(t))
    wx = np.arange(scene.width) + camx
    wy = np.arange(scene.height) + camy
    norm_a = sum(w[3] for w in bg.blotch_a)
    norm_b = sum(w[3] for w in bg.blotch_b)
    a = (0.5 + 0.5 * np.tanh(5.0 * _wave_sum(bg.blotch_a, wx, wy) / norm_a))[..., None]
    b = (0.5 + 0.5 * np.tanh(5.0 * _wave_sum(bg.blotch_b, wx, wy) / norm_b))[..., None]
    c0, c1, c2 = (np.asarray(c) for c in bg.colours)
    img = (c0 * (1.0 - a) + c1 * a) * (1.0 - 0.7 * b) + c2 * (0.7 * b)
    return img + _wave_sum(bg.grain, wx, wy)[..., None]


def _hue_rotation(theta: float) -> np.ndarray:
    """3x3 RGB rotation by `theta` about the grey axis (Rodrigues): rotates hue, keeps brightness."""
    k = np.full(3, 1.0 / math.sqrt(3.0))
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return math.cos(theta) * np.eye(3) + math.sin(theta) * kx + (1.0 - math.cos(theta)) * np.outer(k, k)


def _face_colour(obj: SceneObject, face: Face, qx: np.ndarray, qy: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """RGB [..., 3] (0-255, before lighting) of `face` at object coordinates; `rot` is the colour drift."""
    mix = texture(
        face.pattern,
        qx,
        qy,
        cycles_per_radius=obj.texture_cycles / face.period,
        angle=obj.texture_angle,
        offset=obj.texture_offset,
        params=face.params,
    )[..., None]
    c0, c1 = (rot @ np.asarray(c) for c in face.colours)
    return c0 * (1.0 - mix) + c1 * mix


def render_frame(scene: Scene, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame of a scene.

    Args:
        scene: the scene.
        t: frame index (0-based; values past ``num_frames`` extrapolate the motion).

    Returns:
        ``(frame, mask)``: uint8 [H, W, 3] RGB and uint8 [H, W] instance ids of the top surface at each pixel
        centre (0 = background).
    """
    return _render_over(scene, t, _background(scene, t))


def _render_over(scene: Scene, t: int, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render_frame` over a given background (float [H, W, 3], 0-255 units; overwritten)."""
    h, w = scene.height, scene.width
    mask = np.zeros((h, w), dtype=np.uint8)
    lx, ly = scene.light_direction
    for obj in scene.objects:
        pose = _pose(obj, float(t))
        cx, cy, _, _, size = pose
        reach = EXTENT * size + 1.5
        x0, x1 = max(int(math.floor(cx - reach)), 0), min(int(math.ceil(cx + reach)) + 1, w)
        y0, y1 = max(int(math.floor(cy - reach)), 0), min(int(math.ceil(cy + reach)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        px = np.arange(x0, x1, dtype=np.float64)[None, :]
        py = np.arange(y0, y1, dtype=np.float64)[:, None]
        qx, qy = _to_object(pose, px, py)
        sdf = shape_sdf(obj.shape, qx, qy)  # object units
        # Analytic anti-aliasing: coverage falls linearly over one pixel across the outline.
        alpha = np.clip(0.5 - sdf * size, 0.0, 1.0)[..., None]
        rot = _hue_rotation(obj.hue_rate * t) * math.exp(obj.light_rate * t)
        weight = _turn_weight(obj, qx, qy, float(t))  # of the face shown after the turn
        if weight is None:
            colour = _face_colour(obj, obj.faces[obj.shown[-1 if _turned(obj, t) else 0]], qx, qy, rot)
        else:
            weight = weight[..., None]
            before = _face_colour(obj, obj.faces[obj.shown[0]], qx, qy, rot)
            colour = before + weight * (_face_colour(obj, obj.faces[obj.shown[1]], qx, qy, rot) - before)
        light = np.maximum(1.0 + obj.shading * ((px - cx) * lx + (py - cy) * ly) / size, 0.0)[..., None]
        colour = colour * light
        region = img[y0:y1, x0:x1]
        region += alpha * (colour - region)
        mask[y0:y1, x0:x1][sdf <= 0.0] = obj.instance
    gain = scene.gain_mean + scene.gain_amplitude * math.sin(
        2.0 * math.pi * scene.gain_frequency * t + scene.gain_phase
    )
    offset = scene.offset_amplitude * math.sin(2.0 * math.pi * scene.offset_frequency * t + scene.offset_phase)
    img = img * gain + offset
    if scene.noise > 0:
        img += scene.noise * np.random.default_rng([scene.noise_seed, t]).standard_normal((h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def render_scene(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Render every frame of a scene.

    Returns:
        ``(frames, masks)``: uint8 [T, H, W, 3] RGB and uint8 [T, H, W] instance ids.
    """
    out = [render_frame(scene, t) for t in range(scene.num_frames)]
    return np.stack([f for f, _ in out]), np.stack([m for _, m in out])


def render_video(cfg: SyntheticConfig, index: int) -> SyntheticVideo:
    """Render video ``index`` of the dataset in memory (identical to what :func:`generate_synthetic` writes,
    before JPEG compression).

    Args:
        cfg: dataset settings.
        index: video number; the video depends only on ``cfg`` (not on ``num_videos``) and ``index``.

    Returns:
        The video, its masks, categories and scene.
    """
    video_id = f"synth_{index:05d}"
    scene = draw_scene(cfg, np.random.default_rng([cfg.seed, _VIDEO_STREAM, index]), video_id)
    frames, masks = render_scene(scene)
    return SyntheticVideo(
        video_id=video_id,
        frames=frames,
        masks=masks,
        categories={o.instance: o.category for o in scene.objects},
        scene=scene,
    )


def image_ids(index: int, faces: int) -> list[str]:
    """Ids of image ``index`` of the VOC-layout set: ``img_<index>`` (random face per object), then, when
    ``faces > 1``, ``img_<index>_face<f>`` for every face f (every object shows face f)."""
    base = f"img_{index:05d}"
    return [base] + ([f"{base}_face{f}" for f in range(faces)] if faces > 1 else [])


def render_image(cfg: SyntheticConfig, index: int, *, face: int | None = None) -> SyntheticImage:
    """Render image ``index`` of the VOC-layout set (identical to what :func:`generate_synthetic` writes,
    before JPEG compression).

    The image is an early frame of its own scene (random stream ``[seed, 1, index]``, never a video's), in
    which objects do not turn: each shows one face, drawn at random, or ``face`` for all of them. Geometry,
    colours, drift and noise do not depend on ``face``, so the variants of an image differ only in the faces
    shown and share their masks.

    Args:
        cfg: dataset settings.
        index: image number (train images first, then val).
        face: the face every object shows (0 to ``cfg.faces - 1``), or None for a random face per object.

    Returns:
        The image, its masks and the record of its objects.

    Raises:
        ValueError: for a face outside 0 to ``cfg.faces - 1``.
    """
    if face is not None and not 0 <= face < cfg.faces:
        raise ValueError(f"face must be 0 to {cfg.faces - 1} (synthetic.faces = {cfg.faces}), got {face}")
    return _render_images(cfg, index, [face])[0]


def _render_images(cfg: SyntheticConfig, index: int, faces: list[int | None]) -> list[SyntheticImage]:
    """Variants of image `index` (see :func:`render_image`), drawing its scene and background once."""
    ids = image_ids(index, cfg.faces)
    rng = np.random.default_rng([cfg.seed, _IMAGE_STREAM, index])
    scene = draw_scene(cfg, rng, ids[0])
    # Early frames: objects start inside the frame and may leave it later.
    t = int(rng.integers(0, (cfg.num_frames + 1) // 2))
    background = _background(scene, t)
    return [_render_image(scene, t, background.copy(), ids[0] if f is None else ids[1 + f], f) for f in faces]


def _render_image(scene: Scene, t: int, background: np.ndarray, image_id: str, face: int | None) -> SyntheticImage:
    objects = tuple(dataclasses.replace(o, shown=(o.shown[0] if face is None else face,)) for o in scene.objects)
    scene = dataclasses.replace(scene, objects=objects)
    image, instances = _render_over(scene, t, background)
    lut = np.zeros(256, dtype=np.uint8)
    for obj in objects:
        lut[obj.instance] = obj.class_id
    band = _boundary_band(instances)
    labels, instances = lut[instances], instances.copy()
    pixels = np.bincount(instances.ravel(), minlength=256)
    labels[band] = instances[band] = 255  # Pascal VOC's ignore label
    records = tuple(
        {
            "instance": o.instance,
            "class_id": o.class_id,
            "category": o.category,
            "shape": o.shape,
            "face": o.shown[0],
            "pixels": int(pixels[o.instance]),
        }
        for o in objects
    )
    return SyntheticImage(
        image_id=image_id,
        face=face,
        frame=t,
        image=image,
        instances=instances,
        labels=labels,
        objects=records,
        scene=scene,
    )


def _boundary_band(instances: np.ndarray) -> np.ndarray:
    """Pixels on the outer 1-px ring of each visible object region: a 4-neighbour has a lower instance id.

    Depth order equals id order, so the band lies on the occluding (upper) side of every outline, where the
    anti-aliased pixels are.
    """
    band = np.zeros(instances.shape, dtype=bool)
    inst = instances.astype(np.int16)
    band[1:] |= inst[1:] > inst[:-1]
    band[:-1] |= inst[:-1] > inst[1:]
    band[:, 1:] |= inst[:, 1:] > inst[:, :-1]
    band[:, :-1] |= inst[:, :-1] > inst[:, 1:]
    return band
