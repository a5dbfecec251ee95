"""Where things are in a scene: object poses, what is on top at a point, and exact tracks.

Everything here inverse-maps image points into object coordinates (:func:`_to_object`), the same transforms
the renderer uses, so :func:`instance_at`, :func:`face_at` and :func:`ground_truth_tracks` agree with the
rendered masks. The turn's sweep (:func:`_turn_weight`) lives here too: it decides which face a point shows,
for the renderer's colours and for :func:`face_at`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mosic.data.synthetic.scene import Scene, SceneObject
from mosic.data.textures import EXTENT, shape_sdf
from mosic.geometry import inside_image

_TURN_EDGE = 0.25  # width of the border between two faces during a turn, as a fraction of the sweep


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
    inside = inside_image(tracks, scene.height, scene.width)
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
