"""The procedural synthetic video dataset: the project's embedded demo data, with exact ground truth.

Each video is a :class:`Scene`, a handful of numbers drawn from a per-video random stream: textured objects
of 5-6 classes (class = texture + shape, see :mod:`mosic.data.textures`; colours are random per instance)
translate, rotate, scale up to ``scale_change``x and occlude each other in a fixed depth order over a
blotchy background that the camera pans across; a global gain/offset and Gaussian noise change the
brightness. Appearance drifts along every object track (hue rotation and lighting change, plus the scale
change), and motion spans several 8-px patches per clip, so that only correspondences that follow motion
link matching features; the design follows `shared/reference/synthetic_feasibility.md`, where a dataset
with little motion and no drift let a "static" control match ground-truth tracks.

Rendering is analytic and vectorised: each pixel is inverse-mapped into each object's coordinates, where
shapes (signed distance functions, anti-aliased analytically) and textures are defined, so masks and
trajectories come from the same transforms as the pixels. A scene is fully determined by its parameters
(:func:`load_scene` restores one from the JSON that :func:`generate_synthetic` writes), so exact tracks for
any query can be recomputed later with :func:`ground_truth_tracks`.

Conventions (everywhere in this module): image points are ``(x, y)`` in pixels, origin at the top-left,
pixel centres at integer coordinates, so a frame covers ``[-0.5, W - 0.5) x [-0.5, H - 0.5)``. Object
instance ids are 1..n in depth order (a higher id is drawn on top); 0 is the background. Frame ``t`` counts
from 0.

Output layout of :func:`generate_synthetic` under ``out_root`` (video ids ``synth_00000``, ...; frame files
``%05d``; image ids ``img_00000``, ...)::

    ytvos/JPEGImages/<vid>/00000.jpg ...     RGB frames, JPEG quality 95
    ytvos/Annotations/<vid>/00000.png ...    palette PNGs of instance ids (0 = background)
    ytvos/meta.json                          {"videos": {vid: {"objects": {"1": {"category", "frames"}}}}}
    ytvos/Tracks/<vid>.npz                   queries [N,2], tracks [T,N,2], visibility [T,N], instance [N]
    ytvos/Scenes/<vid>.json                  scene parameters (load_scene)
    ytvos/provenance.json                    when a provenance record is given
    videos/<vid>.mp4                         when cfg.write_mp4 (H.264, yuv420p, 24 fps)
    voc/JPEGImages/<id>.jpg                  single frames of independent scenes
    voc/SegmentationClass/<id>.png           palette PNGs of class ids, 255 = 1-px boundary band (ignore)
    voc/ImageSets/Segmentation/{train,val}.txt
    voc/classes.json                         class names, index = class id (0 = background)
    voc/provenance.json                      when a provenance record is given
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import zipfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mosic.config import SyntheticConfig
from mosic.data.textures import CLASSES, EXTENT, class_names, shape_sdf, texture

logger = logging.getLogger(__name__)

__all__ = [
    "SceneObject",
    "Background",
    "Scene",
    "SyntheticVideo",
    "SCENE_FORMAT",
    "draw_scene",
    "render_frame",
    "render_scene",
    "render_video",
    "query_grid",
    "instance_at",
    "ground_truth_tracks",
    "load_scene",
    "save_scene",
    "voc_palette",
    "generate_synthetic",
]

SCENE_FORMAT = "mosic.synthetic.scene/1"

# Random streams: np.random.default_rng([seed, stream, index]); videos and VOC images never share a stream,
# and item i of a stream does not depend on how many items are drawn.
_VIDEO_STREAM = 0
_IMAGE_STREAM = 1

_MAX_ANGULAR_SPEED = 0.06  # rad/frame: up to ~2 rad over a 36-frame demo video
_FPS = 24


@dataclass(frozen=True, kw_only=True)
class SceneObject:
    """One moving object; its pose and appearance at frame ``t`` are closed-form functions of ``t``.

    Pose: centre ``c(t) = centre + velocity * t`` (image pixels), angle ``a(t) = angle + angular_velocity * t``
    (radians, clockwise on screen since y points down), size ``r(t) = radius * exp(log_scale +
    log_scale_rate * t)`` pixels per object unit. Object coordinates ``q`` map to the image point
    ``c(t) + r(t) * R(a(t)) q``.

    Appearance: a texture mixes ``colours[0]`` and ``colours[1]`` (RGB, 0-255); at frame ``t`` both are
    rotated in hue by ``hue_rate * t`` radians (about the grey axis) and multiplied by ``exp(light_rate * t)``
    and by a lighting gradient ``1 + shading * (d . (p - c(t))) / r(t)`` along the scene's light direction d.
    """

    instance: int  # 1..n; also the depth order (higher is on top)
    class_id: int  # 1..num_classes, index into textures.CLASSES + 1
    category: str
    radius: float
    centre: tuple[float, float]
    velocity: tuple[float, float]
    angle: float
    angular_velocity: float
    log_scale: float
    log_scale_rate: float
    texture_cycles: float  # texture periods per object radius
    texture_angle: float
    texture_offset: tuple[float, float]
    colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    hue_rate: float
    light_rate: float
    shading: float


@dataclass(frozen=True, kw_only=True)
class Background:
    """The background texture, a function of world coordinates ``w = p + camera_velocity * t``.

    Each wave is ``(kx, ky, phase, amplitude)`` contributing ``amplitude * sin(kx * wx + ky * wy + phase)``.
    Two low-frequency mixes ``blotch_a``/``blotch_b`` blend the three ``colours``; ``grain`` adds fine
    achromatic texture (in 0-255 units).
    """

    blotch_a: tuple[tuple[float, float, float, float], ...]
    blotch_b: tuple[tuple[float, float, float, float], ...]
    grain: tuple[tuple[float, float, float, float], ...]
    colours: tuple[tuple[float, float, float], ...]


@dataclass(frozen=True, kw_only=True)
class Scene:
    """Every parameter of one synthetic video; rendering and ground truth are pure functions of it.

    Global photometry at frame ``t``: ``frame = gain(t) * image + offset(t) + noise`` with
    ``gain(t) = gain_mean + gain_amplitude * sin(2 pi gain_frequency t + gain_phase)``,
    ``offset(t) = offset_amplitude * sin(2 pi offset_frequency t + offset_phase)`` and i.i.d. Gaussian noise
    of std ``noise`` drawn from ``np.random.default_rng([noise_seed, t])``.
    """

    name: str
    height: int
    width: int
    num_frames: int
    camera_velocity: tuple[float, float]  # background world offset per frame (pixels); objects ignore it
    light_direction: tuple[float, float]
    gain_mean: float
    gain_amplitude: float
    gain_frequency: float
    gain_phase: float
    offset_amplitude: float
    offset_frequency: float
    offset_phase: float
    noise: float
    noise_seed: int
    background: Background
    objects: tuple[SceneObject, ...]


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


# --- scene sampling ------------------------------------------------------------------------------------


def _contrasting_pair(rng: np.random.Generator, min_distance: float = 100.0) -> tuple[tuple[float, ...], ...]:
    """Two random RGB colours at least `min_distance` apart, so every texture stays visible."""
    for _ in range(1000):
        a, b = rng.uniform(25.0, 230.0, size=(2, 3))
        if np.linalg.norm(a - b) >= min_distance:
            break
    return tuple(map(float, a)), tuple(map(float, b))


def _waves(rng: np.random.Generator, count: int, period_lo: float, period_hi: float, amp: tuple[float, float]):
    out = []
    for _ in range(count):
        k = 2.0 * math.pi / rng.uniform(period_lo, period_hi)
        d = rng.uniform(0.0, 2.0 * math.pi)
        out.append((k * math.cos(d), k * math.sin(d), float(rng.uniform(0.0, 2.0 * math.pi)), float(rng.uniform(*amp))))
    return tuple(out)


def draw_scene(cfg: SyntheticConfig, rng: np.random.Generator, name: str) -> Scene:
    """Draw the parameters of one scene.

    Args:
        cfg: dataset settings (frame size, number of frames, object count, motion and drift strength).
        rng: the scene's own random stream.
        name: the scene's name (the video or image id).

    Returns:
        The scene.
    """
    h, w, t_len = cfg.height, cfg.width, cfg.num_frames
    side = min(h, w)
    span = max(t_len - 1, 1)
    drift = cfg.appearance_drift

    cam_dir = rng.uniform(0.0, 2.0 * math.pi)
    cam_speed = rng.uniform(0.3, 1.0) * cfg.camera_speed
    light_dir = rng.uniform(0.0, 2.0 * math.pi)
    background = Background(
        blotch_a=_waves(rng, 5, 0.25 * side, 0.8 * side, (0.5, 1.0)),
        blotch_b=_waves(rng, 4, 0.3 * side, 1.0 * side, (0.5, 1.0)),
        grain=_waves(rng, 6, 2.5, 5.0, (1.5, 4.0)),
        colours=tuple(tuple(map(float, c)) for c in rng.uniform(30.0, 220.0, size=(3, 3))),
    )

    objects = []
    for inst in range(1, int(rng.integers(cfg.min_objects, cfg.max_objects + 1)) + 1):
        class_id = int(rng.integers(1, cfg.num_classes + 1))
        radius = rng.uniform(0.14, 0.22) * side
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        # Head roughly towards the frame centre so most objects stay in view for a while; those starting near
        # the centre cross it and some leave the frame.
        heading = math.atan2(h / 2 - cy, w / 2 - cx) + rng.uniform(-0.6, 0.6) * math.pi
        speed = rng.uniform(0.4, 1.0) * cfg.max_speed
        # Scale goes geometrically from ratio^-1/2 to ratio^+1/2 (or back) with ratio up to scale_change.
        log_ratio = math.log(cfg.scale_change) * rng.uniform(0.6, 1.0) * rng.choice((-1.0, 1.0))
        period = rng.uniform(0.05, 0.07) * side  # pixels at scale 1: >= ~4 px at the smallest scale
        objects.append(
            SceneObject(
                instance=inst,
                class_id=class_id,
                category=CLASSES[class_id - 1][0],
                radius=float(radius),
                centre=(float(cx), float(cy)),
                velocity=(float(speed * math.cos(heading)), float(speed * math.sin(heading))),
                angle=float(rng.uniform(0.0, 2.0 * math.pi)),
                angular_velocity=float(rng.uniform(-1.0, 1.0) * _MAX_ANGULAR_SPEED),
                log_scale=float(-0.5 * log_ratio),
                log_scale_rate=float(log_ratio / span),
                texture_cycles=float(radius / period),
                texture_angle=float(rng.uniform(0.0, math.pi)),
                texture_offset=(float(rng.uniform()), float(rng.uniform())),
                colours=_contrasting_pair(rng),
                hue_rate=float(drift * math.pi * rng.uniform(0.5, 1.0) * rng.choice((-1.0, 1.0)) / span),
                light_rate=float(drift * rng.uniform(0.3, 0.8) * rng.choice((-1.0, 1.0)) / span),
                shading=float(drift * rng.uniform(0.1, 0.4)),
            )
        )

    return Scene(
        name=name,
        height=h,
        width=w,
        num_frames=t_len,
        camera_velocity=(float(cam_speed * math.cos(cam_dir)), float(cam_speed * math.sin(cam_dir))),
        light_direction=(math.cos(light_dir), math.sin(light_dir)),
        gain_mean=float(rng.uniform(0.9, 1.1)),
        gain_amplitude=float(rng.uniform(0.1, 0.25)),
        gain_frequency=float(rng.uniform(0.5, 1.5) / span),
        gain_phase=float(rng.uniform(0.0, 2.0 * math.pi)),
        offset_amplitude=float(rng.uniform(5.0, 20.0)),
        offset_frequency=float(rng.uniform(0.5, 1.5) / span),
        offset_phase=float(rng.uniform(0.0, 2.0 * math.pi)),
        noise=float(cfg.noise),
        noise_seed=int(rng.integers(0, 2**62)),
        background=background,
        objects=tuple(objects),
    )


# --- geometry ------------------------------------------------------------------------------------------


def _pose(obj: SceneObject, t: np.ndarray | float) -> tuple[Any, Any, Any, Any, Any]:
    """Centre x, centre y, cos(angle), sin(angle) and size (pixels per object unit) at frame(s) t."""
    a = obj.angle + obj.angular_velocity * t
    size = obj.radius * np.exp(obj.log_scale + obj.log_scale_rate * t)
    return obj.centre[0] + obj.velocity[0] * t, obj.centre[1] + obj.velocity[1] * t, np.cos(a), np.sin(a), size


def _to_object(pose: tuple, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cx, cy, c, s, size = pose
    dx, dy = px - cx, py - cy
    return (c * dx + s * dy) / size, (-s * dx + c * dy) / size


def _to_image(pose: tuple, qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cx, cy, c, s, size = pose
    return cx + size * (c * qx - s * qy), cy + size * (s * qx + c * qy)


def _shape(obj: SceneObject) -> str:
    return CLASSES[obj.class_id - 1][2]


def _camera(scene: Scene, t: np.ndarray | float) -> tuple[Any, Any]:
    return scene.camera_velocity[0] * t, scene.camera_velocity[1] * t


def instance_at(scene: Scene, points: np.ndarray, frames: np.ndarray | int) -> np.ndarray:
    """The instance on top at exact image points (0 = background), ignoring whether they are in the frame.

    Args:
        scene: the scene.
        points: float [..., 2] (x, y) image points.
        frames: frame index per point, broadcastable to ``points.shape[:-1]`` (e.g. [T, 1] for [T, N, 2]).

    Returns:
        int16 [...] instance ids; a point counts as inside an object where its signed distance is <= 0,
        the same rule the masks use at pixel centres.
    """
    points = np.asarray(points, dtype=np.float64)
    t = np.asarray(frames, dtype=np.float64)
    top = np.zeros(np.broadcast_shapes(points.shape[:-1], t.shape), dtype=np.int16)
    for obj in scene.objects:
        qx, qy = _to_object(_pose(obj, t), points[..., 0], points[..., 1])
        top[shape_sdf(_shape(obj), qx, qy) <= 0.0] = obj.instance
    return top


def query_grid(height: int, width: int, grid: int) -> np.ndarray:
    """A ``grid x grid`` lattice of query points at patch-like centres.

    Point ``n = iy * grid + ix`` is ``x = (ix + 0.5) * width / grid - 0.5``, ``y = (iy + 0.5) * height / grid
    - 0.5`` (pixel centres at integer coordinates).

    Returns:
        float32 [grid * grid, 2] (x, y) points.
    """
    xs = (np.arange(grid) + 0.5) * width / grid - 0.5
    ys = (np.arange(grid) + 0.5) * height / grid - 0.5
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=-1).astype(np.float32)


def _tracks(scene: Scene, queries: np.ndarray, query_frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = np.asarray(queries, dtype=np.float64).reshape(-1, 2)
    inst = instance_at(scene, q, query_frame)  # [N]
    t = np.arange(scene.num_frames, dtype=np.float64)[:, None]  # [T, 1]
    # Background points are fixed in world coordinates and move with the camera pan.
    cam0 = _camera(scene, float(query_frame))
    camt = _camera(scene, t)
    tx = np.broadcast_to(q[:, 0] + cam0[0] - camt[0], (scene.num_frames, len(q))).copy()  # [T, N]
    ty = np.broadcast_to(q[:, 1] + cam0[1] - camt[1], (scene.num_frames, len(q))).copy()
    for obj in scene.objects:
        sel = inst == obj.instance
        if sel.any():
            qx, qy = _to_object(_pose(obj, float(query_frame)), q[sel, 0], q[sel, 1])
            tx[:, sel], ty[:, sel] = _to_image(_pose(obj, t), qx[None], qy[None])
    tracks = np.stack([tx, ty], axis=-1)  # [T, N, 2]
    inside = (tx >= -0.5) & (tx < scene.width - 0.5) & (ty >= -0.5) & (ty < scene.height - 0.5)
    visibility = inside & (instance_at(scene, tracks, t) == inst[None])
    return tracks.astype(np.float32), visibility, inst


def ground_truth_tracks(scene: Scene, queries: np.ndarray, query_frame: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exact trajectories of query points, from the scene's transforms.

    A query belongs to the surface on top at its exact position at ``query_frame`` (an object instance or
    the background, see :func:`instance_at`) and moves with it: object points with the object's pose,
    background points with the camera pan.

    Args:
        scene: the scene (from :func:`render_video` or :func:`load_scene`).
        queries: float [N, 2] (x, y) pixel positions at frame ``query_frame``; pixel centres at integer
            coordinates, origin top-left.
        query_frame: the frame the queries are given in.

    Returns:
        ``(tracks, visibility)``: float32 [T, N, 2] (x, y) positions in every frame of the scene, and bool
        [T, N], true where the point is inside the frame (``-0.5 <= x < W - 0.5``, same for y, so the rounded
        position is a valid pixel) and its own surface is on top there.
    """
    tracks, visibility, _ = _tracks(scene, queries, query_frame)
    return tracks, visibility


