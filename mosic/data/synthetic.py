"""The procedural synthetic video dataset: the project's embedded demo data, with exact ground truth.

Each video is a :class:`Scene`, a handful of numbers drawn from a per-video random stream: textured objects
of 5-6 classes (colours are random per instance) translate, rotate, scale up to ``scale_change``x and occlude
each other in a fixed depth order over a blotchy background that the camera pans across; a global
gain/offset and Gaussian noise change the brightness. Appearance drifts along every object track (hue
rotation and lighting change, plus the scale change), and motion spans several 8-px patches per clip, so that
only correspondences that follow motion link matching features; the design follows
`shared/reference/synthetic_feasibility.md`, where a dataset with little motion and no drift let a "static"
control match ground-truth tracks.

Turning objects (``faces > 1``, the demo). Hue, lighting and scale drift are what photometric and crop
augmentation fake, so they cannot show that motion teaches anything. With ``faces = F >= 2`` every class owns
F unrelated appearances and every object *turns* from one to another while it moves, like a card flipping or
a die rolling over to show another side; nothing but the track links the two sides. Decisions:

- *Faces* are texture families (:mod:`mosic.data.textures`) drawn from ``texture_seed`` (scenes come from
  ``seed``, so another ``texture_seed`` shows the same scenes in unseen textures). A face is a pattern kind with
  its structural parameters and period band, plus a colour tone (saturation and value of its two colours and
  their hue difference); the F faces of a class differ in all three, so they share no pattern or colour
  statistics. Each instance recolours every face of its class with its own random base hue (as colours were
  random per instance before), keeping the tone, so all instances of a face are recognisable as that face
  while absolute hue says nothing about class or face.
- *Shape* does not give the class away: with turning objects it is random per instance among the six shapes,
  shared by all classes (with ``faces = 1`` each class keeps its own shape, as before).
- *The turn* (:class:`SceneObject`): once per object, from a random face ``f0`` to a random other face
  ``f1``, over ``turn_frames`` frames, its middle uniform in the middle 40 % of the video (30-70 %). The border
  between the faces sweeps across the object along a random direction; every surface point switches within
  ~1/5 of the turn. A turn changes appearance only: pose, shape, masks, tracks and visibility are the same as
  without it, so :func:`ground_truth_tracks` is exact through the turn. Mid-video turns are mid-clip for clips
  that span most of the video (the original setting, T = 12 at step 6 on 30-fps video; e.g. T = 12 at
  ``clips.step`` 3 over the demo's 36-frame videos); shorter clips (step 1: 12 of 36 frames) overlap a given
  object's 12-frame turn ~80 % of the time in the demo, and nearly every clip overlaps some turn.
- *Speed*: a turning object travels at least ``turn_travel`` pixels during its turn (its speed is drawn in
  ``[max(0.4 max_speed, turn_travel / turn_frames), max_speed]``, the config refuses ``turn_travel > max_speed
  * turn_frames``), so a point that stays where it was has left the object by the time it shows its other
  face — a "static" correspondence links face ``f0`` to something else. The demo asks for 2 model patches in
  pixels of the video: the model sees ``patch``-px patches (16 for test_vit, 14 for DINOv2) of a
  ``train.input_size`` crop of the cache, the cache is the video resized to ``track.width``, so one patch is
  ``patch * (crop side / input_size) * (width / track.width)`` video pixels: 16 px at the demo's full-frame
  crop (16 * 128/128 * 128/128), 10 px at its smallest crop (area 0.4); ``turn_travel = 32``.
- ``faces = 1`` reproduces the original generator byte for byte (frames, masks, tracks, VOC images): one
  hand-made (texture, shape) pair per class, no turns, ``texture_seed``, ``turn_frames`` and ``turn_travel``
  unused. Only the scene JSON (format ``/2``) and the two new VOC records below differ.

Rendering is analytic and vectorised: each pixel is inverse-mapped into each object's coordinates, where
shapes (signed distance functions, anti-aliased analytically) and textures are defined, so masks and
trajectories come from the same transforms as the pixels. A scene is fully determined by its parameters
(:func:`load_scene` restores one from the JSON that :func:`generate_synthetic` writes), so exact tracks for
any query can be recomputed later with :func:`ground_truth_tracks` (the ``ground_truth`` tracker,
:mod:`mosic.tracking.ground_truth`, does so from ``Scenes/``).

Conventions (everywhere in this module): image points are ``(x, y)`` in pixels, origin at the top-left,
pixel centres at integer coordinates, so a frame covers ``[-0.5, W - 0.5) x [-0.5, H - 0.5)``. Object
instance ids are 1..n in depth order (a higher id is drawn on top); 0 is the background. Frame ``t`` counts
from 0. Faces are numbered 0..F-1 within their class.

Output layout of :func:`generate_synthetic` under ``out_root`` (video ids ``synth_00000``, ...; frame files
``%05d``; image ids ``img_00000``, ...)::

    ytvos/JPEGImages/<vid>/00000.jpg ...     RGB frames, JPEG quality 95
    ytvos/Annotations/<vid>/00000.png ...    palette PNGs of instance ids (0 = background)
    ytvos/meta.json                          {"videos": {vid: {"objects": {"1": {"category", "frames"}}}}}
    ytvos/Tracks/<vid>.npz                   queries [N,2], tracks [T,N,2], visibility [T,N], instance [N]
    ytvos/Scenes/<vid>.json                  scene parameters (load_scene): faces shown and turn of each object
    ytvos/provenance.json                    when a provenance record is given
    videos/<vid>.mp4                         when cfg.write_mp4 (H.264, yuv420p, 24 fps)
    voc/JPEGImages/<id>.jpg                  single frames of independent scenes (objects do not turn)
    voc/SegmentationClass/<id>.png           palette PNGs of class ids, 255 = 1-px boundary band (ignore)
    voc/SegmentationObject/<id>.png          palette PNGs of instance ids (as in objects.json), 255 = band
    voc/ImageSets/Segmentation/{train,val}.txt           img_<j>: each object shows a random face
    voc/ImageSets/Segmentation/{train,val}_face<f>.txt   img_<j>_face<f>: the same image, every object face f
    voc/objects.json                         which face each object shows (below)
    voc/classes.json                         class names, index = class id (0 = background)
    voc/provenance.json                      when a provenance record is given

The face variants (``faces > 1`` only) of an image share its scene, geometry, colours and noise, so their
class and instance masks equal the image's; any reader of this VOC layout opens them as split
``train_face0``, ``val_face1``, .... ``voc/objects.json`` is ``{"format": OBJECTS_FORMAT, "faces": F,
"images": {id: {"source": "img_<j>", "face": f or null, "frame": t, "objects": [{"instance", "class_id",
"category", "shape", "face", "pixels"}, ...]}}}`` for every image id (``face`` null: random per object;
``pixels``: where the object is on top, band included; 0 when out of view or hidden). The face shown at a
pixel is the ``face`` of the instance in ``SegmentationObject`` there.
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
from mosic.data.textures import (
    CLASSES,
    EXTENT,
    SHAPES,
    class_names,
    family_colours,
    shape_sdf,
    texture,
    texture_families,
)

logger = logging.getLogger(__name__)

__all__ = [
    "Face",
    "SceneObject",
    "Background",
    "Scene",
    "SyntheticVideo",
    "SyntheticImage",
    "SCENE_FORMAT",
    "OBJECTS_FORMAT",
    "check_turning",
    "draw_scene",
    "render_frame",
    "render_scene",
    "render_video",
    "render_image",
    "image_ids",
    "query_grid",
    "instance_at",
    "face_at",
    "ground_truth_tracks",
    "load_scene",
    "save_scene",
    "voc_palette",
    "generate_synthetic",
]

# /2: objects have a shape, faces (texture + colours each) and a turn (synthetic.faces); /1 scenes are refused.
SCENE_FORMAT = "mosic.synthetic.scene/2"
# The face record of the VOC-layout image set (voc/objects.json).
OBJECTS_FORMAT = "mosic.synthetic.voc_objects/1"

# Random streams: np.random.default_rng([seed, stream, index]); videos and VOC images never share a stream,
# and item i of a stream does not depend on how many items are drawn.
_VIDEO_STREAM = 0
_IMAGE_STREAM = 1

_MAX_ANGULAR_SPEED = 0.06  # rad/frame: up to ~2 rad over a 36-frame demo video
_TURN_MIDDLE = (0.3, 0.7)  # the middle of a turn, as a fraction of the video
_TURN_EDGE = 0.25  # width of the border between two faces during a turn, as a fraction of the sweep
_FPS = 24


@dataclass(frozen=True, kw_only=True)
class Face:
    """One face of an object's class as this instance shows it: a texture and the instance's two colours.

    The texture's weight (:func:`mosic.data.textures.texture` of ``pattern`` with ``params``, at
    ``texture_cycles / period`` periods per radius) mixes ``colours[0]`` and ``colours[1]`` (RGB, 0-255).
    """

    pattern: str  # a hand-made texture of textures.CLASSES (faces = 1) or a generated kind of textures.PATTERNS
    params: tuple[float, ...]  # structural parameters of a generated kind; () for hand-made textures
    period: float  # pattern period as a multiple of the object's base period
    colours: tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True, kw_only=True)
class SceneObject:
    """One moving object; its pose and appearance at frame ``t`` are closed-form functions of ``t``.

    Pose: centre ``c(t) = centre + velocity * t`` (image pixels), angle ``a(t) = angle + angular_velocity * t``
    (radians, clockwise on screen since y points down), size ``r(t) = radius * exp(log_scale +
    log_scale_rate * t)`` pixels per object unit. Object coordinates ``q`` map to the image point
    ``c(t) + r(t) * R(a(t)) q``.

    Appearance: the face shown (see :class:`Face`) mixes two colours; at frame ``t`` both are rotated in hue
    by ``hue_rate * t`` radians (about the grey axis) and multiplied by ``exp(light_rate * t)`` and by a
    lighting gradient ``1 + shading * (d . (p - c(t))) / r(t)`` along the scene's light direction d.

    Turn (``shown = (f0, f1)``): the object shows face ``f0`` until ``turn_start`` and face ``f1`` from
    ``turn_start + turn_frames`` on; in between, the border between the faces sweeps across the object along
    the direction ``turn_angle`` (object coordinates): the point ``q`` shows ``f1`` with weight
    ``clip((p * (1 + e) - s) / e, 0, 1)``, ``p = (t - turn_start) / turn_frames``, ``s = (1 + (q . u) /
    EXTENT) / 2``, ``e = 0.25``. Geometry (pose, shape, masks, tracks) does not change: a turn changes only
    what the surface looks like. ``shown = (f0,)``: no turn (the ``turn_*`` fields are unused).
    """

    instance: int  # 1..n; also the depth order (higher is on top)
    class_id: int  # 1..num_classes
    category: str
    shape: str  # a shape of textures.SHAPES: the class's own (faces = 1) or random per instance (faces > 1)
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
    faces: tuple[Face, ...]  # the instance's version of every face of its class; index = face
    shown: tuple[int, ...]  # faces shown: (f0,) all along, or (f0, f1) turning from f0 to f1
    turn_start: float  # frame the turn begins
    turn_frames: float  # frames the turn takes
    turn_angle: float  # direction (object coordinates, radians) the border between the faces sweeps along
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


def check_turning(cfg: SyntheticConfig) -> None:
    """Check that turning objects (``faces > 1``) can honour the config (parse_config checks the same).

    Raises:
        ValueError: when a turn does not fit in a video, or travelling ``turn_travel`` pixels during a turn
            needs a speed above ``max_speed``.
    """
    if cfg.turn_frames > cfg.num_frames - 1:
        raise ValueError(f"synthetic.turn_frames ({cfg.turn_frames}) must be < num_frames ({cfg.num_frames})")
    if cfg.turn_travel > cfg.max_speed * cfg.turn_frames:
        raise ValueError(
            f"synthetic.turn_travel ({cfg.turn_travel} px) needs a speed of {cfg.turn_travel / cfg.turn_frames:.3g} "
            f"px/frame during a {cfg.turn_frames}-frame turn, above max_speed ({cfg.max_speed})"
        )


def _draw_turn(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[float, float, float]:
    """``(turn_start, turn_frames, turn_angle)``: the turn's middle is uniform in the middle 40 % of the video."""
    last = cfg.num_frames - 1
    middle = rng.uniform(_TURN_MIDDLE[0], _TURN_MIDDLE[1]) * last
    start = min(max(middle - 0.5 * cfg.turn_frames, 0.0), last - cfg.turn_frames)
    return float(start), float(cfg.turn_frames), float(rng.uniform(0.0, 2.0 * math.pi))


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

    turning = cfg.faces > 1
    if turning:
        check_turning(cfg)
        families = texture_families(cfg.texture_seed, cfg.num_classes, cfg.faces)
    names = class_names(cfg.num_classes, cfg.faces)
    objects = []
    # The draws of faces = 1 come in the order of the original generator (same scenes, same bytes); turning
    # objects draw what is theirs after them.
    for inst in range(1, int(rng.integers(cfg.min_objects, cfg.max_objects + 1)) + 1):
        class_id = int(rng.integers(1, cfg.num_classes + 1))
        radius = rng.uniform(0.14, 0.22) * side
        cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        # Head roughly towards the frame centre so most objects stay in view for a while; those starting near
        # the centre cross it and some leave the frame.
        heading = math.atan2(h / 2 - cy, w / 2 - cx) + rng.uniform(-0.6, 0.6) * math.pi
        speed_fraction = rng.uniform(0.4, 1.0)
        speed = speed_fraction * cfg.max_speed
        if turning:  # the same draw mapped onto [slowest, max_speed]: fast enough to travel turn_travel in a turn
            slowest = max(0.4 * cfg.max_speed, cfg.turn_travel / cfg.turn_frames)
            speed = slowest + (speed_fraction - 0.4) / 0.6 * (cfg.max_speed - slowest)
        # Scale goes geometrically from ratio^-1/2 to ratio^+1/2 (or back) with ratio up to scale_change.
        log_ratio = math.log(cfg.scale_change) * rng.uniform(0.6, 1.0) * rng.choice((-1.0, 1.0))
        period = rng.uniform(0.05, 0.07) * side  # pixels at scale 1: >= ~4 px at the smallest scale
        angle = float(rng.uniform(0.0, 2.0 * math.pi))
        angular_velocity = float(rng.uniform(-1.0, 1.0) * _MAX_ANGULAR_SPEED)
        texture_angle = float(rng.uniform(0.0, math.pi))
        texture_offset = (float(rng.uniform()), float(rng.uniform()))
        if not turning:
            _, pattern, shape = CLASSES[class_id - 1]
            faces = (Face(pattern=pattern, params=(), period=1.0, colours=_contrasting_pair(rng)),)
        hue_rate = float(drift * math.pi * rng.uniform(0.5, 1.0) * rng.choice((-1.0, 1.0)) / span)
        light_rate = float(drift * rng.uniform(0.3, 0.8) * rng.choice((-1.0, 1.0)) / span)
        shading = float(drift * rng.uniform(0.1, 0.4))
        shown, turn = (0,), (0.0, 0.0, 0.0)
        if turning:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            faces = tuple(
                Face(pattern=f.pattern, params=f.params, period=f.period, colours=family_colours(f, rng))
                for f in families[class_id - 1]
            )
            first = int(rng.integers(cfg.faces))
            shown = (first, (first + int(rng.integers(1, cfg.faces))) % cfg.faces)
            turn = _draw_turn(cfg, rng)
        objects.append(
            SceneObject(
                instance=inst,
                class_id=class_id,
                category=names[class_id],
                shape=shape,
                radius=float(radius),
                centre=(float(cx), float(cy)),
                velocity=(float(speed * math.cos(heading)), float(speed * math.sin(heading))),
                angle=angle,
                angular_velocity=angular_velocity,
                log_scale=float(-0.5 * log_ratio),
                log_scale_rate=float(log_ratio / span),
                texture_cycles=float(radius / period),
                texture_angle=texture_angle,
                texture_offset=texture_offset,
                faces=faces,
                shown=shown,
                turn_start=turn[0],
                turn_frames=turn[1],
                turn_angle=turn[2],
                hue_rate=hue_rate,
                light_rate=light_rate,
                shading=shading,
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
        top[shape_sdf(obj.shape, qx, qy) <= 0.0] = obj.instance
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


def _turned(obj: SceneObject, t: float) -> bool:
    """Whether the turn is over at frame t (False for an object that does not turn)."""
    return len(obj.shown) > 1 and t >= obj.turn_start + obj.turn_frames


def _turn_weight(obj: SceneObject, qx: Any, qy: Any, t: float) -> np.ndarray | None:
    """Weight in [0, 1] of the face shown after the turn at object coordinates, or None outside the turn."""
    if len(obj.shown) < 2 or not obj.turn_start < t < obj.turn_start + obj.turn_frames:
        return None
    progress = (t - obj.turn_start) / obj.turn_frames
    sweep = 0.5 + 0.5 * (np.asarray(qx) * math.cos(obj.turn_angle) + np.asarray(qy) * math.sin(obj.turn_angle)) / EXTENT
    return np.clip((progress * (1.0 + _TURN_EDGE) - sweep) / _TURN_EDGE, 0.0, 1.0)


def face_at(scene: Scene, points: np.ndarray, frame: int) -> np.ndarray:
    """The face shown by the top surface at exact image points (-1 = background), as :func:`instance_at`.

    Mid-turn, a point shows the face whose weight is at least 0.5 there (the new face at exactly 0.5).

    Args:
        scene: the scene.
        points: float [..., 2] (x, y) image points.
        frame: the frame.

    Returns:
        int16 [...] face indices (into the object's class faces), -1 where the background is on top.
    """
    points = np.asarray(points, dtype=np.float64)
    out = np.full(points.shape[:-1], -1, dtype=np.int16)
    for obj in scene.objects:
        qx, qy = _to_object(_pose(obj, float(frame)), points[..., 0], points[..., 1])
        inside = shape_sdf(obj.shape, qx, qy) <= 0.0
        weight = _turn_weight(obj, qx, qy, float(frame))
        if weight is None:
            out[inside] = obj.shown[-1 if _turned(obj, frame) else 0]
        else:
            out[inside] = np.where(weight >= 0.5, obj.shown[1], obj.shown[0])[inside]
    return out


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
        ValueError: if the file is not a scene of this format (an older format: regenerate the dataset).
    """
    data = json.loads(Path(path).read_text())
    found = data.pop("format", None)
    if found != SCENE_FORMAT:
        raise ValueError(f"{path} is not a {SCENE_FORMAT} file (format {found!r}); regenerate the synthetic dataset")
    bg = Background(**{k: _tuples(v) for k, v in data.pop("background").items()})
    objects = []
    for o in data.pop("objects"):
        faces = tuple(Face(**{k: _tuples(v) for k, v in f.items()}) for f in o.pop("faces"))
        objects.append(SceneObject(faces=faces, **{k: _tuples(v) for k, v in o.items()}))
    objects = tuple(objects)
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
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    count = cfg.images_train + cfg.images_val
    variants = [None] + (list(range(cfg.faces)) if cfg.faces > 1 else [])
    splits: dict[str, list[str]] = {}
    records: dict[str, Any] = {}
    for j in range(count):
        split = "train" if j < cfg.images_train else "val"
        source = image_ids(j, cfg.faces)[0]
        for face, image in zip(variants, _render_images(cfg, j, variants), strict=True):
            _save_jpeg(root / "JPEGImages" / f"{image.image_id}.jpg", image.image)
            _save_palette_png(root / "SegmentationClass" / f"{image.image_id}.png", image.labels)
            _save_palette_png(root / "SegmentationObject" / f"{image.image_id}.png", image.instances)
            splits.setdefault(split if face is None else f"{split}_face{face}", []).append(image.image_id)
            records[image.image_id] = {"source": source, "face": face, "frame": image.frame, "objects": image.objects}
    split_dir = root / "ImageSets" / "Segmentation"
    for name, ids in splits.items():
        (split_dir / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    _write_json(root / "classes.json", class_names(cfg.num_classes, cfg.faces))
    _write_json(root / "objects.json", {"format": OBJECTS_FORMAT, "faces": cfg.faces, "images": records})
    logger.info(
        "synthetic images: %d train, %d val%s",
        cfg.images_train,
        cfg.images_val,
        f", each also with every object showing face f = 0..{cfg.faces - 1}" if cfg.faces > 1 else "",
    )


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
