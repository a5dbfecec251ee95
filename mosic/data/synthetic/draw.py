"""Drawing a scene: the parameters of one video or image, from its own random stream.

:func:`draw_scene` samples objects (class, shape, faces, size, motion, drift and, for ``faces > 1``, the turn)
and the background and photometry, as the :mod:`mosic.data.synthetic` overview describes. With ``faces = 1``
the draws come in the order of the original generator, so its scenes (and bytes) are reproduced.
"""

from __future__ import annotations

import math

import numpy as np

from mosic.config import SyntheticConfig
from mosic.data.synthetic.scene import Background, Face, Scene, SceneObject
from mosic.data.textures import CLASSES, SHAPES, class_names, family_colours, texture_families

_MAX_ANGULAR_SPEED = 0.06  # rad/frame: up to ~2 rad over a 36-frame demo video
_TURN_MIDDLE = (0.3, 0.7)  # the middle of a turn, as a fraction of the video


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
            shape = SHAPES[int(rng.integers(len(SHAPES)))]  # drawn always, so `shape` changes nothing else
            if cfg.shape != "random":
                shape = cfg.shape
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
