"""Shapes, textures and texture families of the synthetic object classes, as analytic functions of object coordinates.

With one face per class (``synthetic.faces = 1``) each class of the synthetic dataset is one hand-made
(texture, shape) pair of :data:`CLASSES`, so that only texture and outline, never colour, tell the classes
apart. With two or more faces per class, a class owns ``faces`` *texture families* drawn from
``synthetic.texture_seed`` by :func:`texture_families` (shapes are then random per instance, see
:mod:`mosic.data.synthetic`). A texture family (one "face") is a pattern structure — one of the generated
pattern kinds of :data:`PATTERNS` with its structural parameters and period — and a colour tone — the
saturation and value of its two colours and their hue difference (:data:`TONES`). An instance recolours its
face: :func:`family_colours` draws the base hue uniformly (so absolute hue never tells a class or a face
apart, as with the hand-made classes) and keeps the tone, so every instance of a face shows the same pattern
and the same colour statistics (saturation, brightness, contrast, hue spread) up to a small jitter. The
faces of one class use different pattern kinds, different period bands and different tones, so they share
no colour or pattern statistics. Faces of different classes may share a tone; up to 12 faces in all (the
demo's 6 classes x 2), no two faces share a pattern kind (:func:`texture_families`), so a class's second face
never looks like another class's first. Another ``texture_seed`` draws other families (unseen textures).

Everything here is a pure numpy function of *object coordinates*: the renderer (:mod:`mosic.data.synthetic`)
inverse-maps each pixel into an object's frame, so textures move, rotate and scale exactly with the object
and ground-truth tracks follow from the same transforms.

Object coordinates ``q = (qx, qy)`` are in units of the object's radius (the shapes fit in ``|q| <= 1.25``).
Shapes are given as signed distance functions (negative inside, in radius units; convex polygons use the
max-of-half-planes bound, exact inside and slightly short outside corners, which only affects the
anti-aliasing ramp). Textures return a mixing weight in [0, 1] between an instance's two colours.
"""

from __future__ import annotations

import colorsys
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CLASSES",
    "EXTENT",
    "SHAPES",
    "PATTERNS",
    "TONES",
    "TextureFamily",
    "class_names",
    "shape_sdf",
    "texture",
    "texture_families",
    "family_colours",
]

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


def class_names(num_classes: int, faces: int = 1) -> list[str]:
    """Names of the segmentation classes, index = class id (0 is ``background``).

    With one face per class a class is named after its texture and shape (``stripe_disk``); with more, its
    textures are drawn from a seed and its shapes are random, so it is ``class_<id>`` (which also sorts in
    class-id order).
    """
    if faces > 1:
        return ["background"] + [f"class_{c}" for c in range(1, num_classes + 1)]
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


# Every shape name; turning objects (faces > 1) draw theirs from here, whatever their class.
SHAPES: tuple[str, ...] = tuple(_SHAPES)


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


# --- generated pattern kinds (texture families of turning objects) ---------------------------------------
# Each takes lattice coordinates (ux, uy), centred coordinates (rx, ry), both in pattern periods, and the
# family's structural parameters p; it returns the weight of the second colour in [0, 1].

Params = tuple[float, ...]


def _edge(v: np.ndarray) -> np.ndarray:
    """Soft step of a signed distance ``v`` in pattern periods (positive = second colour); as sharp as `_dots`."""
    return _soft(6.0 * v)


