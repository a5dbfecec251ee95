"""What a synthetic video is: the :class:`Scene` record and its JSON file.

A scene holds every parameter of one video; pose and appearance are closed-form functions of the frame index
(see :class:`SceneObject`), so rendering (:mod:`.render`) and ground truth (:mod:`.geometry`) are pure functions
of it. :func:`save_scene` writes it next to the frames (``ytvos/Scenes/<vid>.json``) and :func:`load_scene`
reads it back exactly, which is how the ``ground_truth`` tracker and the tracking metrics recompute tracks
later. Conventions are in :mod:`mosic.data.synthetic`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# /2: objects have a shape, faces (texture + colours each) and a turn (synthetic.faces); /1 scenes are refused.
SCENE_FORMAT = "mosic.synthetic.scene/2"


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
