"""Shapes and textures of the synthetic object classes, as analytic functions of object coordinates.

Each class of the synthetic dataset is one (texture, shape) pair, so that only texture and outline, never
colour, tell the classes apart. Everything here is a pure numpy function of *object coordinates*: the
renderer (:mod:`mosic.data.synthetic`) inverse-maps each pixel into an object's frame, so textures move,
rotate and scale exactly with the object and ground-truth tracks follow from the same transforms.

Object coordinates ``q = (qx, qy)`` are in units of the object's radius (the shapes fit in ``|q| <= 1.25``).
Shapes are given as signed distance functions (negative inside, in radius units; convex polygons use the
max-of-half-planes bound, exact inside and slightly short outside corners, which only affects the
anti-aliasing ramp). Textures return a mixing weight in [0, 1] between an instance's two colours.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["CLASSES", "EXTENT", "class_names", "shape_sdf", "texture"]

# (class name, texture, shape); class id = position + 1 (0 is the background). The first five are the
# classes of the feasibility study; the sixth is used when num_classes = 6.
CLASSES: tuple[tuple[str, str, str], ...] = (
    ("stripe_disk", "stripes", "disk"),
    ("checker_square", "checker", "square"),
    ("dot_triangle", "dots", "triangle"),
    ("ring_ellipse", "rings", "ellipse"),
    ("grid_plus", "grid", "plus"),
    ("zigzag_star", "zigzag", "star"),
)

# Radius of a circle (in object units) that contains every shape; bounds the pixels an object can touch.
EXTENT = 1.25

# Soft-edge sharpness of the periodic textures: large enough to look like hard patterns, small enough that
# patterns scaled down to ~4 px periods do not alias badly.
_SHARP = 3.0


def class_names(num_classes: int) -> list[str]:
    """Names of the segmentation classes, index = class id (0 is ``background``)."""
    return ["background"] + [name for name, _, _ in CLASSES[:num_classes]]


def _box(qx: np.ndarray, qy: np.ndarray, hx: float, hy: float) -> np.ndarray:
    dx = np.abs(qx) - hx
    dy = np.abs(qy) - hy
    outside = np.hypot(np.maximum(dx, 0.0), np.maximum(dy, 0.0))
    return outside + np.minimum(np.maximum(dx, dy), 0.0)


def _regular_polygon(qx: np.ndarray, qy: np.ndarray, sides: int, circumradius: float, rot: float) -> np.ndarray:
    inradius = circumradius * np.cos(np.pi / sides)
    d = None
    for k in range(sides):
        a = rot + 2.0 * np.pi * k / sides
        h = qx * np.cos(a) + qy * np.sin(a) - inradius
        d = h if d is None else np.maximum(d, h)
    return d


def _ellipse(qx: np.ndarray, qy: np.ndarray, a: float, b: float) -> np.ndarray:
    # First-order distance estimate f / |grad f| of the implicit ellipse (exact on the boundary).
    k0 = np.hypot(qx / a, qy / b)
    k1 = np.hypot(qx / (a * a), qy / (b * b))
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-9)


_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "disk": lambda qx, qy: np.hypot(qx, qy) - 1.0,
    "square": lambda qx, qy: _box(qx, qy, 0.8, 0.8),
    # Normals at 90 deg + k*120 deg give a triangle pointing down; the circumradius is larger than 1 so its
    # area is not far below the other shapes'.
    "triangle": lambda qx, qy: _regular_polygon(qx, qy, 3, 1.2, np.pi / 2),
    "ellipse": lambda qx, qy: _ellipse(qx, qy, 1.15, 0.6),
    "plus": lambda qx, qy: np.minimum(_box(qx, qy, 1.05, 0.36), _box(qx, qy, 0.36, 1.05)),
    # A hexagram: union of two opposed triangles.
    "star": lambda qx, qy: np.minimum(
        _regular_polygon(qx, qy, 3, 1.15, np.pi / 2), _regular_polygon(qx, qy, 3, 1.15, -np.pi / 2)
    ),
}


def shape_sdf(shape: str, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Signed distance to a class shape's outline, in object (radius) units; negative inside.

    Args:
        shape: one of the shape names in :data:`CLASSES`.
        qx, qy: object coordinates (any equal shapes).

    Returns:
        The signed distance, same shape as ``qx``.
    """
    return _SHAPES[shape](qx, qy)


def _soft(v: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(_SHARP * v)


def _frac(u: np.ndarray) -> np.ndarray:
    """Signed offset to the nearest integer, in [-0.5, 0.5]."""
    return u - np.floor(u + 0.5)


def _stripes(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    return _soft(np.sin(2.0 * np.pi * ux))


def _checker(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    return _soft(2.0 * np.sin(np.pi * ux) * np.sin(np.pi * uy))


def _dots(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    return _soft(6.0 * (0.3 - np.hypot(_frac(ux), _frac(uy))))


def _rings(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    # Concentric about the object centre (rx, ry are centred texture coordinates), so they rotate in place.
    return _soft(np.sin(2.0 * np.pi * np.hypot(rx, ry)))


def _grid(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    d = np.minimum(np.abs(_frac(ux)), np.abs(_frac(uy)))
    return _soft(8.0 * (0.13 - d))


def _zigzag(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    tri = np.abs(_frac(0.5 * ux))  # triangle wave in [0, 0.5] with period 2
    return _soft(np.sin(2.0 * np.pi * (uy + 1.6 * tri)))


_TEXTURES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "stripes": _stripes,
    "checker": _checker,
    "dots": _dots,
    "rings": _rings,
    "grid": _grid,
    "zigzag": _zigzag,
}


def texture(
    name: str,
    qx: np.ndarray,
    qy: np.ndarray,
    *,
    cycles_per_radius: float,
    angle: float,
    offset: tuple[float, float],
) -> np.ndarray:
    """A class texture as the weight of an instance's second colour, in [0, 1].

    Args:
        name: one of the texture names in :data:`CLASSES`.
        qx, qy: object coordinates (radius units; any equal shapes).
        cycles_per_radius: texture frequency (pattern periods per object radius).
        angle: orientation of the pattern in object coordinates, radians.
        offset: phase of the pattern lattice, in periods.

    Returns:
        The weight, same shape as ``qx``.
    """
    c, s = np.cos(angle) * cycles_per_radius, np.sin(angle) * cycles_per_radius
    rx = c * qx + s * qy
    ry = -s * qx + c * qy
    return _TEXTURES[name](rx + offset[0], ry + offset[1], rx, ry)