# --- rendering -----------------------------------------------------------------------------------------


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


def render_frame(scene: Scene, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame of a scene.

    Args:
        scene: the scene.
        t: frame index (0-based; values past ``num_frames`` extrapolate the motion).

    Returns:
        ``(frame, mask)``: uint8 [H, W, 3] RGB and uint8 [H, W] instance ids of the top surface at each pixel
        centre (0 = background).
    """
    h, w = scene.height, scene.width
    img = _background(scene, t)  # [H, W, 3] float, 0-255 units
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
        sdf = shape_sdf(_shape(obj), qx, qy)  # object units
        # Analytic anti-aliasing: coverage falls linearly over one pixel across the outline.
        alpha = np.clip(0.5 - sdf * size, 0.0, 1.0)[..., None]
        mix = texture(
            CLASSES[obj.class_id - 1][1],
            qx,
            qy,
            cycles_per_radius=obj.texture_cycles,
            angle=obj.texture_angle,
            offset=obj.texture_offset,
        )[..., None]
        rot = _hue_rotation(obj.hue_rate * t) * math.exp(obj.light_rate * t)
        c0, c1 = (rot @ np.asarray(c) for c in obj.colours)
        light = np.maximum(1.0 + obj.shading * ((px - cx) * lx + (py - cy) * ly) / size, 0.0)[..., None]
        colour = (c0 * (1.0 - mix) + c1 * mix) * light
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


# --- persistence ---------------------------------------------------------------------------------------


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def save_scene(scene: Scene, path: Path) -> None:
    """Write a scene as JSON (``{"format": SCENE_FORMAT, ...fields of Scene}``); floats round-trip exactly."""
    data = {"format": SCENE_FORMAT, **dataclasses.asdict(scene)}
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def load_scene(path: Path) -> Scene:
    """Read a scene written by :func:`generate_synthetic` (``ytvos/Scenes/<vid>.json``).

    Args:
        path: the JSON file.

    Returns:
        The scene, equal to the one that was rendered.

    Raises:
        ValueError: if the file is not a scene of this format.
    """
    data = json.loads(Path(path).read_text())
    if data.pop("format", None) != SCENE_FORMAT:
        raise ValueError(f"{path} is not a {SCENE_FORMAT} file")
    bg = Background(**{k: _tuples(v) for k, v in data.pop("background").items()})
    objects = tuple(SceneObject(**{k: _tuples(v) for k, v in o.items()}) for o in data.pop("objects"))
    return Scene(background=bg, objects=objects, **{k: _tuples(v) for k, v in data.items()})


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like np.savez, but with fixed zip timestamps so that the file is byte-identical across runs."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue())


def voc_palette() -> list[int]:
    """The Pascal VOC / DAVIS colour map (256 RGB entries, flattened; 255 is the light 'ignore' colour)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


_PALETTE = voc_palette()


def _save_palette_png(path: Path, labels: np.ndarray) -> None:
    im = Image.fromarray(labels.astype(np.uint8))
    im.putpalette(_PALETTE)  # an "L" image becomes mode "P"
    im.save(path)


def _save_jpeg(path: Path, frame: np.ndarray) -> None:
    Image.fromarray(frame).save(path, quality=95)


def _write_mp4(path: Path, frames: np.ndarray) -> None:
    """H.264/yuv420p at 24 fps; odd sizes are padded by one replicated row/column (yuv420p needs even sizes)."""
    import av  # PyAV is only needed when cfg.write_mp4

    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=_FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # x264's macroblock-tree rate control gave run-to-run different bitstreams on small frames (64 x 64,
        # same input, one thread); without it the output is byte-identical, as the dataset promises.
        stream.options = {"crf": "18", "x264-params": "mbtree=0"}
        for t, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, _FPS)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


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


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")