def _hash(ix: np.ndarray, iy: np.ndarray, salt: float) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) per integer lattice cell (the classic sine hash)."""
    h = np.sin(ix * 12.9898 + iy * 78.233 + salt) * 43758.5453
    return h - np.floor(h)


def _bands(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    duty, amplitude, frequency = p  # stripes of width `duty` periods, warped by a sine across them
    return _edge(0.5 * duty - np.abs(_frac(ux + amplitude * np.sin(2.0 * np.pi * frequency * uy))))


def _plaid(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    duty_a, duty_b, cross = p  # two stripe sets crossing at `cross` radians, combined by exclusive or
    a = _edge(0.5 * duty_a - np.abs(_frac(ux)))
    b = _edge(0.5 * duty_b - np.abs(_frac(ux * np.cos(cross) + uy * np.sin(cross))))
    return a + b - 2.0 * a * b


def _spots(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    radius, shift, ring = p  # disks (ring = 0) or rings of width `ring`; every other row shifted by `shift`
    row = np.floor(uy + 0.5)
    d = np.hypot(_frac(ux + shift * row), _frac(uy))
    return _edge(radius - d) if ring <= 0.0 else _edge(0.5 * ring - np.abs(d - radius))


def _cells(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    border, fill, salt = p  # Worley cells: borders of width ~`border`, a fraction `fill` of the tiles filled
    ix0, iy0 = np.floor(ux), np.floor(uy)
    f1 = np.full(ux.shape, np.inf)
    f2 = np.full(ux.shape, np.inf)
    tile = np.zeros(ux.shape)
    for dj in (-1.0, 0.0, 1.0):
        for di in (-1.0, 0.0, 1.0):
            cx, cy = ix0 + di, iy0 + dj
            px, py = cx + 0.15 + 0.7 * _hash(cx, cy, salt), cy + 0.15 + 0.7 * _hash(cx, cy, salt + 1.7)  # cell point
            d = np.hypot(ux - px, uy - py)
            nearest = d < f1
            f2 = np.where(nearest, f1, np.minimum(f2, d))
            tile = np.where(nearest, (_hash(cx, cy, salt + 3.1) < fill).astype(np.float64), tile)
            f1 = np.minimum(f1, d)
    return np.maximum(_edge(0.5 * border - (f2 - f1)), tile)


def _blobs(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    level, *waves = p  # band-limited noise (sum of plane waves, (angle, cycles per period, phase) each) > level
    total = np.zeros(ux.shape)
    for angle, cycles, phase in zip(waves[0::3], waves[1::3], waves[2::3], strict=True):
        total += np.sin(2.0 * np.pi * cycles * (ux * np.cos(angle) + uy * np.sin(angle)) + phase)
    return _soft(2.0 * (total / np.sqrt(len(waves) / 6.0) - level))


def _rays(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    spokes, twist = p  # sectors about the object centre, bent into a spiral by `twist` turns per period
    return _soft(2.0 * np.sin(spokes * np.arctan2(ry, rx) + 2.0 * np.pi * twist * np.hypot(rx, ry)))


def _bricks(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    mortar, rows = p  # a running bond: `rows` courses per period, joints shifted by half a brick every course
    v = uy * rows
    course = np.floor(v + 0.5)
    d = np.minimum(np.abs(_frac(v)) / rows, np.abs(_frac(ux + 0.5 * course)))
    return _edge(0.5 * mortar - d)


def _waves(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    amplitude, frequency, duty = p  # zigzag lines: stripes displaced by a triangle wave
    tri = 2.0 * np.abs(_frac(0.5 * frequency * ux))  # in [0, 1], period 2 / frequency
    return _edge(0.5 * duty - np.abs(_frac(uy + amplitude * tri)))


def _halos(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    duty, cx, cy = p  # concentric rings about a point off the object centre
    return _edge(0.5 * duty - np.abs(_frac(np.hypot(rx - cx, ry - cy))))


_SQRT3 = float(np.sqrt(3.0))


def _hexes(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    (radius,) = p  # a honeycomb: hexagonal tiles of inradius `radius` periods, the gaps between them the other colour
    # Offset to the nearest centre of a hexagonal lattice (spacing 1 along x): the nearer of two offset
    # rectangular lattices of 1 x sqrt(3).
    ax, ay = _frac(ux), _SQRT3 * _frac(uy / _SQRT3)
    bx, by = _frac(ux - 0.5), _SQRT3 * _frac((uy - 0.5 * _SQRT3) / _SQRT3)
    nearer_a = np.hypot(ax, ay) <= np.hypot(bx, by)
    gx, gy = np.abs(np.where(nearer_a, ax, bx)), np.abs(np.where(nearer_a, ay, by))
    d = np.maximum(gx, 0.5 * gx + 0.5 * _SQRT3 * gy)  # hexagonal distance: 0.5 on the cell border
    return _edge(radius - d)


def _triangles(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    (inset,) = p  # a triangular tiling: upward triangles (shrunk by `inset` periods) on the first colour
    u = ux - uy / _SQRT3
    v = 2.0 * uy / _SQRT3
    fu, fv = u - np.floor(u), v - np.floor(v)
    w = 1.0 - fu - fv  # > 0 in the upward triangle of the rhombic cell
    d = 0.5 * _SQRT3 * np.minimum(np.minimum(fu, fv), np.abs(w))  # distance to the nearest triangle edge
    return _edge(np.where(w > 0.0, d - inset, -d - inset))


def _scales(ux: np.ndarray, uy: np.ndarray, rx: np.ndarray, ry: np.ndarray, p: Params) -> np.ndarray:
    radius, rim = p  # fish scales: rows half a period apart, each a disk over the row above it, drawn as a rim
    v = 2.0 * uy
    row = np.floor(v)
    out = np.zeros(ux.shape)
    drawn = np.zeros(ux.shape, dtype=bool)
    for r in (row - 1.0, row, row + 1.0):  # a lower row lies over the rows above it
        shift = 0.5 * np.mod(r, 2.0)
        d = np.hypot(_frac(ux - shift), 0.5 * (v - r))
        inside = (d < radius) & ~drawn
        out = np.where(inside, _edge(0.5 * rim - np.abs(d - radius + 0.5 * rim)), out)
        drawn |= inside
    return out


_PATTERN_FNS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Params], np.ndarray]] = {
    "bands": _bands,
    "plaid": _plaid,
    "spots": _spots,
    "cells": _cells,
    "blobs": _blobs,
    "rays": _rays,
    "bricks": _bricks,
    "waves": _waves,
    "halos": _halos,
    "hexes": _hexes,
    "triangles": _triangles,
    "scales": _scales,
}

# The generated pattern kinds; the faces of one class never share one.
PATTERNS: tuple[str, ...] = tuple(_PATTERN_FNS)


def _draw_params(kind: str, rng: np.random.Generator) -> Params:
    """Structural parameters of a pattern kind (the part of a face shared by all its instances)."""
    u = rng.uniform
    if kind == "bands":
        return (u(0.3, 0.6), u(0.0, 0.35), u(0.2, 0.6))
    if kind == "plaid":
        return (u(0.25, 0.5), u(0.25, 0.5), u(np.pi / 3, np.pi / 2))
    if kind == "spots":
        ring = u(0.08, 0.15) if rng.uniform() < 0.5 else 0.0
        return (u(0.22, 0.36), float(rng.choice((0.0, 0.5))), ring)
    if kind == "cells":
        return (u(0.1, 0.2), u(0.2, 0.5), u(0.0, 100.0))
    if kind == "blobs":
        waves = []
        for _ in range(4):
            waves += [u(0.0, np.pi), u(0.45, 0.8), u(0.0, 2.0 * np.pi)]
        return (u(-0.3, 0.3), *waves)
    if kind == "rays":
        return (float(rng.integers(3, 9)), u(-0.3, 0.3))
    if kind == "bricks":
        return (u(0.12, 0.2), u(1.5, 2.5))
    if kind == "waves":
        return (u(0.4, 1.0), u(0.5, 1.0), u(0.3, 0.6))
    if kind == "halos":
        return (u(0.35, 0.6), u(-1.5, 1.5), u(-1.5, 1.5))
    if kind == "hexes":
        return (u(0.36, 0.44),)
    if kind == "triangles":
        return (u(0.0, 0.08),)
    if kind == "scales":
        return (u(0.5, 0.6), u(0.14, 0.22))
    raise ValueError(f"unknown pattern kind {kind!r}")


def texture(
    name: str,
    qx: np.ndarray,
    qy: np.ndarray,
    *,
    cycles_per_radius: float,
    angle: float,
    offset: tuple[float, float],
    params: Params = (),
) -> np.ndarray:
    """A texture as the weight of an instance's second colour, in [0, 1].

    Args:
        name: a hand-made texture of :data:`CLASSES` or a generated pattern kind of :data:`PATTERNS`.
        qx, qy: object coordinates (radius units; any equal shapes).
        cycles_per_radius: texture frequency (pattern periods per object radius).
        angle: orientation of the pattern in object coordinates, radians.
        offset: phase of the pattern lattice, in periods.
        params: structural parameters of a generated pattern kind (empty for the hand-made textures).

    Returns:
        The weight, same shape as ``qx``.
    """
    c, s = np.cos(angle) * cycles_per_radius, np.sin(angle) * cycles_per_radius
    rx = c * qx + s * qy
    ry = -s * qx + c * qy
    if name in _PATTERN_FNS:
        return _PATTERN_FNS[name](rx + offset[0], ry + offset[1], rx, ry, params)
    return _TEXTURES[name](rx + offset[0], ry + offset[1], rx, ry)


# --- texture families: pattern + colour tone ------------------------------------------------------------

# Colour tones: ranges of (saturation, value) of the first and second colour and of the hue difference
# between them (in turns of the hue circle). They are far apart in saturation, brightness, contrast or hue
# spread, so two faces with different tones share no colour statistics once hue is random per instance.
TONES: dict[str, tuple[tuple[float, float], ...]] = {
    # name: (s0, v0, s1, v1, hue difference)
    "pastel": ((0.12, 0.3), (0.88, 0.96), (0.15, 0.3), (0.6, 0.7), (0.05, 0.2)),
    "deep": ((0.8, 0.95), (0.42, 0.52), (0.7, 0.9), (0.18, 0.26), (0.28, 0.45)),
    "ink": ((0.0, 0.08), (0.08, 0.16), (0.7, 0.9), (0.85, 1.0), (0.0, 1.0)),
    "complement": ((0.6, 0.8), (0.65, 0.8), (0.6, 0.8), (0.65, 0.8), (0.45, 0.55)),
    "grey": ((0.0, 0.05), (0.3, 0.42), (0.0, 0.05), (0.68, 0.8), (0.0, 1.0)),
    "neon": ((0.9, 1.0), (0.92, 1.0), (0.85, 1.0), (0.5, 0.6), (0.1, 0.22)),
}
_MAX_FACES = 4  # period bands; also at most len(TONES) and len(PATTERNS)
_JITTER = 0.03  # per-instance jitter of saturation and value


@dataclass(frozen=True, kw_only=True)
class TextureFamily:
    """One face of a class: a pattern structure and a colour tone shared by every instance that shows it.

    Attributes:
        pattern: a generated pattern kind of :data:`PATTERNS`.
        params: the kind's structural parameters.
        period: pattern period as a multiple of an instance's base period.
        tone: the :data:`TONES` entry the colours come from.
        saturation: (first, second) colour saturation in [0, 1].
        value: (first, second) colour value (brightness) in [0, 1].
        hue_difference: hue of the second colour minus the first, in turns.
    """

    pattern: str
    params: Params
    period: float
    tone: str
    saturation: tuple[float, float]
    value: tuple[float, float]
    hue_difference: float


def _spread(orders: list[np.ndarray], faces: int, size: int) -> list[list[int]]:
    """Choices ``[class][face]`` of one of `size` items (pattern kinds or tones), spread over the classes' faces.

    Face by face, class by class, each face takes the item its class has not used yet that the faces before it
    used least, ties broken by its class's order (a permutation of the items). So as long as classes x faces <=
    `size`, no two faces share an item; beyond, the items are shared about evenly, never within a class.
    The first faces' choices do not depend on `faces`.
    """
    usage = np.zeros(size, dtype=np.int64)
    chosen: list[list[int]] = [[] for _ in orders]
    for _ in range(faces):
        for c, order in enumerate(orders):
            free = [int(i) for i in order if int(i) not in chosen[c]]
            pick = min(free, key=lambda i: usage[i])  # min keeps the first (in the class's order) of equals
            chosen[c].append(pick)
            usage[pick] += 1
    return chosen


@functools.lru_cache(maxsize=16)
def texture_families(texture_seed: int, num_classes: int, faces: int) -> tuple[tuple[TextureFamily, ...], ...]:
    """The texture families of every class: ``families[class_id - 1][face]``.

    Class ``c`` draws from ``np.random.default_rng([texture_seed, c])`` an order of the pattern kinds, of the
    tones and of four period bands (1-1.25, 1.25-1.5, 1.5-1.75, 1.75-2 base periods). Face ``f`` of the class
    takes the f-th band, and the pattern kind and the tone that the faces before it (every class's earlier
    faces, then the earlier classes' face ``f``) used least, in the class's order among equals, never one its
    class already has (:func:`_spread`). So the faces of a class differ in kind, period and tone, and with up
    to 12 faces in all (the demo's 6 classes x 2) no pattern kind serves two faces: a class's second face never
    looks like another class's first. Tones (six) are shared by two faces each, never within a class. Face
    ``f`` draws its parameters from ``[texture_seed, c, f]``; the first faces do not depend on ``faces``.

    Args:
        texture_seed: the seed of the families (another seed, other textures).
        num_classes: number of classes.
        faces: faces per class, 1 to 4.

    Returns:
        ``num_classes`` tuples of ``faces`` families.
    """
    if not 1 <= faces <= _MAX_FACES:
        raise ValueError(f"faces must be 1 to {_MAX_FACES}, got {faces}")
    tone_names = tuple(TONES)
    orders = []
    for c in range(1, num_classes + 1):
        rng = np.random.default_rng([texture_seed, c])
        orders.append((rng.permutation(len(PATTERNS)), rng.permutation(len(TONES)), rng.permutation(_MAX_FACES)))
    kinds = _spread([o[0] for o in orders], faces, len(PATTERNS))
    tones = _spread([o[1] for o in orders], faces, len(TONES))
    out = []
    for c in range(1, num_classes + 1):
        bands = orders[c - 1][2]
        families = []
        for f in range(faces):
            frng = np.random.default_rng([texture_seed, c, f])
            kind, tone = PATTERNS[kinds[c - 1][f]], tone_names[tones[c - 1][f]]
            s0, v0, s1, v1, dh = (float(frng.uniform(*r)) for r in TONES[tone])
            families.append(
                TextureFamily(
                    pattern=kind,
                    params=tuple(float(v) for v in _draw_params(kind, frng)),
                    period=float(1.0 + 0.25 * (bands[f] + frng.uniform())),
                    tone=tone,
                    saturation=(s0, s1),
                    value=(v0, v1),
                    hue_difference=dh,
                )
            )
        out.append(tuple(families))
    return tuple(out)


def family_colours(family: TextureFamily, rng: np.random.Generator) -> tuple[tuple[float, float, float], ...]:
    """An instance's two colours (RGB, 0-255) for a face: random base hue, the family's tone up to a small jitter."""
    hue = float(rng.uniform())
    jitter = rng.uniform(-_JITTER, _JITTER, size=4)
    colours = []
    for i, h in enumerate((hue, hue + family.hue_difference)):
        s = min(max(family.saturation[i] + jitter[2 * i], 0.0), 1.0)
        v = min(max(family.value[i] + jitter[2 * i + 1], 0.0), 1.0)
        colours.append(tuple(255.0 * c for c in colorsys.hsv_to_rgb(h % 1.0, s, v)))
    return tuple(colours)