def _generate_videos(cfg: SyntheticConfig, root: Path, videos_dir: Path | None) -> None:
    for sub in ("JPEGImages", "Annotations", "Tracks", "Scenes"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    if videos_dir is not None:
        videos_dir.mkdir(parents=True, exist_ok=True)
    queries = query_grid(cfg.height, cfg.width, cfg.track_grid)
    meta: dict[str, Any] = {"videos": {}}
    every = max(1, cfg.num_videos // 10)
    for i in range(cfg.num_videos):
        video = render_video(cfg, i)
        vid = video.video_id
        (root / "JPEGImages" / vid).mkdir(exist_ok=True)
        (root / "Annotations" / vid).mkdir(exist_ok=True)
        for t, (frame, mask) in enumerate(zip(video.frames, video.masks, strict=True)):
            _save_jpeg(root / "JPEGImages" / vid / f"{t:05d}.jpg", frame)
            _save_palette_png(root / "Annotations" / vid / f"{t:05d}.png", mask)
        tracks, visibility, instance = _tracks(video.scene, queries, 0)
        _save_npz(
            root / "Tracks" / f"{vid}.npz",
            queries=queries,
            tracks=tracks,
            visibility=visibility,
            instance=instance.astype(np.int16),
        )
        save_scene(video.scene, root / "Scenes" / f"{vid}.json")
        objects = {}
        for inst, category in video.categories.items():
            present = np.flatnonzero((video.masks == inst).any(axis=(1, 2)))
            if present.size:  # like YouTube-VOS, list only objects that appear at all
                objects[str(inst)] = {"category": category, "frames": [f"{t:05d}" for t in present]}
        meta["videos"][vid] = {"objects": objects}
        if videos_dir is not None:
            _write_mp4(videos_dir / f"{vid}.mp4", video.frames)
        if (i + 1) % every == 0 or i + 1 == cfg.num_videos:
            logger.info("synthetic videos: %d/%d rendered", i + 1, cfg.num_videos)
    _write_json(root / "meta.json", meta)


def _generate_images(cfg: SyntheticConfig, root: Path) -> None:
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"img_{j:05d}" for j in range(cfg.images_train + cfg.images_val)]
    for j, image_id in enumerate(ids):
        rng = np.random.default_rng([cfg.seed, _IMAGE_STREAM, j])
        scene = draw_scene(cfg, rng, image_id)
        # Early frames: objects start inside the frame and may leave it later.
        frame, instances = render_frame(scene, int(rng.integers(0, (cfg.num_frames + 1) // 2)))
        lut = np.zeros(256, dtype=np.uint8)
        for obj in scene.objects:
            lut[obj.instance] = obj.class_id
        labels = lut[instances]
        labels[_boundary_band(instances)] = 255  # Pascal VOC's ignore label
        _save_jpeg(root / "JPEGImages" / f"{image_id}.jpg", frame)
        _save_palette_png(root / "SegmentationClass" / f"{image_id}.png", labels)
    split_dir = root / "ImageSets" / "Segmentation"
    (split_dir / "train.txt").write_text("".join(f"{i}\n" for i in ids[: cfg.images_train]))
    (split_dir / "val.txt").write_text("".join(f"{i}\n" for i in ids[cfg.images_train :]))
    _write_json(root / "classes.json", class_names(cfg.num_classes))
    logger.info("synthetic images: %d train, %d val", cfg.images_train, cfg.images_val)


def generate_synthetic(cfg: SyntheticConfig, out_root: Path, *, provenance: dict | None = None) -> None:
    """Render the whole synthetic dataset: videos in YouTube-VOS layout with exact ground truth, and an
    image segmentation set in Pascal VOC layout (see the module docstring for the file layout).

    The output is a deterministic function of ``cfg``: the same config gives byte-identical files (except
    ``provenance.json``, which holds what the caller passes). Video ``i`` depends only on ``cfg.seed`` and
    ``i``; VOC images come from a separate random stream, so they never repeat a video scene.

    Args:
        cfg: dataset settings.
        out_root: directory to write into (created if missing; the caller handles atomicity).
        provenance: a record to store as ``provenance.json`` in ``ytvos/`` and ``voc/``.
    """
    out_root = Path(out_root)
    ytvos, voc = out_root / "ytvos", out_root / "voc"
    _generate_videos(cfg, ytvos, out_root / "videos" if cfg.write_mp4 else None)
    _generate_images(cfg, voc)
    if provenance is not None:
        for root in (ytvos, voc):
            _write_json(root / "provenance.json", provenance)
